//! `kill -9` at random moments (seeded) while an alarm escalates and readings flow, with
//! a restart after each kill. Pages are counted at the peers — aiosmtpd, and the fake GSM
//! modem for the first step's SMS — per (alarm, round, step, contact, channel); readings
//! are counted by their source timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{Feed, base_config, email_channel, json_sensor, mail_duplicates, message_id_number, outbox};
use crate::common::Site;
use crate::common::modem::FakeModem;
use crate::common::mosquitto::Mosquitto;
use crate::common::smtp::SmtpServer;
use crate::outcome::Outcome;

const KILLS: usize = 20;
const CLIENT: &str = "cw-fault-kill";
const SENSOR: &str = "dewar-1.temp";
/// Escalation: steps at 0 s, 2 s, 4 s to alice, bob, carol; the sequence runs again 2 s
/// after the last step, 3 more times.
const STEPS: [&str; 3] = ["alice", "bob", "carol"];
const REPEAT: i64 = 3;

fn config(broker: &Mosquitto, smtp: &SmtpServer, modem: &FakeModem) -> String {
    let mut text = base_config(broker, CLIENT);
    text.push_str(&json_sensor(SENSOR, "lab/dewar-1/temp", true));
    text.push_str(&format!(
        r#"
[[rule]]
id = "dewar-warm"
sensor = "{SENSOR}"
kind = "high"
threshold = -150.0
hysteresis = 1.0
severity = "critical"
escalation = "oncall"

[[escalation]]
id = "oncall"
repeat = {REPEAT}
repeat_interval = "2s"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email", "sms"]
[[escalation.step]]
after = "2s"
notify = ["contact:bob"]
via = ["email"]
[[escalation.step]]
after = "4s"
notify = ["contact:carol"]
via = ["email"]
"#
    ));
    for (i, who) in STEPS.iter().enumerate() {
        text.push_str(&format!(
            "\n[[contact]]\nid = \"{who}\"\nname = \"{who}\"\nemail = \"{who}@example.org\"\nphone = \"+1555000000{i}\"\n"
        ));
    }
    text.push_str(&email_channel(smtp.port));
    text.push_str(&format!(
        "\n[[channel]]\nid = \"sms\"\nkind = \"gsm_modem\"\nserial = \"{}\"\nbaud = 115200\n",
        modem.tty.display()
    ));
    text
}

