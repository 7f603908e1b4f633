//! Local alarm outputs against the real daemon and pymodbus as the I/O module: a dewar's
//! temperature is read from a holding register of the module and a `high` rule raises a
//! critical alarm; a beacon on a coil of the same module follows the alarm (on while
//! unacknowledged, off once acknowledged), a fail-safe one on a holding register is
//! energised while all is well and de-energised on alarm, both are rewritten every
//! poll and after a reconnect, neither an alarm test nor a shelved alarm sounds one, and
//! every change of state is in the audit trail with the alarm that caused it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::io_module::IoModule;
use common::{Site, output_text, wait_for};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);
/// The module's poll interval in the configurations below.
const POLL: Duration = Duration::from_millis(200);

/// Holding register 0 holds the temperature as raw + (-300) °C.
const COLD: u16 = 100; // -200 °C
const WARM: u16 = 200; // -100 °C: above the -150 °C threshold

/// A dewar read from holding register 0 of the module at `io`, a critical `high` rule
/// without delay, and `output` (an `[[output]]` table on device "io").
fn config(io: &str, output: &str) -> String {
    format!(
        r#"[site]
name = "output lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[[modbus.device]]
id = "io"
transport = "tcp"
address = "{io}"
unit = 1
poll_interval = "{poll}ms"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "°C"
stale_after = "30s"
[sensor.modbus]
device = "io"
register = "holding"
address = 0
type = "u16"
offset = -300.0
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
{output}"#,
        poll = POLL.as_millis()
    )
}

