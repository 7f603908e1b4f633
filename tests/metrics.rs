//! `/metrics` of a real daemon: `cryosim` serves a dewar over Modbus, a second Modbus
//! device points at a closed port, Mosquitto carries an MQTT sensor, NUT's upsd serves a
//! UPS and aiosmtpd takes the page. Every scrape is checked line by line against the
//! Prometheus text format, then the figures are checked against what happened: readings
//! by source and quality (and against the store), connection states, latency
//! histograms, a pending and an active alarm, a sent page, the audit head.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::cryosim::CryoSim;
use common::mosquitto::Mosquitto;
use common::nut::Nut;
use common::smtp::SmtpServer;
use common::{Site, cryowatch_output, free_port, wait_for};

const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// The exposition format, strictly.

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Samples of `name` whose labels include `labels`.
    fn find<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one sample of `name` with exactly these `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.find(name, labels).filter(|s| s.labels.len() == labels.len());
        let first = found.next()?.value;
        assert!(found.next().is_none(), "{name}{labels:?} is not unique");
        Some(first)
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if v
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')) =>
        {
            v.parse().ok()
        }
        _ => None,
    }
}

/// `name{a="x",b="y"} value [timestamp]`, panicking with the line on any deviation.
fn parse_sample(line: &str) -> Sample {
    let bad = |why: &str| -> ! { panic!("not a valid sample line ({why}): {line:?}") };
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad("no value"));
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        bad("metric name");
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).unwrap_or_else(|| bad("unclosed labels"));
            if after[start..].starts_with('}') {
                rest = &after[start + 1..];
                break;
            }
            let eq = after[start..].find('=').unwrap_or_else(|| bad("label without '='")) + start;
            let key = &after[start..eq];
            if !valid_label_name(key) {
                bad("label name");
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                bad("label value not quoted");
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => bad("bad escape in label value"),
                    },
                    Some('"') => break,
                    Some('\n') | None => bad("unterminated label value"),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                bad("label repeated");
            }
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => bad("expected ',' or '}' after a label"),
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| bad("no space before the value"));
    let fields: Vec<&str> = rest.split(' ').collect();
    let value = match fields.as_slice() {
        [v] => parse_value(v),
        [v, ts] if ts.parse::<i64>().is_ok() => parse_value(v),
        _ => None,
    }
    .unwrap_or_else(|| bad("value"));
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Parses and validates a whole exposition: `# HELP` then `# TYPE` once per family,
/// each family's samples together under them, no series twice, counters named
/// `_total` and never negative, histograms with cumulative buckets ending in `+Inf`
/// equal to `_count`, and every name prefixed `cryowatch_`.
fn parse(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the exposition must end with a newline");
    let mut exp = Exposition::default();
    let mut helped = HashSet::new();
    let mut closed = HashSet::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("HELP without text: {line:?}"));
            assert!(valid_metric_name(name), "{line:?}");
            assert!(!help.trim().is_empty(), "{line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            if let Some(prev) = current.replace(name.to_string()) {
                closed.insert(prev);
            }
            assert!(!closed.contains(name), "family {name} split");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("TYPE without type: {line:?}"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert_eq!(current.as_deref(), Some(name), "TYPE must follow its HELP: {line:?}");
            assert!(
                exp.types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
        } else if line.starts_with('#') {
            continue;
        } else {
            let s = parse_sample(line);
            let family = if exp.types.contains_key(&s.name) {
                s.name.clone()
            } else {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| s.name.strip_suffix(suffix))
                    .filter(|f| exp.types.get(*f).is_some_and(|k| k == "histogram"))
                    .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"))
                    .to_string()
            };
            assert_eq!(
                current.as_deref(),
                Some(family.as_str()),
                "sample outside its family: {line:?}"
            );
            assert!(family.starts_with("cryowatch_"), "{line:?}");
            assert!(
                series.insert((s.name.clone(), s.labels.clone())),
                "series twice: {line:?}"
            );
            if exp.types[&family] == "counter" {
                assert!(family.ends_with("_total"), "counter not named _total: {line:?}");
                assert!(s.value >= 0.0, "negative counter: {line:?}");
            }
            exp.samples.push(s);
        }
    }
    check_histograms(&exp);
    exp
}

/// A series' labels without `le`, in order.
type Labels = Vec<(String, String)>;

