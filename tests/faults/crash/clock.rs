//! The wall clock of the daemon jumps one hour forward, then back, while readings flow
//! and an alarm escalates (libfaketime with `DONT_FAKE_MONOTONIC=1`: timers and
//! intervals keep real time, only timestamps jump). Readings carry no time of their own,
//! so the daemon stamps them on arrival with its clock; they are identified by value.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::kill::wait_until;
use super::{Feed, base_config, email_channel, json_sensor, mail_duplicates, message_id_number, outbox};
use crate::common::Site;
use crate::common::mosquitto::Mosquitto;
use crate::common::smtp::SmtpServer;
use crate::outcome::Outcome;

const CLIENT: &str = "cw-fault-clock";
const SENSOR: &str = "dewar-1.temp";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const CONTACTS: [&str; 3] = ["alice", "bob", "carol"];

fn config(broker: &Mosquitto, smtp: &SmtpServer) -> String {
    let mut text = base_config(broker, CLIENT).replace("stale_after = \"1h\"", "stale_after = \"6h\"");
    text.push_str(&json_sensor(SENSOR, "lab/dewar-1/temp", false));
    text.push_str(
        r#"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = 0.0
hysteresis = 1.0
severity = "critical"
escalation = "oncall"

[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[escalation.step]]
after = "20m"
notify = ["contact:bob"]
via = ["email"]
[[escalation.step]]
after = "40m"
notify = ["contact:carol"]
via = ["email"]
"#,
    );
    for who in CONTACTS {
        text.push_str(&format!(
            "\n[[contact]]\nid = \"{who}\"\nname = \"{who}\"\nemail = \"{who}@example.org\"\n"
        ));
    }
    text.push_str(&email_channel(smtp.port));
    text
}

/// Every stored reading of the sensor, including those stamped after the real now.
fn history_all(site: &Site) -> Vec<crate::common::Row> {
    let out = crate::common::cryowatch_output(&[
        "history",
        "-c",
        &site.config_str(),
        "--sensor",
        SENSOR,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--format",
        "csv",
    ]);
    if !out.status.success() {
        return Vec::new();
    }
    crate::common::parse_csv(&String::from_utf8_lossy(&out.stdout))
}

fn set_offset(file: &Path, seconds: i64) {
    // Written whole and renamed: libfaketime re-reads the file on every clock call.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{seconds:+}\n")).expect("write the faketime file");
    std::fs::rename(&tmp, file).expect("install the faketime file");
}

