//! MQTT-fed scenarios: a sensor publishing QoS 1 at a steady rate while the broker
//! restarts, or while the InfluxDB mirror's server is down.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Stored, checked_site, finish, now_ms, readings};
use crate::common::mosquitto::Mosquitto;
use crate::common::victoria::Victoria;
use crate::common::{Site, cryowatch_output, wait_for};
use crate::outcome::Outcome;

/// The publisher's topic and the sensor reading it.
const TOPIC: &str = "fault/flow";
const SENSOR: &str = "flow";
/// One reading every 40 ms: 25 a second.
const EVERY: Duration = Duration::from_millis(40);
/// How long the store may take to catch up once the publisher stopped.
const DRAIN: Duration = Duration::from_secs(20);

/// A sensor publishing `{"v":i,"ts":ms}` (i = 0, 1, 2 …) at a steady rate, one
/// `mosquitto_pub -q 1` per message: a message counts as produced once the broker
/// acknowledged it. While the broker is away the same message is tried again (same
/// payload, so a copy the broker did take is the same reading, not a new one).
struct Publisher {
    stop: Arc<AtomicBool>,
    /// When message `i` was acknowledged, at index `i`.
    acked: Arc<Mutex<Vec<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    fn start(port: u16, topic: &str, every: Duration) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a, topic) = (stop.clone(), acked.clone(), topic.to_string());
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            let mut i: u64 = 0;
            while !s.load(Ordering::Relaxed) {
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let payload = format!(r#"{{"v":{i},"ts":{}}}"#, now_ms());
                let deadline = Instant::now() + Duration::from_secs(30);
                while !publish_once(port, &topic, &payload) {
                    assert!(Instant::now() < deadline, "the broker took no message for 30 s");
                    std::thread::sleep(Duration::from_millis(50));
                }
                a.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(Instant::now());
                i += 1;
                next = (next + every).max(Instant::now());
            }
        });
        Publisher {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> Vec<Instant> {
        self.acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops after the message in progress; returns how many the broker acknowledged.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            assert!(t.join().is_ok(), "the publisher thread failed");
        }
        self.acked().len() as u64
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One QoS 1 publish; true once the broker acknowledged it (mosquitto_pub exits 0).
fn publish_once(port: u16, topic: &str, payload: &str) -> bool {
    let Ok(mut child) = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
            "1",
            "-m",
            payload,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        panic!("cannot run mosquitto_pub (bash tests/run.sh installs mosquitto-clients)");
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// `[site]`, `[store]`, `[mqtt]`, a probe sensor (to learn when the daemon is
/// subscribed) and the flow sensor, plus `extra`.
fn config(broker: &Mosquitto, client_id: &str, extra: &str) -> String {
    format!(
        r#"[site]
name = "fault suite"
timezone = "UTC"

[store]
path = "{{dir}}/cryowatch.db"
flush_interval = "50ms"

[mqtt]
url = "{url}"
client_id = "{client_id}"

{extra}

[[asset]]
id = "box"
kind = "other"

[[sensor]]
id = "probe"
asset = "box"
[sensor.mqtt]
topic = "probe/{client_id}"

[[sensor]]
id = "{SENSOR}"
asset = "box"
unit = "degC"
[sensor.mqtt]
topic = "{TOPIC}"
format = "json"
json_path = "v"
timestamp_path = "ts"
"#,
        url = broker.url()
    )
}

/// Publishes to the probe topic until a probe reading is stored: from then on the
/// daemon's session is subscribed and the broker keeps QoS 1 messages for it.
fn wait_subscribed(site: &Site, broker: &Mosquitto, client_id: &str) {
    let topic = format!("probe/{client_id}");
    wait_for(Duration::from_secs(20), "the daemon to subscribe", || {
        broker.publish(&topic, "1", 1);
        std::thread::sleep(Duration::from_millis(100));
        (!readings(site, "probe").is_empty()).then_some(())
    });
}

/// How many times each published value is stored.
fn stored_values(rows: &[Stored]) -> BTreeMap<u64, u64> {
    let mut seen = BTreeMap::new();
    for r in rows {
        if let Some(v) = r.value {
            *seen.entry(v as u64).or_insert(0u64) += 1;
        }
    }
    seen
}

/// Waits (up to [`DRAIN`]) until every value `0..n` is stored; returns the counts
/// either way, so a loss shows in the row instead of aborting it.
fn wait_all_stored(site: &Site, n: u64) -> BTreeMap<u64, u64> {
    let deadline = Instant::now() + DRAIN;
    loop {
        let seen = stored_values(&readings(site, SENSOR));
        if (0..n).all(|v| seen.contains_key(&v)) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produced, stored (of those) and duplicated, from the counts by value.
fn count_flow(out: &mut Outcome, n: u64, seen: &BTreeMap<u64, u64>) {
    out.readings_produced = Some(n);
    out.readings_stored = Some((0..n).filter(|v| seen.contains_key(v)).count() as u64);
    out.readings_duplicated = Some(seen.values().map(|c| c - 1).sum());
}

/// The broker restarts (SIGTERM, saving its queue; 2 s later started again on its port)
/// while a sensor publishes 25 QoS 1 readings a second.
pub fn broker_restart() -> Outcome {
    let mut out = Outcome::new("broker restart");
    let mut broker = Mosquitto::start_persistent();
    let id = "fault-broker-restart";
    let site = checked_site(&config(&broker, id, ""));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    let publisher = Publisher::start(broker.port, TOPIC, EVERY);
    std::thread::sleep(Duration::from_millis(1500));
    // Stopped gracefully (its queue saved), away for 2 s, started again on its port.
    let down = Instant::now();
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.start_again();
    let back = Instant::now();
    // Readings flowing again: a reading published after the broker came back is stored.
    let recovered = wait_for(Duration::from_secs(20), "a reading published after the restart", || {
        let first_after = publisher.acked().iter().position(|t| *t >= back)? as u64;
        let newest = readings(&site, SENSOR)
            .iter()
            .filter_map(|r| r.value)
            .fold(-1.0, f64::max);
        (newest >= first_after as f64).then(Instant::now)
    });
    out.recovery = Some(recovered - back);
    std::thread::sleep(Duration::from_millis(1500));
    let n = publisher.stop();
    let seen = wait_all_stored(&site, n);
    count_flow(&mut out, n, &seen);
    let resumed = site.daemon_log().contains("session_present=true");
    out.detail = format!(
        "broker down {:.1} s; recovery = broker back -> a reading published after it stored; \
         session resumed: {resumed}",
        (back - down).as_secs_f64()
    );
    if !resumed && out.error.is_none() {
        out.error = Some("the daemon did not resume its persistent session".into());
    }
    finish(&site, daemon, &mut out);
    out
}

/// `cryowatch influx status --json`: how many readings wait for the server.
fn waiting(site: &Site) -> Option<i64> {
    let out = cryowatch_output(&["influx", "status", "-c", &site.config_str(), "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    s["readings"].as_i64()
}

/// The flow sensor's samples in the server: (time ms, value), duplicates kept.
fn landed(vm: &Victoria) -> Vec<(i64, f64)> {
    let mut points: Vec<(i64, f64)> = vm
        .export(&format!(r#"cryo_reading_value{{sensor="{SENSOR}"}}"#))
        .iter()
        .flat_map(|s| s.points())
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points
}

/// VictoriaMetrics (standing in for InfluxDB v2) is stopped for 3 s while readings flow,
/// then started again: every reading must reach the server once.
pub fn influx_down() -> Outcome {
    let mut out = Outcome::new("influxdb down");
    let broker = Mosquitto::start();
    let mut vm = Victoria::start();
    let id = "fault-influx-down";
    let influx = format!(
        "[influx]\nurl = \"{}\"\norg = \"biorepo\"\nbucket = \"cryo\"\ntoken = \"test-token\"\n\
         flush_interval = \"100ms\"\nmax_retry_interval = \"1s\"\n",
        vm.url()
    );
    let site = checked_site(&config(&broker, id, &influx));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    let publisher = Publisher::start(broker.port, TOPIC, EVERY);
    std::thread::sleep(Duration::from_secs(1));
    let down_ms = now_ms();
    vm.stop();
    std::thread::sleep(Duration::from_secs(3));
    // Everything stored while the server was down is the backlog.
    let backlog: Vec<i64> = readings(&site, SENSOR).iter().map(|r| r.t).collect();
    let cut = backlog.last().copied().unwrap_or(0);
    let while_down = backlog.iter().filter(|t| **t >= down_ms).count();
    vm.start_again();
    let back = Instant::now();
    let drained = wait_for(Duration::from_secs(30), "the backlog to reach the server", || {
        let there = landed(&vm).iter().filter(|p| p.0 <= cut).count();
        (there >= backlog.len()).then(Instant::now)
    });
    out.recovery = Some(drained - back);
    std::thread::sleep(Duration::from_secs(1));
    let n = publisher.stop();
    let seen = wait_all_stored(&site, n);
    wait_for(Duration::from_secs(30), "nothing left waiting for the server", || {
        (waiting(&site) == Some(0)).then_some(())
    });

    // A reading counts as stored when it is in the store and, with its time and value,
    // in the server; copies in either are duplicates.
    let rows = readings(&site, SENSOR);
    let mut in_server: BTreeMap<(i64, u64), u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let points = loop {
        // VictoriaMetrics can show a just-flushed part a moment late.
        let p = landed(&vm);
        if p.len() >= rows.len() || Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (t, v) in &points {
        *in_server.entry((*t, *v as u64)).or_default() += 1;
    }
    let both = seen
        .keys()
        .filter(|v| **v < n)
        .filter(|v| {
            rows.iter()
                .find(|r| r.value == Some(**v as f64))
                .is_some_and(|r| in_server.contains_key(&(r.t, **v)))
        })
        .count() as u64;
    out.readings_produced = Some(n);
    out.readings_stored = Some(both);
    let dup_store: u64 = seen.values().map(|c| c - 1).sum();
    let dup_server: u64 = in_server.values().map(|c| c - 1).sum();
    out.readings_duplicated = Some(dup_store + dup_server);
    out.detail = format!(
        "server down 3 s, {while_down} readings stored meanwhile; store {} / server {} samples; \
         recovery = server back -> every reading stored until then landed",
        rows.len(),
        points.len()
    );
    finish(&site, daemon, &mut out);
    out
}
