//! One bad value from outside must not lose or falsify the record (each was found by
//! testing, each once did):
//!
//! - a retention of "500000000y" (meant as "forever") is refused by `check`, and the
//!   longest accepted one ("1000y") deletes nothing at start;
//! - a 2 MiB MQTT message is consumed and counted, the readings behind it are stored,
//!   and the session does not reconnect in a loop;
//! - a reading stamped 2099 is kept and flagged, and never becomes the sensor's latest
//!   value.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::malformed::metric;
use super::{api_section, base_config, json_sensor, now_ms, stop_daemon, tally, wait_stored, wait_subscribed};
use crate::common::mosquitto::Mosquitto;
use crate::common::{Site, free_port};
use crate::outcome::Outcome;

const SENSOR: &str = "lab.json";

fn site(broker: &Mosquitto, client: &str, retention: &str) -> (Site, SocketAddr) {
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("api address");
    let mut text = base_config(broker, client).replace(
        "path = \"{dir}/cryowatch.db\"\n",
        &format!("path = \"{{dir}}/cryowatch.db\"\nretention = \"{retention}\"\n"),
    );
    text.push_str(&json_sensor(SENSOR, "m/json", true));
    text.push_str(&api_section(api));
    (Site::new(&text), api)
}

/// Publishes `{"v": v, "ts": t}` for each (t, v) with QoS 1; returns the times.
fn publish(broker: &Mosquitto, readings: &[(i64, f64)]) -> Vec<i64> {
    for (t, v) in readings {
        broker.publish("m/json", &format!(r#"{{"v":{v},"ts":{t}}}"#), 1);
    }
    readings.iter().map(|(t, _)| *t).collect()
}

fn write_config(site: &Site, text: &str) {
    std::fs::write(site.config(), text.replace("{dir}", &site.path().display().to_string())).expect("rewrite config");
}

pub fn huge_retention() -> Outcome {
    let mut out = Outcome::new("retention \"500000000y\"");
    let broker = Mosquitto::start();
    let (site, _) = site(&broker, "cw-fault-retention", "500000000y");
    let check = crate::common::cryowatch_output(&["check", "-c", &site.config_str()]);
    let stderr = String::from_utf8_lossy(&check.stderr).to_string();
    let mut problems = Vec::new();
    if check.status.code() != Some(2) || !stderr.contains("store.retention") || !stderr.contains("1000y") {
        problems.push(format!("check: exit {:?}, {stderr:?}", check.status.code()));
    }
    // The longest retention accepted keeps everything, across a restart (retention runs
    // at start).
    let text = std::fs::read_to_string(site.config())
        .expect("config")
        .replace("500000000y", "1000y");
    write_config(&site, &text);
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, "cw-fault-retention");
    let start = now_ms() - 3_600_000;
    let times = publish(
        &broker,
        &(0..20).map(|i| (start + i * 60_000, -190.0)).collect::<Vec<_>>(),
    );
    let stored_in = wait_stored(&site, SENSOR, &times, Duration::from_secs(20));
    let code1 = stop_daemon(daemon);
    let daemon = site.start_daemon();
    std::thread::sleep(Duration::from_secs(2));
    let code = stop_daemon(daemon);
    let deleted = super::db(&site).map(|c| super::audit(&c, "readings.deleted").len());
    let (stored, dup) = tally(&times, &super::stored_times(&site, SENSOR));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.recovery = stored_in;
    out.detail = format!(
        "check exit {:?} naming store.retention; with \"1000y\": {stored} of {} readings kept across a restart, {deleted:?} retention deletions",
        check.status.code(),
        times.len()
    );
    if stored_in.is_none() || code1 != Some(0) {
        problems.push("the readings were not stored before the restart".into());
    }
    if deleted != Some(0) {
        problems.push(format!("retention deleted: {deleted:?}"));
    }
    super::conclude(&mut out, problems, code, &site);
    out
}

pub fn huge_message() -> Outcome {
    let mut out = Outcome::new("2 MiB MQTT message");
    let broker = Mosquitto::start();
    let (site, api) = site(&broker, "cw-fault-huge", "10y");
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, "cw-fault-huge");
    let mut huge = br#"{"v":-80.0,"pad":""#.to_vec();
    huge.resize(2 << 20, b'x');
    huge.extend_from_slice(br#""}"#);
    broker.publish_bytes("m/json", &huge, 1);
    let start = now_ms() - 60_000;
    let times = publish(&broker, &(0..20).map(|i| (start + i, -190.0)).collect::<Vec<_>>());
    let published = Instant::now();
    let drained = wait_stored(&site, SENSOR, &times, Duration::from_secs(20));
    let counted = super::kill::wait_until(Duration::from_secs(10), || {
        metric(api, "cryowatch_mqtt_oversized_messages_total") == Some(1.0)
    });
    std::thread::sleep(Duration::from_secs(1));
    let reconnects = super::log_lines(&site, "mqtt connection lost");
    let crashes = u64::from(!daemon.running());
    let code = stop_daemon(daemon);
    let (stored, dup) = tally(&times, &super::stored_times(&site, SENSOR));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.recovery = drained.map(|_| published.elapsed());
    out.detail = format!(
        "a 2 MiB message then {} readings: oversized counted {}, connection lost {reconnects} times; recovery = last reading published → all stored",
        times.len(),
        if counted { 1 } else { 0 }
    );
    let mut problems = Vec::new();
    if !counted {
        problems.push("the oversized message was not counted".to_string());
    }
    if reconnects > 0 {
        problems.push(format!("{reconnects} reconnects"));
    }
    super::conclude(&mut out, problems, code, &site);
    out
}

pub fn far_future_stamp() -> Outcome {
    let mut out = Outcome::new("reading stamped 2099");
    let broker = Mosquitto::start();
    let (site, api) = site(&broker, "cw-fault-future", "10y");
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, "cw-fault-future");
    let now = now_ms();
    let far = 4_070_908_800_000; // 2099-01-01T00:00:00Z
    let times = publish(&broker, &[(now - 20_000, -80.0), (far, -80.0), (now - 10_000, -70.0)]);
    let everything = || -> Vec<i64> {
        let config = site.config_str();
        let args = [
            "history",
            "-c",
            &config,
            "--sensor",
            SENSOR,
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--format",
            "csv",
        ];
        let csv = String::from_utf8_lossy(&crate::common::cryowatch_output(&args).stdout).to_string();
        crate::common::parse_csv(&csv)
            .iter()
            .filter_map(|r| super::parse_ms(&r.time))
            .collect()
    };
    let started = Instant::now();
    let all_in = super::kill::wait_until(Duration::from_secs(20), || tally(&times, &everything()).0 == 3);
    let recovery = all_in.then(|| started.elapsed());
    let counted = super::kill::wait_until(Duration::from_secs(10), || {
        metric(api, "cryowatch_mqtt_future_readings_total") == Some(1.0)
    });
    let status = crate::common::cryowatch_output(&["status", "--json", "-c", &site.config_str()]);
    let shown: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let row = shown
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["sensor"] == SENSOR))
        .cloned()
        .unwrap_or_default();
    let crashes = u64::from(!daemon.running());
    let code = stop_daemon(daemon);
    let (stored, dup) = tally(&times, &everything());
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.recovery = recovery;
    out.detail = format!(
        "-80 now, -80 stamped 2099, -70 now: all kept; status shows {} at {}; flagged counted {}",
        row["value"],
        row["time"].as_str().unwrap_or("-"),
        if counted { 1 } else { 0 }
    );
    let mut problems = Vec::new();
    if row["value"] != -70.0 || row["time"].as_str().is_some_and(|t| t.starts_with("2099")) {
        problems.push(format!("status shows {row}"));
    }
    if !counted {
        problems.push("the flagged reading was not counted".to_string());
    }
    super::conclude(&mut out, problems, code, &site);
    out
}