pub fn run() -> Outcome {
    let mut out = Outcome::new("clock jump +1 h / -1 h");
    if !Path::new(LIBFAKETIME).exists() {
        out.error = Some(format!("{LIBFAKETIME} missing: apt-get install faketime"));
        return out;
    }
    let broker = Mosquitto::start();
    let peers = tempfile::tempdir().expect("peer dir");
    let smtp = SmtpServer::start(peers.path());
    let site = Site::new(&config(&broker, &smtp));
    let clock = site.path().join("faketime.rc");
    set_offset(&clock, 0);
    let env = [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", clock.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    let mut daemon = super::start_daemon_with(&site, &env);
    super::wait_subscribed(&site, &broker, CLIENT);
    // Warm (10 + i/1000 degC) until told, then as cold below zero: the alarm must clear
    // on readings stamped by the clock that stepped back. Every value is distinct and
    // plausible for a temperature (outside its valid range it would be a probe fault).
    let cold = Arc::new(AtomicBool::new(false));
    let feed = Feed::start(&broker, "cw-fault-clock-feed", Duration::from_millis(50), {
        let cold = cold.clone();
        super::readings("lab/dewar-1/temp", move |i| {
            let v = 10.0 + i as f64 / 1000.0;
            if cold.load(Ordering::Relaxed) { -v } else { v }
        })
    });
    // The alarm is raised with the first reading; its first step pages alice at once.
    let first = wait_until(Duration::from_secs(15), || !smtp.messages().is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let before_jump = super::now_ms();
    set_offset(&clock, 3600);
    let jumped = Instant::now();
    // One hour later by the wall clock: bob's (20 min) and carol's (40 min) steps are due.
    let later = wait_until(Duration::from_secs(15), || smtp.messages().len() >= 3);
    let forward_pages = jumped.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    set_offset(&clock, 0);
    std::thread::sleep(Duration::from_secs(1));
    cold.store(true, Ordering::Relaxed);
    let back_at = Instant::now();
    // Back to normal, announced to the three people paged.
    let cleared = wait_until(Duration::from_secs(15), || smtp.messages().len() >= 6);
    let clear_after = back_at.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (_, published) = feed.stop();
    let values: Vec<f64> = (0..published).map(|i| 10.0 + i as f64 / 1000.0).collect();
    let stored_all = wait_until(Duration::from_secs(20), || {
        let rows = history_all(&site);
        values
            .iter()
            .all(|v| rows.iter().any(|r| r.value.map(f64::abs) == Some(*v)))
    });
    std::thread::sleep(Duration::from_secs(1));
    let crashes = u64::from(!daemon.running());
    let alarms: Vec<(String, String)> = super::db(&site)
        .and_then(|c| {
            let mut st = c.prepare("SELECT rule, state FROM alarm ORDER BY id").ok()?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .ok()
        })
        .unwrap_or_default();
    let code = super::stop_daemon(daemon);

    // Readings, by value; and what became of their timestamps.
    let rows = history_all(&site);
    let visible_now = site.history(SENSOR).len();
    // Keyed by thousandths: the values are 10.000, 10.001, ...
    let key = |v: f64| (v.abs() * 1000.0).round() as u64;
    let mut count: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &rows {
        if let Some(v) = r.value {
            *count.entry(key(v)).or_insert(0) += 1;
        }
    }
    let stored = values.iter().filter(|v| count.contains_key(&key(**v))).count() as u64;
    let dup = count.values().filter(|n| **n > 1).count() as u64;
    let ahead = rows
        .iter()
        .filter_map(|r| super::parse_ms(&r.time))
        .filter(|t| *t > before_jump + 30 * 60_000)
        .count();
    let mut by_value: Vec<(f64, i64)> = rows
        .iter()
        .filter_map(|r| Some((r.value?, super::parse_ms(&r.time)?)))
        .collect();
    by_value.sort_by(|a, b| a.0.abs().total_cmp(&b.0.abs()));
    let steps_back = by_value.windows(2).filter(|w| w[1].1 < w[0].1).count();
    out.readings_produced = Some(published);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;

    // Pages: one per step, matched through the Message-ID to its outbox row.
    let ob = outbox(&site);
    let mails = smtp.messages();
    let mut per_step: BTreeMap<(String, i64, i64, String), u64> = BTreeMap::new();
    for m in &mails {
        if let Some(r) = message_id_number(m).and_then(|id| ob.iter().find(|r| r.id == id)) {
            *per_step
                .entry((r.kind.clone(), r.round, r.step, r.contact.clone()))
                .or_insert(0) += 1;
        }
    }
    let (dup_id, dup_content) = mail_duplicates(&mails);
    // Each step's page, and the return to normal to each person paged.
    let expected = 2 * CONTACTS.len() as u64;
    out.pages_expected = Some(expected);
    out.pages_sent = Some(per_step.len() as u64);
    out.pages_missed = Some(expected.saturating_sub(per_step.len() as u64));
    out.pages_duplicated = Some(per_step.values().filter(|n| **n > 1).count() as u64);
    out.recovery = later.then_some(forward_pages);
    let stale: Vec<&(String, String)> = alarms.iter().filter(|(rule, _)| rule.contains("stale")).collect();
    out.detail = format!(
        "alarms {alarms:?}; `history` up to now shows {visible_now} of {} stored (the rest are stamped in the future); steps at +20m/+40m paged {:.1} s after the jump forward (recovery column; escalation counts wall time); cleared and announced {:.1} s after cold readings began, 1 s after the step back; {ahead} readings stamped about 1 h ahead (the jump), {steps_back} place(s) where time steps back in arrival order after the step back (stored as stamped; evaluated, since the engine follows the step); duplicate mails by Message-ID {dup_id}, by content {dup_content}",
        rows.len(),
        forward_pages.as_secs_f64(),
        clear_after.as_secs_f64()
    );
    let mut problems = Vec::new();
    if !cleared {
        problems.push("the alarm did not clear on readings after the step back".into());
    }
    if !first || !later {
        problems.push(format!("pages missing: {} mails", mails.len()));
    }
    if !stale.is_empty() {
        problems.push(format!("spurious stale alarm(s) {stale:?}"));
    }
    if !stored_all {
        problems.push("readings not all stored".into());
    }
    super::conclude(&mut out, problems, code, &site);
    out
}
