//! The configuration loader, structure-aware: starts from `config/cryowatch.example.toml`
//! or `config/demo.toml`, applies a few edits at the TOML level (replace a value, drop or
//! add a key, duplicate or drop an array item), writes the result back as TOML and loads
//! it. Edits keep the file parseable, so this reaches the semantic checks of `validate`
//! that arbitrary text rarely gets past. See the crate's library for what is checked.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use toml::{Table, Value};

const EXAMPLE: &str = include_str!("../../config/cryowatch.example.toml");
const DEMO: &str = include_str!("../../config/demo.toml");

/// Every key of the raw schema (`config::raw`), for edits that add a key.
const KEYS: &[&str] = &[
    "account_sid",
    "address",
    "after",
    "all_ok_at",
    "all_ok_to",
    "api",
    "asset",
    "auth_token",
    "auth_token_env",
    "auth_token_file",
    "base_url",
    "batch_size",
    "baud",
    "bucket",
    "byte_order",
    "channel",
    "client_id",
    "contact",
    "data_bits",
    "type",
    "delay",
    "device",
    "direction",
    "duration",
    "email",
    "enabled",
    "equals",
    "escalation",
    "every",
    "fallback",
    "fault_values",
    "flush_interval",
    "format",
    "from",
    "group",
    "handoff",
    "heartbeat",
    "host",
    "hysteresis",
    "id",
    "incident",
    "influx",
    "interval",
    "json_path",
    "keep_alive",
    "kind",
    "lag_warning",
    "latching",
    "listen",
    "location",
    "maintenance",
    "max_retry_interval",
    "members",
    "modbus",
    "mqtt",
    "mqtt_topic",
    "name",
    "notify",
    "nut",
    "of",
    "offset",
    "org",
    "override",
    "parity",
    "password",
    "password_env",
    "password_file",
    "path",
    "phone",
    "poll_interval",
    "port",
    "precision",
    "primary_topic",
    "public_url",
    "quantity",
    "raise",
    "reason",
    "reduce_after",
    "register",
    "repeat",
    "repeat_interval",
    "retention",
    "role",
    "rotation",
    "route",
    "rule",
    "scale",
    "schedule",
    "seal_grace",
    "seal_interval",
    "sensor",
    "sensors",
    "serial",
    "severity",
    "silent_after",
    "site",
    "stale_after",
    "standby",
    "step",
    "stop_bits",
    "store",
    "test_page",
    "threshold",
    "timeout",
    "timestamp_path",
    "timezone",
    "tls",
    "to",
    "token",
    "token_env",
    "token_file",
    "topic",
    "transport",
    "unit",
    "ups",
    "url",
    "username",
    "variable",
    "via",
    "window",
];

/// Values that sit on the edges of what `validate` accepts.
const STRINGS: &[&str] = &[
    "",
    " ",
    "0s",
    "0",
    "-1s",
    "1ms",
    "10m",
    "2h",
    "999999999999d",
    "1 fortnight",
    "UTC",
    "Europe/Zurich",
    "Mars/Olympus",
    "ln2_dewar",
    "freezer_minus80",
    "freezer_minus150",
    "ups",
    "temperature",
    "coil",
    "discrete",
    "holding",
    "input",
    "u16",
    "i16",
    "u32",
    "i32",
    "u64",
    "i64",
    "f32",
    "f64",
    "bool",
    "ABCD",
    "CDAB",
    "BADC",
    "DCBA",
    "number",
    "json",
    "tcp",
    "rtu",
    "none",
    "even",
    "odd",
    "high",
    "low",
    "rate",
    "stale",
    "fault",
    "state",
    "all",
    "any",
    "warning",
    "alarm",
    "critical",
    "email",
    "sms",
    "modem",
    "webhook",
    "ms",
    "ns",
    "lab/+/x",
    "lab/#",
    "#",
    "+",
    "a/#/b",
    "$SYS/x",
    "127.0.0.1:502",
    "[::1]:1883",
    "localhost",
    "http://127.0.0.1:1",
    "/dev/null",
    "Mon 09:00",
    "09:00",
    "25:61",
    "2026-11-23T08:00:00Z",
    "2026-11-23T07:00:00Z",
    "a.b.0.c",
    "°C",
    "%",
    "\u{0}",
    "line\nbreak",
];