pub fn run() -> Outcome {
    let mut out = Outcome::new("kill -9 during escalation");
    let seed: u64 = std::env::var("CRYOWATCH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| super::now_ms() as u64);
    eprintln!("faults: kill -9 seed {seed} (CRYOWATCH_FAULT_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let broker = Mosquitto::start();
    let site_dir = tempfile::tempdir().expect("smtp dir");
    let smtp = SmtpServer::start(site_dir.path());
    let modem = FakeModem::start(site_dir.path());
    let site = Site::new(&config(&broker, &smtp, &modem));
    let mut daemon = site.start_daemon();
    super::wait_subscribed(&site, &broker, CLIENT);

    // A warm dewar from the first reading on: the alarm is raised at once and escalates.
    let feed = Feed::start(
        &broker,
        "cw-fault-kill-feed",
        Duration::from_millis(40),
        super::readings("lab/dewar-1/temp", |i| -120.0 + (i % 10) as f64 * 0.1),
    );
    let mut crashes = 0;
    let mut last_restart = Instant::now();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.u64(150..1400)));
        if !daemon.running() {
            crashes += 1;
            eprintln!("faults: the daemon exited by itself:\n{}", tail(&site.daemon_log()));
        } else {
            daemon.signal("KILL");
            let _ = daemon.wait_exit(Duration::from_secs(10));
        }
        daemon = site.start_daemon();
        last_restart = Instant::now();
    }
    // Recovered: a reading published after the last restart is stored.
    let restarted_ms = super::now_ms();
    let flowing = wait_until(Duration::from_secs(30), || {
        super::stored_times(&site, SENSOR).iter().any(|t| *t > restarted_ms)
    })
    .then(|| last_restart.elapsed());

    // Let the escalation finish: every round and step planned and sent.
    // Per round: one mail per step, and the first step's SMS.
    let expected = (REPEAT + 1) * (STEPS.len() as i64 + 1);
    let done = wait_until(Duration::from_secs(40), || {
        let rows = outbox(&site);
        let pages: Vec<_> = rows.iter().filter(|r| r.kind == "page").collect();
        pages.len() as i64 >= expected && pages.iter().all(|r| r.state != "pending")
    });
    let (times, _) = feed.stop();
    let drained = super::wait_stored(&site, SENSOR, &times, Duration::from_secs(30));
    let code = super::finish_feed(&mut out, &site, SENSOR, daemon, &times, crashes, flowing);

    // Pages: the outbox row behind each mail's Message-ID says which occurrence it is.
    let rows = outbox(&site);
    let by_id: BTreeMap<i64, &super::OutboxRow> = rows.iter().map(|r| (r.id, r)).collect();
    let alarms: BTreeSet<i64> = rows
        .iter()
        .filter(|r| r.kind == "page")
        .filter_map(|r| r.alarm)
        .collect();
    let mails = smtp.messages();
    let mut received: BTreeMap<(i64, i64, i64, i64, String, String), u64> = BTreeMap::new();
    let mut unknown = 0;
    for m in &mails {
        match message_id_number(m).and_then(|id| by_id.get(&id)) {
            Some(r) if r.kind == "page" => {
                *received
                    .entry((
                        r.alarm.unwrap_or(0),
                        r.cycle,
                        r.round,
                        r.step,
                        r.contact.clone(),
                        r.channel.clone(),
                    ))
                    .or_insert(0) += 1;
            }
            _ => unknown += 1,
        }
    }
    // SMS carry no id: each is matched to the outbox row that planned its text.
    let sms = modem.sent();
    for m in &sms {
        match rows
            .iter()
            .find(|r| r.kind == "page" && r.channel == "sms" && r.sms == m.text)
        {
            Some(r) => {
                *received
                    .entry((
                        r.alarm.unwrap_or(0),
                        r.cycle,
                        r.round,
                        r.step,
                        r.contact.clone(),
                        r.channel.clone(),
                    ))
                    .or_insert(0) += 1;
            }
            None => unknown += 1,
        }
    }
    let mut expected_keys = BTreeSet::new();
    if let Some(alarm) = alarms.iter().next() {
        let cycle = rows
            .iter()
            .find(|r| r.alarm == Some(*alarm) && r.kind == "page")
            .map(|r| r.cycle)
            .unwrap_or_default();
        for round in 0..=REPEAT {
            for (step, who) in STEPS.iter().enumerate() {
                expected_keys.insert((*alarm, cycle, round, step as i64, who.to_string(), "email".to_string()));
                if step == 0 {
                    expected_keys.insert((*alarm, cycle, round, 0, who.to_string(), "sms".to_string()));
                }
            }
        }
    }
    let sent = expected_keys.iter().filter(|k| received.contains_key(*k)).count() as u64;
    // A kill between the SMTP server (or the modem) accepting a page and the commit that
    // records it sent makes the restarted daemon send that page again, from the same
    // outbox row and, for a mail, under the same Message-ID: at-least-once, so that no
    // kill can lose a page (as for the power cut). Counted and shown, at most one per
    // kill; a page is duplicated when it arrives under two Message-IDs (two outbox rows
    // or a new identity for the same row).
    let resent: u64 = received.values().map(|n| n.saturating_sub(1)).sum();
    let dup_pages = super::under_two_ids(&mails);
    let (dup_by_id, dup_by_content) = mail_duplicates(&mails);
    out.pages_expected = Some(expected as u64);
    out.pages_sent = Some(sent);
    out.pages_missed = Some((expected as u64).saturating_sub(sent));
    out.pages_duplicated = Some(dup_pages);
    out.detail = format!(
        "{KILLS} kills, seed {seed}; {} mails and {} SMS for {} alarm(s); {resent} sent again from the same outbox row after a kill between acceptance and its record (mails under the same Message-ID: {dup_by_id} of {dup_by_content} repeated contents); {unknown} messages matching no page; backlog {}; recovery = last restart to readings stored again",
        mails.len(),
        sms.len(),
        alarms.len(),
        if drained.is_some() {
            "all stored"
        } else {
            "NOT all stored within 30 s"
        }
    );
    if resent > KILLS as u64 {
        out.error = Some(format!("{resent} pages sent again: more than one per kill"));
    } else if !done {
        out.error = Some(format!(
            "escalation did not finish: outbox {:?}; log tail:\n{}",
            rows.iter()
                .map(|r| (r.kind.as_str(), r.round, r.step, r.state.as_str()))
                .collect::<Vec<_>>(),
            tail(&site.daemon_log())
        ));
    } else if alarms.len() != 1 {
        out.error = Some(format!("expected one alarm, the outbox pages {} alarms", alarms.len()));
    } else if code != Some(0) {
        out.error = Some(format!("the daemon did not stop cleanly (exit {code:?})"));
    }
    out
}

/// Polls `f` every 200 ms for up to `within`.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// The last lines of a log, for error messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
