//! The physical alarm check on the simulated dewar (cryosim over Modbus TCP, polled
//! every 250 ms), with the real daemon, store and an SMTP server: a weekly
//! `[[alarm_check_schedule]]` whose last week ended without a check is overdue
//! (`status`, a reminder mail to `[quality] notify`, once); a check pages only the person
//! doing it; cryosim warms the probe and the trigger is the first polled reading past
//! the set point, within one poll of it; one check passes and one fails, and both are in
//! the asset report (each alarm's peak the warmest reading past the set point); once a
//! check is done the schedule is no longer overdue.

mod common;

use std::time::Duration;

use common::cryosim::CryoSim;
use common::smtp::{ReceivedMail, SmtpServer};
use common::{Site, output_text as text, wait_for};
use cryowatch::model::period::{Every, last_ended};
use cryowatch::model::{Quality, now_ms};
use cryowatch::store::Store;

const PASSWORD: &str = "alarm check password 2026";
const SENSOR: &str = "dewar-1.temp";
/// °C per minute: 2 °C a second, 0.5 °C a poll.
const WARMUP: f64 = 120.0;

fn lab(sim: &CryoSim, smtp: &SmtpServer) -> Site {
    Site::new(&format!(
        r#"[site]
name = "alarm check sim lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
{dewar}
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
escalation = "oncall"
[[contact]]
id = "tech"
name = "Tom Technician"
email = "tech@example.org"
[[contact]]
id = "nurse"
name = "Nina Nurse"
email = "nurse@example.org"
[[contact]]
id = "qa"
name = "Quinn Quality"
email = "qa@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:nurse"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
[quality]
notify = ["contact:qa"]
[alarm_check]
tolerance = 1.0
[[alarm_check_schedule]]
assets = ["dewar-1"]
every = "weekly"
"#,
        dewar = sim.dewar_toml(),
        port = smtp.port
    ))
}

/// A reading of the probe in the middle of last week: it was monitored then.
fn seed_last_week(site: &Site) {
    let week = last_ended(Every::Weekly, now_ms(), &jiff::tz::TimeZone::UTC).expect("last week");
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    let ids = store
        .register_sensors(&[(SENSOR.into(), "degC".into())])
        .expect("sensor");
    store
        .insert(&[(ids[0], week.from + 3 * 86_400_000, Some(-190.0), Quality::Good)])
        .expect("reading");
}

fn to(mails: &[ReceivedMail], who: &str) -> Vec<String> {
    mails
        .iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r.starts_with(who)))
        .map(|m| m.header("Subject").unwrap_or_default().to_string())
        .collect()
}

