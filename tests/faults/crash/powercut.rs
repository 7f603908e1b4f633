//! Power cuts at random moments (seeded) while readings flow, alarms escalate and a
//! person acknowledges them. The store lives on `tests/peers/lazyfs.py`, a FUSE layer
//! that keeps every write in memory until the file is fsynced: a cut is `kill -9` of the
//! daemon followed by dropping everything not fsynced, then a restart on the same store.
//! (FUSE because device-mapper's dm-flakey is not available where the suite runs.)
//!
//! What the cuts must not lose: a reading the broker was told was stored (Mosquitto
//! deletes it on PUBACK), an acknowledgement `cryowatch ack` answered with exit 0, a page
//! of any alarm raised. After every restart `cryowatch audit verify` must pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::kill::{tail, wait_until};
use super::{Feed, base_config, email_channel, json_sensor, message_id_number, outbox_at};
use crate::common::lazyfs::LazyFs;
use crate::common::mosquitto::Mosquitto;
use crate::common::smtp::SmtpServer;
use crate::common::{Site, cryowatch_output};
use crate::outcome::Outcome;

const NAME: &str = "power cut";
const CUTS: usize = 22;
const CLIENT: &str = "cw-fault-powercut";
const SENSOR: &str = "dewar-1.temp";
const RULE: &str = "dewar-warm";
/// Readings every 25 ms: 2 s above the threshold, then 2 s below, over and over.
const EVERY: Duration = Duration::from_millis(25);
const PERIOD: u64 = 160;
/// What the daemon logs once its store is open and its sources started.
const RUNNING: &str = "cryowatch running";

fn config(broker: &Mosquitto, smtp: &SmtpServer) -> String {
    let mut text = base_config(broker, CLIENT).replace("{dir}/cryowatch.db", "{dir}/vol/cryowatch.db");
    text.push_str(&json_sensor(SENSOR, "lab/dewar-1/temp", true));
    // Latching: an alarm stays open until someone acknowledges it, so every alarm is
    // paged (a page is cancelled only by an acknowledgement, which comes after it).
    text.push_str(&format!(
        r#"
[[rule]]
id = "{RULE}"
sensor = "{SENSOR}"
kind = "high"
threshold = -150.0
hysteresis = 1.0
severity = "critical"
latching = true
escalation = "oncall"

[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[escalation.step]]
after = "3s"
notify = ["contact:bob"]
via = ["email"]

[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[contact]]
id = "bob"
name = "Bob"
email = "bob@example.org"
"#
    ));
    text.push_str(&email_channel(smtp.port));
    text
}

