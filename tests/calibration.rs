//! The calibration register against the real daemon, Mosquitto and the store: a probe
//! with no calibration is `never`; one recorded due in 60 days raises the warning
//! `<sensor>:calibration` (within 90 days), which, acknowledged, is raised again when one
//! due in 20 days reaches the 30-day stage; one already due upgrades it to an `alarm`
//! (`<sensor>:calibration-due`), and a new certificate clears it. Each record
//! is signed with meaning `calibration` (a wrong password records nothing, audited, exit
//! 1); `audit verify` proves them and catches an edited one.

mod common;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::{Site, output_text as text, wait_for};

const PASSWORD: &str = "calibration password 2026";

fn lab(broker: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "calibration lab"
timezone = "Europe/Berlin"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{broker}"
client_id = "calibration-test"
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
[calibration]
warn_before = ["90d", "30d"]
"#
    ))
}

/// A date `days` from today (negative: in the past), in the site's time zone.
fn day(days: i64) -> String {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Berlin").expect("tz"))
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .expect("date")
        .to_string()
}

fn record(site: &Site, certificate: &str, calibrated: i64, due: i64, password: &str) -> std::process::Output {
    site.with_stdin(
        &[
            "calibration",
            "record",
            "--sensor",
            "dewar-1.temp",
            "--certificate",
            certificate,
            "--calibrated",
            &day(calibrated),
            "--due",
            &day(due),
            "--as-found",
            "0.4",
            "--as-left",
            "0.1",
            "--reference",
            "SPRT ref-7 (cert. R-2291)",
            "--offset",
            "-0.3",
            "--by",
            "metro",
        ],
        &format!("{password}\n"),
    )
}

fn listed(site: &Site) -> serde_json::Value {
    let out = site.with_stdin(&["calibration", "list", "--json"], "");
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    rows.into_iter()
        .find(|r| r["sensor"] == "dewar-1.temp")
        .expect("dewar-1.temp listed")
}