fn warm_alarm(site: &Site) -> Option<serde_json::Value> {
    let out = site.with_stdin(&["alarms", "--active", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    rows.into_iter().find(|a| a["rule"] == "warm")
}

/// One check: started by `tech`, the probe warmed until the alarm is raised (and, with
/// `page`, until the checker's page has arrived), cooled until the alarm clears (still
/// under the check), then finished with `reference`.
fn check(site: &Site, sim: &CryoSim, reference: &str, page: Option<&SmtpServer>) -> std::process::Output {
    let started = site.with_stdin(&["alarm-check", "start", "--sensor", SENSOR, "--by", "tech"], "");
    assert!(started.status.success(), "{}", text(&started));
    sim.set("dewar-1", &format!("warmup:{WARMUP}"));
    wait_for(Duration::from_secs(60), "the warm alarm", || warm_alarm(site));
    if let Some(smtp) = page {
        let tech = wait_for(Duration::from_secs(30), "the checker's page", || {
            let got = to(&smtp.messages(), "tech@");
            (!got.is_empty()).then_some(got)
        });
        assert!(tech[0].contains("dewar-1"), "{tech:?}");
    }
    sim.set("dewar-1", "steady");
    wait_for(Duration::from_secs(30), "the warm alarm to clear", || {
        warm_alarm(site).is_none().then_some(())
    });
    common::quality_lab::finish_alarm_check(site, SENSOR, reference, "tech", PASSWORD)
}

#[test]
fn a_scheduled_check_on_the_simulated_dewar_pages_only_the_checker_triggers_within_a_poll_and_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(dir.path());
    let sim = CryoSim::start(dir.path());
    let site = lab(&sim, &smtp);
    seed_last_week(&site);
    site.add_signer("tech", "Tom Technician", PASSWORD);
    let daemon = site.start_daemon();

    // Last week ended without a check: overdue, said by `status` and mailed to QA once.
    let reminder = wait_for(Duration::from_secs(30), "the overdue reminder", || {
        to(&smtp.messages(), "qa@")
            .into_iter()
            .find(|s| s.contains("alarm check"))
    });
    assert!(
        reminder.contains("REMINDER alarm check sim lab: the weekly alarm check of dewar-1.temp (dewar-1)"),
        "{reminder}"
    );
    let status = site.with_stdin(&["status"], "");
    assert!(
        text(&status).contains("NOTICE: the weekly alarm check of dewar-1.temp (dewar-1)")
            && text(&status).contains("is overdue"),
        "{}",
        text(&status)
    );

    // The first check: the alarm pages the checker, nobody else; the reference at the
    // trigger read -150.4, within 1.0 of the set point.
    let passed = check(&site, &sim, "-150.4", Some(&smtp));
    assert!(passed.status.success(), "{}", text(&passed));
    assert!(
        text(&passed).contains("alarm check 1 of dewar-1.temp passed"),
        "{}",
        text(&passed)
    );

    // The trigger is the first polled reading past the set point: the reading before it
    // was not, and it lies within one poll's warming of the set point.
    let listed = site.with_stdin(&["alarm-check", "list", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    let trigger = &rows[0]["triggers"][0];
    let value = trigger["value"].as_f64().expect("trigger value");
    let history = site.history(SENSOR);
    let at = history
        .iter()
        .position(|r| r.value == Some(value) && r.time.starts_with(&trigger_time(trigger)))
        .unwrap_or_else(|| panic!("trigger {trigger} among the readings"));
    let before = history[at - 1].value.expect("the reading before");
    assert!(before <= -150.0 && value > -150.0, "{before} then {value}");
    let poll_s = (ms_of(&history[at].time) - ms_of(&history[at - 1].time)) as f64 / 1000.0;
    assert!(
        value - -150.0 <= WARMUP / 60.0 * poll_s + 0.01,
        "trigger {value} is more than one poll ({poll_s} s) past the set point"
    );

    // The second: the reference read -152.0, 2.0 from the set point: failed.
    let failed = check(&site, &sim, "-152.0", None);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("alarm check 2 of dewar-1.temp failed"),
        "{}",
        text(&failed)
    );

    // Nobody but the checker was paged for either alarm; the week's check is done.
    std::thread::sleep(Duration::from_secs(2));
    let mails = smtp.messages();
    assert!(to(&mails, "nurse@").is_empty(), "{:?}", to(&mails, "nurse@"));
    assert_eq!(to(&mails, "qa@").len(), 1, "one reminder: {:?}", to(&mails, "qa@"));
    let status = site.with_stdin(&["status"], "");
    assert!(!text(&status).contains("alarm check of"), "{}", text(&status));
    site.stop_daemon(daemon);

    // Both checks in the asset report: set point, trigger, reference, difference, result.
    let csv = site.path().join("report.csv");
    let out = site.report("dewar-1", ("-1h", "now"), &csv, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = std::fs::read_to_string(&csv).expect("csv");
    let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("alarm_check,")).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0].contains(&format!(
            "set point -150; trigger value {value}; reference -150.4; difference -0.40; passed"
        )),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("reference -152; difference -2.00; failed"),
        "{}",
        rows[1]
    );
    assert!(rows[0].contains("signed by Tom Technician (tech)"), "{}", rows[0]);
    // Each alarm's peak is the warmest reading beyond the set point, the one that
    // tripped it included (stamped just before the commit that raised the alarm).
    let peaks: Vec<f64> = csv
        .lines()
        .filter(|l| l.starts_with("excursion,"))
        .map(|l| l.split(',').nth(5).and_then(|v| v.parse().ok()).expect("peak"))
        .collect();
    assert_eq!(peaks.len(), 2, "{csv}");
    assert!(peaks.iter().all(|p| *p > -150.0), "{peaks:?}\n{csv}");
    let pdf = site.path().join("report.pdf");
    let out = site.report("dewar-1", ("-1h", "now"), &pdf, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let pdf = common::pdf_text(&pdf).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(pdf.contains("Alarm checks"), "{pdf}");
    assert!(pdf.contains("alarm check 2 failed"), "{pdf}");
    // Each check's signature, meaning "alarm check", among the report's signatures.
    assert!(pdf.contains("alarm check alarm check 1"), "{pdf}");
    assert!(pdf.contains("alarm check alarm check 2"), "{pdf}");
}

fn ms_of(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>().expect("time").as_millisecond()
}

/// The trigger's time as `history` prints it, to the second.
fn trigger_time(trigger: &serde_json::Value) -> String {
    let t = trigger["t"].as_i64().expect("trigger time");
    let s = jiff::Timestamp::from_millisecond(t).expect("time").to_string();
    s.get(..19).unwrap_or(&s).to_string()
}