/// The seeds as TOML tables, with the secrets they name made available: the example's
/// `*_env` variables set and its `token_file` pointed at a file in the work directory.
static SEEDS: LazyLock<Vec<Table>> = LazyLock::new(|| {
    let dir = cryowatch_fuzz::work_dir();
    std::fs::write(dir.join("ops.token"), "fuzz-token-0123456789abcdef\n").expect("write the token file");
    for var in [
        "CRYOWATCH_INFLUX_TOKEN",
        "CRYOWATCH_MQTT_PASSWORD",
        "CRYOWATCH_SMTP_PASSWORD",
        "CRYOWATCH_TWILIO_TOKEN",
    ] {
        // SAFETY: set once, before any other thread of this process reads the environment.
        unsafe { std::env::set_var(var, "fuzz-secret") };
    }
    let example = EXAMPLE.replace("/etc/cryowatch/ops.token", "ops.token");
    let seeds: Vec<Table> = [example.as_str(), DEMO]
        .iter()
        .map(|text| text.parse::<Table>().expect("the shipped configurations are TOML"))
        .collect();
    for seed in &seeds {
        let text = toml::to_string(seed).expect("a parsed table writes back");
        assert!(
            cryowatch_fuzz::load_and_check(text.as_bytes()).is_some(),
            "a shipped configuration does not load after a TOML round trip"
        );
    }
    seeds
});

/// Every leaf value of `v`, for edits that move a value to another place.
fn leaves(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Table(t) => t.values().for_each(|v| leaves(v, out)),
        Value::Array(a) => a.iter().for_each(|v| leaves(v, out)),
        leaf => out.push(leaf.clone()),
    }
}

fn new_value(u: &mut Unstructured, pool: &[Value]) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=8)? {
        0..=2 => u.choose(pool)?.clone(),
        3 => Value::String((*u.choose(STRINGS)?).to_string()),
        4 => Value::String(u.arbitrary()?),
        5 => Value::Integer(u.arbitrary()?),
        6 => Value::Float(u.arbitrary()?),
        7 => Value::Boolean(u.arbitrary()?),
        _ => Value::Array(vec![u.choose(pool)?.clone()]),
    })
}

/// One edit somewhere below `v`.
fn edit(v: &mut Value, u: &mut Unstructured, pool: &[Value]) -> arbitrary::Result<()> {
    match v {
        Value::Table(t) if !t.is_empty() => {
            let keys: Vec<String> = t.keys().cloned().collect();
            let key = u.choose(&keys)?.clone();
            match u.int_in_range(0..=9)? {
                0 => {
                    t.remove(&key);
                }
                1 => {
                    let value = new_value(u, pool)?;
                    t.insert((*u.choose(KEYS)?).to_string(), value);
                }
                _ => {
                    if let Some(child) = t.get_mut(&key) {
                        edit(child, u, pool)?;
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = u.choose_index(a.len())?;
            match u.int_in_range(0..=9)? {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let item = a[i].clone();
                    a.push(item);
                }
                2 => {
                    let j = u.choose_index(a.len())?;
                    a.swap(i, j);
                }
                _ => edit(&mut a[i], u, pool)?,
            }
        }
        leaf => *leaf = new_value(u, pool)?,
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(seed) = u.choose(&SEEDS) else { return };
    let mut doc = Value::Table(seed.clone());
    let mut pool = Vec::new();
    leaves(&doc, &mut pool);
    let Ok(edits) = u.int_in_range(1..=4u8) else { return };
    for _ in 0..edits {
        if edit(&mut doc, &mut u, &pool).is_err() {
            break;
        }
    }
    // Values TOML cannot write (none today) are skipped, not failures of the loader.
    let Ok(text) = toml::to_string(&doc) else { return };
    cryowatch_fuzz::load_and_check(text.as_bytes());
});