/// The open calibration alarm of dewar-1.temp: (rule, severity); `None` when none is open.
fn open_alarm(site: &Site) -> Option<(String, String)> {
    let out = site.with_stdin(&["alarms", "--active", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    rows.iter()
        .find(|a| {
            a["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("dewar-1.temp:calibration"))
        })
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or("").to_string(),
                a["severity"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[test]
fn a_probes_calibration_warns_before_it_is_due_alarms_when_due_and_clears_with_a_new_certificate() {
    let broker = Mosquitto::start();
    let site = lab(&broker.url());
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(20), "the store", || {
        site.with_stdin(&["calibration", "list", "--json"], "")
            .status
            .success()
            .then_some(())
    });
    assert_eq!(listed(&site)["status"], "never");
    site.add_signer("metro", "Mia Metrologist", PASSWORD);

    // A wrong password records nothing and is audited.
    let wrong = record(&site, "CAL-0001", -300, 60, "not it");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert_eq!(listed(&site)["status"], "never");
    let refused = site.with_stdin(&["audit", "log", "--kind", "signature.refused", "--json"], "");
    assert!(String::from_utf8_lossy(&refused.stdout).contains("calibration of dewar-1.temp"));
    // Bad input: exit 2, nothing recorded.
    let backwards = record(&site, "CAL-0001", -300, -400, PASSWORD);
    assert_eq!(backwards.status.code(), Some(2), "{}", text(&backwards));
    let future = record(&site, "CAL-0001", 3, 400, PASSWORD);
    assert_eq!(future.status.code(), Some(2), "{}", text(&future));

    // Due in 60 days: due soon, a warning.
    let ok = record(&site, "CAL-0001", -300, 60, PASSWORD);
    assert!(ok.status.success(), "{}", text(&ok));
    let row = listed(&site);
    assert_eq!(row["status"], "due soon");
    assert_eq!(row["certificate"], "CAL-0001");
    assert_eq!(row["printed_name"], "Mia Metrologist");
    assert_eq!(row["offset"], -0.3);
    let (rule, severity) = wait_for(Duration::from_secs(20), "the 90-day warning", || open_alarm(&site));
    assert_eq!(
        (rule.as_str(), severity.as_str()),
        ("dewar-1.temp:calibration", "warning")
    );

    // Acknowledged at 60 days left; at 20 days the 30-day stage is reached: the same
    // alarm is raised again, unacknowledged, so it is paged again.
    let active = |site: &Site| -> Vec<serde_json::Value> {
        let out = site.with_stdin(&["alarms", "--active", "--json"], "");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let warning = active(&site).into_iter().next().expect("the warning");
    let id = warning["id"].as_i64().expect("id").to_string();
    let acked = site.with_stdin(&["ack", &id, "--by", "metro", "--comment", "booked"], "");
    assert!(acked.status.success(), "{}", text(&acked));
    wait_for(Duration::from_secs(20), "the acknowledgement", || {
        active(&site).iter().any(|a| a["state"] == "acknowledged").then_some(())
    });
    let soon = record(&site, "CAL-0001B", -340, 20, PASSWORD);
    assert!(soon.status.success(), "{}", text(&soon));
    let again = wait_for(Duration::from_secs(20), "the 30-day stage", || {
        active(&site)
            .into_iter()
            .find(|a| a["rule"] == "dewar-1.temp:calibration-30days" && a["state"] == "active")
    });
    assert_eq!(again["id"].as_i64().map(|i| i.to_string()), Some(id), "{again}");
    assert_eq!(again["severity"], "warning", "{again}");

    // Due yesterday: overdue, upgraded to an alarm.
    let late = record(&site, "CAL-0002", -400, -1, PASSWORD);
    assert!(late.status.success(), "{}", text(&late));
    assert_eq!(listed(&site)["status"], "overdue");
    let (rule, severity) = wait_for(Duration::from_secs(20), "the due alarm", || {
        open_alarm(&site).filter(|(_, s)| s == "alarm")
    });
    assert_eq!(rule, "dewar-1.temp:calibration-due");
    assert_eq!(severity, "alarm");

    // A new certificate, due in a year: ok, and the alarm clears.
    let renewed = record(&site, "CAL-0003", 0, 365, PASSWORD);
    assert!(renewed.status.success(), "{}", text(&renewed));
    assert_eq!(listed(&site)["status"], "ok");
    wait_for(Duration::from_secs(20), "the calibration alarm to clear", || {
        open_alarm(&site).is_none().then_some(())
    });
    site.stop_daemon(daemon);

    let verified = site.with_stdin(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified));

    // The report lists the certificates in force and flags the span the probe ran
    // overdue (from CAL-0002's due date until CAL-0003 was recorded).
    let csv = site.path().join("report.csv");
    let out = site.report("dewar-1", ("-2d", "now"), &csv, &["--by", "metro"]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = std::fs::read_to_string(&csv).expect("csv");
    let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("calibration,")).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let overdue: Vec<&&str> = rows.iter().filter(|l| l.contains("OVERDUE")).collect();
    assert_eq!(overdue.len(), 1, "{csv}");
    assert!(overdue[0].contains("certificate CAL-0002"), "{csv}");
    let pdf = site.path().join("report.pdf");
    let out = site.report("dewar-1", ("-2d", "now"), &pdf, &["--by", "metro"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = common::pdf_text(&pdf).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(printed.contains("dewar-1.temp: calibration overdue from"), "{printed}");

    // An edited certificate fails verification, naming it.
    let db = site.path().join("cryowatch.db");
    let backup = site.path().join("before-edits.db");
    std::fs::copy(&db, &backup).expect("copy the store");
    // When a certificate was recorded decides from when it is in force: signed too.
    let moved = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE calibration SET t = t - 86400000 WHERE certificate = 'CAL-0003'")
        .output()
        .expect("sqlite3");
    assert!(moved.status.success());
    let broken = site.with_stdin(&["audit", "verify"], "");
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(
        text(&broken).contains("calibration 4 of dewar-1.temp"),
        "{}",
        text(&broken)
    );
    std::fs::copy(&backup, &db).expect("restore the store");
    let edit = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE calibration SET due = '2099-01-01' WHERE certificate = 'CAL-0002'")
        .output()
        .expect("sqlite3");
    assert!(edit.status.success());
    let broken = site.with_stdin(&["audit", "verify"], "");
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(
        text(&broken).contains("calibration 3 of dewar-1.temp"),
        "{}",
        text(&broken)
    );
}