/// `cryowatch alarms --json`: every alarm as the store has it.
fn alarms(site: &Site) -> Vec<Value> {
    let out = cryowatch_output(&["alarms", "-c", &site.config_str(), "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
}

/// Alarms of the rule that are open and not yet acknowledged, whose first page has
/// reached aiosmtpd: what a person who was paged acknowledges.
fn paged_unacked(site: &Site, store: &Path, smtp: &SmtpServer) -> Vec<i64> {
    let rows = outbox_at(store);
    let paged: BTreeSet<i64> = smtp
        .messages()
        .iter()
        .filter_map(message_id_number)
        .filter_map(|id| rows.iter().find(|r| r.id == id))
        .filter(|r| r.kind == "page" && r.step == 0)
        .filter_map(|r| r.alarm)
        .collect();
    alarms(site)
        .iter()
        .filter(|a| a["rule"] == RULE && a["state"] == "active")
        .filter_map(|a| a["id"].as_i64())
        .filter(|id| paged.contains(id))
        .collect()
}

pub fn run() -> Outcome {
    let mut out = Outcome::new(NAME);
    if let Some(why) = LazyFs::unavailable() {
        eprintln!("faults: {NAME}: SKIPPED: {why}");
        out.detail = format!("SKIPPED: {why}");
        return out;
    }
    let seed: u64 = std::env::var("CRYOWATCH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| super::now_ms() as u64);
    eprintln!("faults: {NAME} seed {seed} (CRYOWATCH_FAULT_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let broker = Mosquitto::start();
    let peers = tempfile::tempdir().expect("peer dir");
    let smtp = SmtpServer::start(peers.path());
    let site = Site::new(&config(&broker, &smtp));
    // Declared after `site`: unmounted before the site's directory is removed.
    let fs = LazyFs::mount(&site.path().join("backing"), &site.path().join("vol"), peers.path());
    let store = fs.mount.join("cryowatch.db");
    let cfg = site.config_str();

    let mut daemon = site.start_daemon();
    super::wait_subscribed(&site, &broker, CLIENT);
    let feed = Feed::start(
        &broker,
        "cw-fault-powercut-feed",
        EVERY,
        super::readings("lab/dewar-1/temp", |i| {
            if i % PERIOD < PERIOD / 2 { -120.0 } else { -180.0 }
        }),
    );

    let mut acked: Vec<(i64, String)> = Vec::new();
    let mut ack_refused = 0;
    let mut verify_failed: Vec<String> = Vec::new();
    let mut crashes = 0;
    let (mut cut_files, mut cut_bytes) = (0, 0);
    let mut last_restart = Instant::now();
    let mut problems = Vec::new();
    for n in 0..CUTS {
        // Run a while; a person acknowledges a paged alarm at a random moment, sometimes
        // just before the cut.
        let until = Instant::now() + Duration::from_millis(rng.u64(1200..3200));
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(rng.u64(100..600)));
            if !rng.bool() {
                continue;
            }
            if let Some(id) = paged_unacked(&site, &store, &smtp).first().copied() {
                let comment = format!("checked the dewar, ack {}", acked.len() + 1);
                let id_text = id.to_string();
                let ack = cryowatch_output(&["ack", "-c", &cfg, &id_text, "--by", "nurse", "--comment", &comment]);
                if ack.status.success() {
                    acked.push((id, comment));
                } else {
                    ack_refused += 1;
                    eprintln!(
                        "faults: {NAME}: ack {id} refused: {}",
                        String::from_utf8_lossy(&ack.stderr).trim()
                    );
                }
            }
        }
        // The cut: the process dies, then everything not fsynced is gone.
        if daemon.running() {
            daemon.signal("KILL");
            let _ = daemon.wait_exit(Duration::from_secs(10));
        } else {
            crashes += 1;
            eprintln!("faults: the daemon exited by itself:\n{}", tail(&site.daemon_log()));
        }
        let cut = fs.cut();
        cut_files += cut.files;
        cut_bytes += cut.bytes;
        let started = super::log_lines(&site, RUNNING);
        daemon = site.start_daemon();
        last_restart = Instant::now();
        // The store is open again (recovered) before anyone reads it.
        if !wait_until(Duration::from_secs(20), || super::log_lines(&site, RUNNING) > started) {
            problems.push(format!("the daemon did not start again after cut {}", n + 1));
        }
        let verify = cryowatch_output(&["audit", "verify", "-c", &cfg]);
        if !verify.status.success() {
            verify_failed.push(format!(
                "after cut {}: {}",
                n + 1,
                String::from_utf8_lossy(&verify.stderr).trim()
            ));
        }
    }

    // Recovered: a reading published after the last restart is stored.
    let restarted_ms = super::now_ms();
    let flowing = wait_until(Duration::from_secs(30), || {
        super::stored_times(&site, SENSOR).iter().any(|t| *t > restarted_ms)
    })
    .then(|| last_restart.elapsed());
    let (times, _) = feed.stop();
    let drained = super::wait_stored(&site, SENSOR, &times, Duration::from_secs(30));
    // Escalations finish: nothing left to send.
    let settled = wait_until(Duration::from_secs(30), || {
        outbox_at(&store).iter().all(|r| r.state != "pending")
    });
    let code = super::finish_feed(&mut out, &site, SENSOR, daemon, &times, crashes, flowing);

    // Acknowledgements answered with exit 0 are on their alarm, with their comment.
    let all = alarms(&site);
    let by_id: BTreeMap<i64, &Value> = all.iter().filter_map(|a| Some((a["id"].as_i64()?, a))).collect();
    let acks_lost: Vec<i64> = acked
        .iter()
        .filter(|(id, comment)| {
            by_id
                .get(id)
                .is_none_or(|a| a["acknowledged_by"] != "nurse" || a["comment"] != comment.as_str())
        })
        .map(|(id, _)| *id)
        .collect();

    // Pages: each mail names its outbox row in its Message-ID.
    let rows = outbox_at(&store);
    let row_by_id: BTreeMap<i64, &super::OutboxRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mails = smtp.messages();
    let mut received: BTreeMap<i64, u64> = BTreeMap::new();
    let mut unknown = 0;
    for m in &mails {
        match message_id_number(m).and_then(|id| row_by_id.get(&id)) {
            Some(r) if m.header("Subject").is_some_and(|s| s.trim() == r.subject.trim()) => {
                *received.entry(r.id).or_insert(0) += 1;
            }
            _ => unknown += 1,
        }
    }
    let rule_alarms: Vec<i64> = all
        .iter()
        .filter(|a| a["rule"] == RULE)
        .filter_map(|a| a["id"].as_i64())
        .collect();
    // Expected: the first step of every alarm, and every page the store says it sent.
    let mut expected: BTreeSet<(i64, i64)> = BTreeSet::new(); // (alarm, outbox id or -1)
    for alarm in &rule_alarms {
        let first = rows
            .iter()
            .find(|r| r.kind == "page" && r.alarm == Some(*alarm) && r.step == 0 && r.round == 0);
        expected.insert((*alarm, first.map_or(-1, |r| r.id)));
    }
    for r in rows.iter().filter(|r| r.kind == "page" && r.state == "sent") {
        expected.insert((r.alarm.unwrap_or(0), r.id));
    }
    let sent = expected.iter().filter(|(_, id)| received.contains_key(id)).count() as u64;
    // A cut between the SMTP server accepting a page and the commit that records it sent
    // makes the restarted daemon send that page again, under the same Message-ID (the
    // same outbox row): at-least-once, so that no cut can lose a page. Counted and shown,
    // not a duplicate. Two different outbox rows for one page would be.
    let resent: u64 = received.values().map(|n| n.saturating_sub(1)).sum();
    let dup_pages = super::under_two_ids(&mails);
    if resent > CUTS as u64 {
        problems.push(format!("{resent} pages sent again: more than one per cut"));
    }
    out.pages_expected = Some(expected.len() as u64);
    out.pages_sent = Some(sent);
    out.pages_missed = Some(expected.len() as u64 - sent);
    out.pages_duplicated = Some(dup_pages);
    let other_rules: BTreeSet<&str> = all
        .iter()
        .filter_map(|a| a["rule"].as_str())
        // A sensor's stale alarm only says readings stopped (they do, at the end).
        .filter(|r| *r != RULE && !r.ends_with(":stale"))
        .collect();
    out.detail = format!(
        "{CUTS} cuts on a FUSE layer that drops unsynced writes (lazyfs.py), seed {seed}; {cut_bytes} unsynced bytes dropped in {cut_files} file(s) over the cuts; {} alarms, {} acknowledged with exit 0 ({} lost), {ack_refused} acks refused; {} mails ({resent} sent again under the same Message-ID after a cut between the server's acceptance and its record); audit verify failed after {} of {CUTS} restarts; backlog {}; recovery = last restart to readings stored again",
        rule_alarms.len(),
        acked.len(),
        acks_lost.len(),
        mails.len(),
        verify_failed.len(),
        if drained.is_some() {
            "all stored"
        } else {
            "NOT all stored within 30 s"
        }
    );
    eprintln!("faults: {NAME}: {}", out.detail);

    if !acks_lost.is_empty() {
        problems.push(format!(
            "acknowledgements answered with exit 0 are missing from alarms {acks_lost:?}"
        ));
    }
    if !verify_failed.is_empty() {
        problems.push(format!("audit verify failed {}", verify_failed.join("; ")));
    }
    if unknown > 0 {
        problems.push(format!(
            "{unknown} mails match no page in the store (the store forgot pages it sent)"
        ));
    }
    if !other_rules.is_empty() {
        problems.push(format!("unexpected alarms of {other_rules:?}"));
    }
    if rule_alarms.len() < 2 || acked.is_empty() {
        problems.push(format!(
            "too little happened to judge: {} alarms, {} acknowledgements",
            rule_alarms.len(),
            acked.len()
        ));
    }
    if !settled {
        problems.push("pages still pending 30 s after the feed stopped".to_string());
    }
    super::conclude(&mut out, problems, code, &site);
    if out.error.is_some() {
        eprintln!("faults: {NAME}: lazyfs log tail:\n{}", tail(&fs.log()));
    }
    out
}