fn check_histograms(exp: &Exposition) {
    for (family, _) in exp.types.iter().filter(|(_, k)| *k == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut by_series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in exp.samples.iter().filter(|s| s.name == bucket) {
            let le = parse_value(s.labels.get("le").expect("bucket without le")).expect("le is a number");
            let key: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            by_series.entry(key).or_default().push((le, s.value));
        }
        for (key, mut buckets) in by_series {
            let labels: Vec<(&str, &str)> = key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{labels:?}: buckets not cumulative: {buckets:?}"
            );
            let (last_le, last) = *buckets.last().expect("buckets");
            assert_eq!(last_le, f64::INFINITY, "{family}{labels:?}: no +Inf bucket");
            let count = exp.get(&format!("{family}_count"), &labels);
            assert_eq!(count, Some(last), "{family}{labels:?}: _count differs from +Inf");
            assert!(
                exp.get(&format!("{family}_sum"), &labels).is_some(),
                "{family}{labels:?}: no _sum"
            );
        }
    }
}

#[test]
fn the_validator_refuses_what_prometheus_would_refuse() {
    let ok = "# HELP cryowatch_x_total X.\n# TYPE cryowatch_x_total counter\ncryowatch_x_total{a=\"q\\\"\"} 1\n";
    assert_eq!(parse(ok).get("cryowatch_x_total", &[("a", "q\"")]), Some(1.0));
    for bad in [
        "cryowatch_x 1\n",                                                       // no family
        "# HELP cryowatch_x X.\n# TYPE cryowatch_x gauge\ncryowatch_x{a=b} 1\n", // unquoted
        "# HELP cryowatch_x X.\n# TYPE cryowatch_x gauge\ncryowatch_x inf\n",    // bad value
        "# HELP cryowatch_x X.\n# TYPE cryowatch_x counter\ncryowatch_x 1\n",    // counter name
        "# HELP cryowatch_x X.\n# TYPE cryowatch_x gauge\ncryowatch_x 1\ncryowatch_x 2\n",
        "# HELP cryowatch_h H.\n# TYPE cryowatch_h histogram\ncryowatch_h_bucket{le=\"1\"} 2\ncryowatch_h_bucket{le=\"+Inf\"} 1\ncryowatch_h_sum 1\ncryowatch_h_count 1\n",
    ] {
        let res = std::panic::catch_unwind(|| parse(bad));
        assert!(res.is_err(), "accepted: {bad:?}");
    }
}

// ---------------------------------------------------------------------------------
// Scraping.

/// The viewer token the daemon under test accepts.
const TOKEN: &str = "metrics-viewer-token-0123";

/// `GET path` with the viewer token: (status, content type, body).
fn get(addr: &str, path: &str) -> Option<(u16, String, String)> {
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let auth = format!("Bearer {TOKEN}");
    let r = common::http::call(addr, "GET", path, &[("Authorization", &auth)], None).ok()?;
    let content_type = r.header("content-type").unwrap_or_default().to_string();
    Some((r.status, content_type, r.body))
}

