//! The physical alarm check against the real daemon, Mosquitto and the store: a check
//! holds its sensor's paging (the alarm is raised and stored, shelved under the check),
//! the trigger is the first stored reading beyond the rule's threshold, and `finish`
//! passes a reference within `[alarm_check] tolerance` of the threshold and fails one
//! outside it, signed with meaning `alarm check`; `audit verify` proves the checks and
//! catches an edited one.

mod common;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::{Site, output_text as text, wait_for};

const PASSWORD: &str = "alarm check password 2026";
const SENSOR: &str = "dewar-1.temp";
const TOPIC: &str = "lab/dewar-1/temp";

fn lab(broker: &str) -> Site {
    lab_with(broker, "1h")
}

fn lab_with(broker: &str, max_duration: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "alarm check lab"
timezone = "Europe/Berlin"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{broker}"
client_id = "alarm-check-test"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "lab/dewar-1/temp"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
[alarm_check]
tolerance = 1.0
max_duration = "{max_duration}"
"#
    ))
}

fn start(site: &Site) -> std::process::Output {
    site.with_stdin(&["alarm-check", "start", "--sensor", SENSOR, "--by", "tech"], "")
}

fn finish(site: &Site, reference: &str) -> std::process::Output {
    common::quality_lab::finish_alarm_check(site, SENSOR, reference, "tech", PASSWORD)
}

/// The active alarm of rule `warm`, if any.
fn warm_alarm(site: &Site) -> Option<serde_json::Value> {
    let out = site.with_stdin(&["alarms", "--active", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    rows.into_iter().find(|a| a["rule"] == "warm")
}

/// Publishes `values` a little apart, so each is its own stored reading.
fn warm(broker: &Mosquitto, values: &[&str]) {
    for v in values {
        broker.publish(TOPIC, v, 1);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_alarm_check_records_the_trigger_and_passes_within_the_tolerance_and_fails_outside_it() {
    let broker = Mosquitto::start();
    let site = lab(&broker.url());
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(20), "the store", || {
        site.with_stdin(&["alarm-check", "list", "--json"], "")
            .status
            .success()
            .then_some(())
    });
    site.add_signer("tech", "Tom Technician", PASSWORD);
    // Published until stored: the daemon may not have subscribed yet (a busy machine:
    // this is the first test binary CI runs, while the fuzz targets build beside it).
    site.wait_daemon(Duration::from_secs(90), "a cold reading to be stored", || {
        broker.publish(TOPIC, "-190.0", 1);
        std::thread::sleep(Duration::from_millis(300));
        (!site.history(SENSOR).is_empty()).then_some(())
    });

    // Nothing to finish yet; a sensor with no high or low rule cannot be checked.
    let early = finish(&site, "-150.0");
    assert_eq!(early.status.code(), Some(2), "{}", text(&early));
    let unknown = site.with_stdin(&["alarm-check", "start", "--sensor", "nope", "--by", "tech"], "");
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));

    let started = start(&site);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        text(&started).contains("alarm check 1 of dewar-1.temp started by tech"),
        "{}",
        text(&started)
    );
    let twice = start(&site);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice));

    // Warming past the threshold raises the alarm, stored and held under the check.
    warm(&broker, &["-170.0", "-160.0", "-149.2", "-140.0"]);
    let alarm = wait_for(Duration::from_secs(20), "the warm alarm", || warm_alarm(&site));
    assert!(
        alarm["suppressed"]
            .as_str()
            .is_some_and(|s| s.contains("alarm check 1 by tech")),
        "{alarm}"
    );

    // A wrong password records nothing: the check is still running.
    let wrong = site.with_stdin(
        &[
            "alarm-check",
            "finish",
            "--sensor",
            SENSOR,
            "--reference",
            "-149.5",
            "--by",
            "tech",
        ],
        "not it\n",
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    let listed = site.with_stdin(&["alarm-check", "list", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(rows[0]["state"], "running", "{rows:?}");

    // The reference read -149.5 at the trigger: 0.5 from the threshold, within 1.0.
    let passed = finish(&site, "-149.5");
    assert!(passed.status.success(), "{}", text(&passed));
    let out = text(&passed);
    assert!(out.contains("rule warm (threshold -150) triggered at -149.2"), "{out}");
    assert!(out.contains("alarm check 1 of dewar-1.temp passed"), "{out}");
    assert!(out.contains("difference +0.5"), "{out}");
    // Finished: the still active alarm is no longer held.
    let alarm = warm_alarm(&site).expect("the warm alarm is still active");
    assert!(alarm["suppressed"].is_null(), "{alarm}");

    // Back to normal; a second check whose reference read -152.0: 2.0 below, failed.
    warm(&broker, &["-190.0"]);
    wait_for(Duration::from_secs(20), "the warm alarm to clear", || {
        warm_alarm(&site).is_none().then_some(())
    });
    let started = start(&site);
    assert!(started.status.success(), "{}", text(&started));
    warm(&broker, &["-170.0", "-145.0"]);
    wait_for(Duration::from_secs(20), "the second warm alarm", || warm_alarm(&site));
    let failed = finish(&site, "-152");
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let out = text(&failed);
    assert!(out.contains("rule warm (threshold -150) triggered at -145"), "{out}");
    assert!(out.contains("alarm check 2 of dewar-1.temp failed"), "{out}");
    assert!(out.contains("difference -2"), "{out}");

    let listed = site.with_stdin(&["alarm-check", "list", "--json"], "");
    assert!(listed.status.success(), "{}", text(&listed));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    let states: Vec<&str> = rows.iter().filter_map(|r| r["state"].as_str()).collect();
    assert_eq!(states, ["passed", "failed"], "{rows:?}");
    assert_eq!(rows[0]["triggers"][0]["value"], -149.2);
    assert_eq!(rows[0]["printed_name"], "Tom Technician");
    site.stop_daemon(daemon);

    let verified = site.with_stdin(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified));

    // A failed check edited into a pass fails verification, naming it.
    let db = site.path().join("cryowatch.db");
    let edit = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE alarm_check SET state = 'passed', reference = -150.5, difference = -0.5 WHERE id = 2")
        .output()
        .expect("sqlite3");
    assert!(edit.status.success());
    let broken = site.with_stdin(&["audit", "verify"], "");
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(
        text(&broken).contains("alarm check 2 of dewar-1.temp"),
        "{}",
        text(&broken)
    );
}

#[test]
fn an_alarm_check_not_finished_within_max_duration_is_abandoned_and_cannot_be_finished() {
    // No daemon: the command line applies the check's shelving itself.
    let site = lab_with("mqtt://127.0.0.1:9", "2s");
    site.add_signer("tech", "Tom Technician", PASSWORD);
    let started = start(&site);
    assert!(started.status.success(), "{}", text(&started));
    let listed = site.with_stdin(&["alarm-check", "list", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(rows[0]["state"], "running", "{rows:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let listed = site.with_stdin(&["alarm-check", "list", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(rows[0]["state"], "abandoned", "{rows:?}");
    let late = finish(&site, "-150.0");
    assert_eq!(late.status.code(), Some(2), "{}", text(&late));
    assert!(
        text(&late).contains("no alarm check of dewar-1.temp is running"),
        "{}",
        text(&late)
    );
    let log = site.with_stdin(&["audit", "log", "--kind", "alarm_check.abandoned", "--json"], "");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("alarm check 1"),
        "{}",
        text(&log)
    );
    // A new check can start once the old one is abandoned.
    let again = start(&site);
    assert!(again.status.success(), "{}", text(&again));
    let verified = site.with_stdin(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified));
}