/// `cryowatch ARGS -c DIR/cryowatch.toml`, to completion.
fn cli(site: &Site, args: &[&str]) -> std::process::Output {
    site.with_stdin(args, "")
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// The id of the open alarm of rule `warm`, once there is one.
fn open_warm_alarm(site: &Site) -> i64 {
    wait_for(PATIENCE, "the warm alarm", || {
        let out = cli(site, &["alarms", "--active", "--json"]);
        let alarms: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        alarms
            .iter()
            .find(|a| a["rule"] == "warm")
            .and_then(|a| a["id"].as_i64())
    })
}

/// The audit records of kind `output…`: (kind, parsed detail), in order.
fn output_records(site: &Site) -> Vec<(String, Value)> {
    let out = cli(site, &["audit", "log", "--kind", "output", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit log --json");
    rows.iter()
        .map(|r| {
            let detail = serde_json::from_str(r["detail"].as_str().expect("detail text")).expect("detail json");
            (r["kind"].as_str().expect("kind").to_string(), detail)
        })
        .collect()
}

/// Waits until the daemon has written `value` to `kind` `address` after `since`
/// (seconds since the epoch); returns when it was written.
fn written_after(io: &IoModule, kind: &str, address: u16, value: u16, since: f64, what: &str) -> f64 {
    wait_for(PATIENCE, what, || {
        io.writes(kind, address)
            .into_iter()
            .find(|w| w.t > since && w.value == value)
            .map(|w| w.t)
    })
}

/// The writes of `kind` `address` come at least once every two polls over a second and
/// a half of steady state, all with `value`.
fn assert_rewritten_every_poll(io: &IoModule, kind: &str, address: u16, value: u16) {
    let from = now_s();
    std::thread::sleep(Duration::from_millis(1500));
    let to = now_s();
    let writes: Vec<_> = io
        .writes(kind, address)
        .into_iter()
        .filter(|w| w.t >= from && w.t <= to)
        .collect();
    assert!(
        writes.len() >= 4,
        "{kind} {address}: {} writes in 1.5 s with a poll every {POLL:?}: {writes:?}",
        writes.len()
    );
    assert!(writes.iter().all(|w| w.value == value), "{writes:?}");
    let gaps: Vec<f64> = writes.windows(2).map(|w| w[1].t - w[0].t).collect();
    assert!(
        gaps.iter().all(|g| *g < 2.5 * POLL.as_secs_f64()),
        "{kind} {address}: a poll without its write: gaps {gaps:?}"
    );
}

#[test]
fn a_beacon_sounds_while_a_critical_alarm_is_unacknowledged_and_is_rewritten_every_poll() {
    let dir = tempfile::tempdir().expect("dir");
    let mut io = IoModule::start(dir.path());
    io.set("holding", 0, COLD);
    let site = Site::new(&config(
        &io.address,
        "[[output]]\nid = \"beacon-room-214\"\ndevice = \"io\"\ncoil = 16\nwhen = \"active unacknowledged critical\"\n",
    ));
    let checked = cli(&site, &["check"]);
    assert!(checked.status.success(), "{}", output_text(&checked));
    let daemon = site.start_daemon();

    // All is well: the coil is written 0, every poll.
    written_after(&io, "coil", 16, 0, 0.0, "the beacon written off");
    assert_rewritten_every_poll(&io, "coil", 16, 0);

    // The dewar warms: the alarm goes active and the beacon on.
    let before = now_s();
    io.set("holding", 0, WARM);
    let id = open_warm_alarm(&site);
    written_after(&io, "coil", 16, 1, before, "the beacon on");
    assert_rewritten_every_poll(&io, "coil", 16, 1);

    // Someone at the module switches it off: the next poll or two writes it on again.
    io.set("coil", 16, 0);
    let set_at = now_s();
    let restored = written_after(&io, "coil", 16, 1, set_at, "the beacon restored");
    assert!(
        restored - set_at < 3.0 * POLL.as_secs_f64() + 0.2,
        "restored {:.3} s after it was switched off",
        restored - set_at
    );

    // Acknowledged: the alarm stays open (still warm), the beacon goes off.
    let acked = cli(
        &site,
        &["ack", &id.to_string(), "--by", "alice", "--comment", "on my way"],
    );
    assert!(acked.status.success(), "{}", output_text(&acked));
    let ack_at = now_s();
    written_after(
        &io,
        "coil",
        16,
        0,
        ack_at - 0.5,
        "the beacon off after the acknowledgement",
    );
    assert_rewritten_every_poll(&io, "coil", 16, 0);
    site.stop_daemon(daemon);

    // Three records: the state at start, on for the alarm, off once acknowledged; the
    // writes in between are not changes.
    let records = output_records(&site);
    let kinds: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["output.off", "output.on", "output.off"], "{records:?}");
    let (start, on, off) = (&records[0].1, &records[1].1, &records[2].1);
    assert_eq!(start["initial"], true);
    assert_eq!(start["output"], "beacon-room-214");
    assert_eq!(on["output"], "beacon-room-214");
    assert_eq!(on["target"], "coil 16");
    assert_eq!(on["device"], "io");
    assert_eq!(on["state"], "on");
    assert_eq!(on["value"], 1);
    assert_eq!(on["alarms"], serde_json::json!([id]));
    assert_eq!(on["initial"], false);
    assert_eq!(off["state"], "off");
    assert_eq!(off["alarms"], serde_json::json!([]));
    assert_eq!(off["previous"], serde_json::json!([id]));
    let verified = cli(&site, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", output_text(&verified));
}

#[test]
fn a_fail_safe_output_is_energised_while_all_is_well_de_energised_on_alarm_and_rewritten_after_a_reconnect() {
    let dir = tempfile::tempdir().expect("dir");
    let mut io = IoModule::start(dir.path());
    io.set("holding", 0, COLD);
    let site = Site::new(&config(
        &io.address,
        "[[output]]\nid = \"siren\"\ndevice = \"io\"\nregister = 17\nwhen = \"critical\"\nfail_safe = true\n",
    ));
    let daemon = site.start_daemon();

    written_after(&io, "holding", 17, 1, 0.0, "the siren energised while all is well");
    assert_rewritten_every_poll(&io, "holding", 17, 1);

    let before = now_s();
    io.set("holding", 0, WARM);
    let id = open_warm_alarm(&site);
    written_after(&io, "holding", 17, 0, before, "the siren de-energised on alarm");
    assert_rewritten_every_poll(&io, "holding", 17, 0);

    // Back to normal: the (non-latching) alarm clears and the siren is energised again.
    let cooled = now_s();
    io.set("holding", 0, COLD);
    written_after(
        &io,
        "holding",
        17,
        1,
        cooled,
        "the siren energised after the alarm cleared",
    );

    // The module restarts (its registers back to 0): the daemon reconnects and writes 1.
    let address = io.address.clone();
    drop(io);
    let mut io = IoModule::start_on(dir.path(), &address);
    io.set("holding", 0, COLD);
    let restarted = now_s();
    written_after(
        &io,
        "holding",
        17,
        1,
        restarted,
        "the siren energised after the reconnect",
    );
    assert_eq!(io.value("holding", 17), 1);
    site.stop_daemon(daemon);

    let records = output_records(&site);
    let states: Vec<(&str, i64)> = records
        .iter()
        .map(|(k, d)| (k.as_str(), d["value"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(
        states,
        [("output.off", 1), ("output.on", 0), ("output.off", 1)],
        "{records:?}"
    );
    assert_eq!(records[1].1["alarms"], serde_json::json!([id]));
    assert_eq!(records[1].1["fail_safe"], true);
    assert_eq!(records[1].1["when"], "critical");
}

#[test]
fn neither_an_alarm_test_nor_a_shelved_alarm_sounds_the_beacon() {
    let dir = tempfile::tempdir().expect("dir");
    let mut io = IoModule::start(dir.path());
    io.set("holding", 0, COLD);
    let site = Site::new(&config(
        &io.address,
        "[[output]]\nid = \"beacon\"\ndevice = \"io\"\ncoil = 16\nwhen = \"critical\"\n",
    ));
    let daemon = site.start_daemon();
    written_after(&io, "coil", 16, 0, 0.0, "the beacon written off");

    // An alarm test raises a critical alarm of the rule: the beacon stays off.
    let tested = cli(&site, &["test-alarm", "--sensor", "dewar-1.temp", "--by", "qa-bob"]);
    assert!(tested.status.success(), "{}", output_text(&tested));
    let test_id = open_warm_alarm(&site);
    assert_rewritten_every_poll(&io, "coil", 16, 0);
    let acked = cli(
        &site,
        &["ack", &test_id.to_string(), "--by", "qa-bob", "--comment", "test"],
    );
    assert!(acked.status.success(), "{}", output_text(&acked));
    wait_for(PATIENCE, "the alarm test completed", || {
        let out = cli(&site, &["alarms", "--active", "--json"]);
        let alarms: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        alarms.iter().all(|a| a["id"].as_i64() != Some(test_id)).then_some(())
    });

    // A real excursion sounds it; shelving the sensor silences it while shelved.
    let before = now_s();
    io.set("holding", 0, WARM);
    let id = open_warm_alarm(&site);
    assert_ne!(id, test_id);
    written_after(&io, "coil", 16, 1, before, "the beacon on");
    let shelved = cli(
        &site,
        &[
            "shelve",
            "--sensor",
            "dewar-1.temp",
            "--for",
            "10m",
            "--by",
            "alice",
            "--reason",
            "probe swap",
        ],
    );
    assert!(shelved.status.success(), "{}", output_text(&shelved));
    let shelved_at = now_s();
    written_after(&io, "coil", 16, 0, shelved_at - 0.5, "the beacon off while shelved");
    assert_rewritten_every_poll(&io, "coil", 16, 0);
    site.stop_daemon(daemon);

    let records = output_records(&site);
    let kinds: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["output.off", "output.on", "output.off"], "{records:?}");
    assert_eq!(records[1].1["alarms"], serde_json::json!([id]));
    assert_eq!(records[2].1["previous"], serde_json::json!([id]));
}