fn scrape(addr: &str) -> Exposition {
    let (status, content_type, body) = get(addr, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse(&body)
}

/// Scrapes until `f` holds, then returns that scrape.
fn scrape_until(site: &Site, addr: &str, what: &str, f: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some((200, _, body)) = get(addr, "/metrics") {
            let exp = parse(&body);
            if f(&exp) {
                return exp;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{body}\ndaemon log:\n{}",
                site.daemon_log()
            );
        } else {
            assert!(
                std::time::Instant::now() < deadline,
                "/metrics never answered; daemon log:\n{}",
                site.daemon_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------
// The daemon.

fn config(sim: &CryoSim, closed: u16, broker: &Mosquitto, nut: &Nut, smtp: u16, api: &str) -> String {
    format!(
        r#"[site]
name = "metrics test"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[api]
listen = "{api}"
[[api.token]]
id = "prometheus"
role = "viewer"
token = "{TOKEN}"
[mqtt]
url = "{mqtt}"
client_id = "metrics-test"
[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[modbus.device]]
id = "gone"
transport = "tcp"
address = "127.0.0.1:{closed}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[ups]]
id = "ups"
nut = "{nut}"
name = "{nut_name}"
poll_interval = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[asset]]
id = "box"
kind = "other"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "1h"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
[[sensor]]
id = "gone.temp"
asset = "box"
unit = "degC"
stale_after = "1h"
[sensor.modbus]
device = "gone"
register = "input"
address = 0
type = "f32"
[[sensor]]
id = "room.temp"
asset = "box"
unit = "degC"
stale_after = "1h"
[sensor.mqtt]
topic = "room/temp"
[[sensor]]
id = "ups.charge"
asset = "box"
unit = "%"
stale_after = "1h"
[sensor.ups]
ups = "ups"
variable = "charge"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -189.0
hysteresis = 0.5
severity = "critical"
escalation = "oncall"
[[rule]]
id = "dewar-cold-for-an-hour"
sensor = "dewar-1.temp"
kind = "low"
threshold = -100.0
delay = "1h"
severity = "warning"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        modbus = sim.modbus,
        mqtt = broker.url(),
        nut = nut.addr(),
        nut_name = nut.name(),
    )
}

fn stored_readings(site: &Site) -> f64 {
    let c = rusqlite::Connection::open_with_flags(
        site.path().join("cryowatch.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store read-only");
    c.query_row("SELECT count(*) FROM reading", [], |r| r.get::<_, i64>(0))
        .expect("count readings") as f64
}

#[test]
fn metrics_follow_readings_connections_latency_alarms_pages_and_the_audit_trail() {
    let dir = tempfile::tempdir().expect("dir");
    let mut sim = CryoSim::start(dir.path());
    let broker = Mosquitto::start();
    let nut_dir = tempfile::tempdir().expect("nut dir");
    let nut = Nut::start(nut_dir.path(), "ups1");
    let smtp = SmtpServer::start(dir.path());
    let api = format!("127.0.0.1:{}", free_port());
    let site = Site::new(&config(&sim, free_port(), &broker, &nut, smtp.port, &api));
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let daemon = site.start_daemon();

    let modbus = |q: &'static str| [("source", "modbus"), ("quality", q)];
    let connected = |e: &Exposition, source: &str, device: &str| {
        e.get("cryowatch_source_connected", &[("source", source), ("device", device)])
    };

    // Modbus: the dewar answers, the device on the closed port does not.
    let m = scrape_until(&site, &api, "good and comm_error Modbus readings", |e| {
        e.get("cryowatch_readings_total", &modbus("good")).unwrap_or(0.0) >= 4.0
            && e.get("cryowatch_readings_total", &modbus("comm_error")).unwrap_or(0.0) >= 2.0
            && connected(e, "modbus", "ctrl") == Some(1.0)
            && connected(e, "ups", "ups") == Some(1.0)
    });
    assert_eq!(connected(&m, "modbus", "gone"), Some(0.0));
    assert_eq!(m.get("cryowatch_readings_total", &modbus("stale")), Some(0.0));
    let polls = |e: &Exposition, source: &str, device: &str| {
        e.get(
            "cryowatch_poll_duration_seconds_count",
            &[("source", source), ("device", device)],
        )
        .unwrap_or(0.0)
    };
    assert!(polls(&m, "modbus", "ctrl") >= 1.0, "ctrl was polled");
    assert!(polls(&m, "ups", "ups") >= 1.0, "the UPS was polled");
    assert_eq!(
        polls(&m, "modbus", "gone"),
        0.0,
        "a device that cannot be connected to is never polled"
    );
    assert!(
        m.get("cryowatch_readings_total", &[("source", "ups"), ("quality", "good")])
            .unwrap_or(0.0)
            >= 1.0
    );

    // MQTT: connected, and readings counted once the subscription is in place.
    let m = scrape_until(&site, &api, "an MQTT reading", |e| {
        broker.publish("room/temp", "21.5", 1);
        e.get("cryowatch_readings_total", &[("source", "mqtt"), ("quality", "good")])
            .unwrap_or(0.0)
            >= 1.0
    });
    assert_eq!(connected(&m, "mqtt", &format!("127.0.0.1:{}", broker.port)), Some(1.0));
    assert!(m.get("cryowatch_mqtt_messages_total", &[]).unwrap_or(0.0) >= 1.0);
    assert!(m.get("cryowatch_mqtt_connects_total", &[]).unwrap_or(0.0) >= 1.0);

    // The store: commit latency, queue, and readings counted against readings stored.
    assert!(
        m.get("cryowatch_store_commit_duration_seconds_count", &[])
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(m.get("cryowatch_store_commit_duration_seconds_sum", &[]).unwrap_or(0.0) > 0.0);
    assert_eq!(m.get("cryowatch_store_queue_capacity", &[]), Some(65_536.0));
    assert!(m.get("cryowatch_store_queue_depth", &[]).is_some());
    assert_eq!(m.get("cryowatch_store_readable", &[]), Some(1.0));
    let before = scrape(&api);
    let stored = stored_readings(&site);
    let after = scrape(&api);
    let committed = before
        .get("cryowatch_store_committed_readings_total", &[])
        .expect("committed");
    let handed = after.sum("cryowatch_readings_total", &[]);
    assert!(
        committed <= stored && stored <= handed,
        "committed {committed} <= stored {stored} <= handed to the writer {handed}"
    );
    assert!(
        handed
            - after
                .get("cryowatch_store_committed_readings_total", &[])
                .expect("committed")
            < 50.0,
        "the writer keeps up"
    );

    // Alarms: the low rule's hour-long delay is running; the audit trail has a head.
    assert_eq!(after.get("cryowatch_alarms", &[("state", "pending")]), Some(1.0));
    assert_eq!(after.get("cryowatch_alarms", &[("state", "active")]), Some(0.0));
    assert!(after.get("cryowatch_audit_head_seq", &[]).unwrap_or(0.0) >= 1.0);
    let head_age = after
        .get("cryowatch_audit_head_age_seconds", &[])
        .expect("audit head age");
    assert!((0.0..60.0).contains(&head_age), "{head_age}");

    // An excursion: an active alarm, and the page sent by email is counted.
    sim.set("dewar-1", "warmup:600");
    let m = scrape_until(&site, &api, "an active alarm and a sent page", |e| {
        e.get("cryowatch_alarms", &[("state", "active")]) == Some(1.0)
            && e.get(
                "cryowatch_notification_attempts_total",
                &[("channel", "email"), ("result", "sent")],
            ) == Some(1.0)
    });
    assert_eq!(smtp.wait_messages(1, PATIENCE)[0].rcpt_tos, ["alice@example.org"]);
    assert_eq!(
        m.get(
            "cryowatch_notification_attempts_total",
            &[("channel", "email"), ("result", "failed")]
        ),
        Some(0.0)
    );
    assert!(m.get("cryowatch_notification_outbox_pending", &[]).is_some());
    assert!(m.get("cryowatch_notification_outbox_oldest_age_seconds", &[]).is_some());
    assert_eq!(m.get("cryowatch_notifications_undeliverable_total", &[]), Some(0.0));
    assert_eq!(m.get("cryowatch_influx_enabled", &[]), Some(0.0));

    // The simulator dies: the dewar's device is disconnected, its sensor reads comm_error.
    sim.kill();
    scrape_until(&site, &api, "ctrl disconnected", |e| {
        connected(e, "modbus", "ctrl") == Some(0.0)
    });
    wait_for(PATIENCE, "a comm_error reading of the dewar", || {
        let rows = site.history("dewar-1.temp");
        (rows.last().map(|r| r.quality.as_str()) == Some("comm_error")).then_some(())
    });

    site.stop_daemon(daemon);
}

#[test]
fn the_open_deviation_gauge_counts_an_excursion_from_its_clearing_to_its_signed_close() {
    use common::quality_lab::{PASSWORD, add_signer, api_section, cool, lab_with, run, text, warm};
    let broker = Mosquitto::start();
    let port = free_port();
    let site = lab_with(&broker.url(), &api_section(port, TOKEN));
    let daemon = site.start_daemon();
    let api = format!("127.0.0.1:{port}");
    let open = |e: &Exposition| e.get("cryowatch_open_deviations", &[]);
    scrape_until(&site, &api, "no open deviation", |e| open(e) == Some(0.0));
    let id = warm(&site, &broker).to_string();
    let m = scrape_until(&site, &api, "an active alarm", |e| {
        e.get("cryowatch_alarms", &[("state", "active")]) == Some(1.0)
    });
    assert_eq!(open(&m), Some(0.0), "an active alarm is not a deviation yet");
    cool(&site, &broker);
    let m = scrape_until(&site, &api, "one open deviation", |e| open(e) == Some(1.0));
    let age = m.get("cryowatch_open_deviation_oldest_age_seconds", &[]).expect("age");
    assert!((0.0..60.0).contains(&age), "{age}");
    add_signer(&site);
    let args = [
        "close",
        &id,
        "--by",
        "tech-c",
        "--reason",
        "lid-open",
        "--action",
        "lid closed",
    ];
    let closed = run(&site, &args, &format!("{PASSWORD}\n"));
    assert!(closed.status.success(), "{}", text(&closed));
    let m = scrape_until(&site, &api, "no open deviation once closed", |e| open(e) == Some(0.0));
    assert_eq!(m.get("cryowatch_open_deviation_oldest_age_seconds", &[]), Some(0.0));
    site.stop_daemon(daemon);
}
