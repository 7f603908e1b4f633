//! The audit trail against a real SQLite file: `cryowatch audit verify` passes on an
//! untouched store and names the first broken record after each kind of tampering —
//! editing, deleting, inserting or reordering audit rows, and editing, deleting or adding
//! stored readings — while late readings and retention, which change sealed blocks
//! legitimately, keep it passing.

mod common;

use std::time::Duration;

use common::{Site, cryowatch_output};
use cryowatch::model::{Quality, now_ms};
use cryowatch::store::Store;
use cryowatch::store::audit;
use rusqlite::{Connection, params};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn site() -> Site {
    Site::new(
        r#"
[site]
name = "audit test"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "audit-test"
[store]
path = "{dir}/cryowatch.db"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "t/1"
"#,
    )
}

/// Two sensors, a reading a minute each for the last six hours (sealed in 10-minute
/// blocks up to two minutes ago... one block per call here), and a few audit rows.
fn seeded(site: &Site) -> (Store, i64) {
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    let ids = store
        .register_sensors(&[
            ("dewar-1.temp".into(), "degC".into()),
            ("dewar-1.level".into(), "%".into()),
        ])
        .expect("sensors");
    let now = now_ms();
    let start = (now - 6 * HOUR) / MIN * MIN;
    let mut rows = Vec::new();
    for i in 0..360 {
        for (k, id) in ids.iter().enumerate() {
            rows.push((
                *id,
                start + i * MIN,
                Some(-190.0 + k as f64 + (i % 7) as f64 * 0.1),
                Quality::Good,
            ));
        }
    }
    store.insert(&rows).expect("insert");
    // Seal block by block, the way the writer does as time passes.
    for t in (start..now).step_by(10 * MIN as usize) {
        store.seal_due(t, 10 * MIN, 2 * MIN).expect("seal");
    }
    while store.seal_due(now, 10 * MIN, 2 * MIN).expect("seal").is_some() {}
    for (kind, actor, subject, detail) in [
        (
            "alarm.raised",
            "daemon",
            "sensor dewar-1.temp",
            serde_json::json!({"value": -140.0}),
        ),
        (
            "alarm.acknowledged",
            "ana",
            "sensor dewar-1.temp",
            serde_json::json!({"comment": "lid closed"}),
        ),
        ("notification.sent", "daemon", "notification 1", serde_json::json!({})),
    ] {
        store
            .append_audit(now, kind, actor, subject, &detail)
            .expect("audit row");
    }
    (store, start)
}

fn db(site: &Site) -> Connection {
    Connection::open(site.path().join("cryowatch.db")).expect("open db")
}

/// `cryowatch audit verify`: (exit code, stdout, stderr).
fn verify(site: &Site, extra: &[&str]) -> (i32, String, String) {
    let config = site.config_str();
    let mut args = vec!["audit", "verify", "-c", &config];
    args.extend_from_slice(extra);
    let out = cryowatch_output(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_broken_at(site: &Site, record: i64, words: &str) {
    let (code, out, err) = verify(site, &[]);
    assert_eq!(code, 1, "tampering not detected:\n{out}\n{err}");
    assert!(
        err.contains(&format!("broken at record {record}:")),
        "wrong record named:\n{err}"
    );
    assert!(err.contains(words), "expected {words:?} in:\n{err}");
}

fn seq_of(c: &Connection, kind: &str) -> i64 {
    c.query_row("SELECT max(seq) FROM audit WHERE kind = ?1", [kind], |r| r.get(0))
        .expect("seq")
}

#[test]
fn an_untouched_store_verifies_and_says_what_it_covered() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let (code, out, err) = verify(&site, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("audit trail intact"), "{out}");
    let sealed: i64 = db(&site)
        .query_row("SELECT sum(count) FROM reading_seal", [], |r| r.get(0))
        .expect("sealed");
    assert!(sealed > 600, "most of the 720 readings are sealed: {sealed}");
    assert!(out.contains(&format!("readings: {sealed} in ")), "{out}");
    let json = cryowatch_output(&["audit", "verify", "-c", &site.config_str(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["sealed_readings"], sealed);
    assert_eq!(v["problem"], serde_json::Value::Null);
}

#[test]
fn an_edited_audit_row_is_named() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    let ack = seq_of(&c, "alarm.acknowledged");
    c.execute("UPDATE audit SET actor = 'bob' WHERE seq = ?1", [ack])
        .expect("tamper");
    assert_broken_at(&site, ack, "was altered");
}

#[test]
fn an_edited_row_with_its_hash_recomputed_breaks_the_next_link() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    let ack = seq_of(&c, "alarm.acknowledged");
    let (t, kind, subject, prev): (i64, String, String, String) = c
        .query_row("SELECT t, kind, subject, prev FROM audit WHERE seq = ?1", [ack], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("row");
    let detail = r#"{"comment":"nothing wrong"}"#;
    let hash = audit::chain_hash(&prev, ack, t, &kind, "ana", &subject, detail);
    c.execute(
        "UPDATE audit SET detail = ?2, hash = ?3 WHERE seq = ?1",
        params![ack, detail, hash],
    )
    .expect("tamper");
    assert_broken_at(&site, ack + 1, "does not follow record");
}

#[test]
fn a_deleted_audit_row_is_named() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    let ack = seq_of(&c, "alarm.acknowledged");
    c.execute("DELETE FROM audit WHERE seq = ?1", [ack]).expect("tamper");
    assert_broken_at(&site, ack, "is missing");
}

#[test]
fn reordered_audit_rows_are_detected() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    let ack = seq_of(&c, "alarm.acknowledged");
    let raised = seq_of(&c, "alarm.raised");
    // Swap the two rows whole (content and hashes), keeping their numbers.
    c.execute_batch(&format!(
        "UPDATE audit SET seq = -1 WHERE seq = {raised};
         UPDATE audit SET seq = {raised} WHERE seq = {ack};
         UPDATE audit SET seq = {ack} WHERE seq = -1;"
    ))
    .expect("tamper");
    assert_broken_at(&site, raised, "does not follow record");
}

#[test]
fn a_truncated_trail_fails_its_anchor() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    let (seq, hash): (i64, String) = c
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("head");
    let anchor = format!("{seq}:{hash}");
    assert_eq!(verify(&site, &["--anchor", &anchor]).0, 0);
    c.execute("DELETE FROM audit WHERE seq = ?1", [seq])
        .expect("cut the tail");
    // Without the anchor a cut tail looks complete; with it, it does not.
    assert_eq!(verify(&site, &[]).0, 0);
    let (code, _, err) = verify(&site, &["--anchor", &anchor]);
    assert_eq!(code, 1);
    assert!(err.contains("cut short"), "{err}");
    assert_eq!(
        verify(&site, &["--anchor", "12:nothex"]).0,
        2,
        "a malformed anchor is bad input"
    );
}

#[test]
fn an_edited_reading_is_detected_and_its_seal_named() {
    let site = site();
    let (store, start) = seeded(&site);
    drop(store);
    let c = db(&site);
    let t = start + 90 * MIN;
    c.execute("UPDATE reading SET value = -196.0 WHERE t = ?1 AND sensor = 1", [t])
        .expect("tamper");
    let seal: i64 = c
        .query_row(
            "SELECT audit FROM reading_seal WHERE t_from <= ?1 AND t_to > ?1",
            [t],
            |r| r.get(0),
        )
        .expect("seal");
    assert_broken_at(&site, seal, "a reading was altered");
}

#[test]
fn a_deleted_reading_is_detected() {
    let site = site();
    let (store, start) = seeded(&site);
    drop(store);
    let c = db(&site);
    c.execute("DELETE FROM reading WHERE t = ?1 AND sensor = 2", [start + 30 * MIN])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("1 readings were deleted"), "{err}");
}

#[test]
fn an_added_reading_is_detected() {
    let site = site();
    let (store, start) = seeded(&site);
    drop(store);
    let c = db(&site);
    c.execute(
        "INSERT INTO reading (sensor, t, seq, value, quality) VALUES (1, ?1, 0, -191.0, 0)",
        [start + 30 * MIN + 1],
    )
    .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("1 readings were added"), "{err}");
}

#[test]
fn a_renamed_sensor_is_detected() {
    let site = site();
    let (store, _) = seeded(&site);
    drop(store);
    let c = db(&site);
    c.execute("UPDATE sensor SET name = 'dewar-2.temp' WHERE id = 1", [])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("sensor table"), "{err}");
}

#[test]
fn a_late_reading_for_a_sealed_block_reseals_it_in_the_trail() {
    let site = site();
    let (mut store, start) = seeded(&site);
    store
        .insert(&[(1, start + 45 * MIN + 30_000, Some(-189.5), Quality::Good)])
        .expect("late reading");
    drop(store);
    let (code, out, err) = verify(&site, &[]);
    assert_eq!(code, 0, "a late reading is not tampering:\n{out}\n{err}");
    let c = db(&site);
    let reason: String = c
        .query_row(
            "SELECT json_extract(detail, '$.reason') FROM audit WHERE kind = 'readings.resealed'",
            [],
            |r| r.get(0),
        )
        .expect("reseal recorded");
    assert_eq!(reason, "late readings");
}

#[test]
fn retention_reduces_old_readings_keeps_excursions_raw_and_stays_verifiable() {
    let site = site();
    let (mut store, start) = seeded(&site);
    // An alarm on dewar-1.temp one hour in, for ten minutes.
    let alarm_at = start + HOUR;
    let alarm = cryowatch::store::alarms::AlarmRow {
        id: 1,
        rule: "dewar-1.temp:high".into(),
        sensor: "dewar-1.temp".into(),
        asset: "dewar-1".into(),
        severity: cryowatch::model::Severity::Critical,
        state: cryowatch::model::AlarmState::Cleared,
        raised_at: alarm_at,
        since: alarm_at,
        value: None,
        latching: false,
        firing: String::new(),
        returned: true,
        suppressed: None,
        incident: None,
        acked_by: None,
        acked_at: None,
        ack_comment: None,
        ack_path: None,
        cleared_at: Some(alarm_at + 10 * MIN),
    };
    let changes = cryowatch::store::alarms::Changes {
        alarms: vec![alarm],
        ..Default::default()
    };
    store.write_alarm_changes(&changes, alarm_at).expect("alarm");
    let policy = cryowatch::store::retention::Policy {
        retention: Duration::from_secs(10 * 365 * 86_400),
        reduce_after: Some(Duration::from_secs(3 * 3600)),
    };
    let now = now_ms();
    let mut removed = 0;
    loop {
        let done = cryowatch::store::retention::apply(&mut store, &policy, now).expect("retention");
        removed += done.reduced_raw;
        if !done.more {
            break;
        }
    }
    drop(store);
    let c = db(&site);
    let raw_in_alarm: i64 = c
        .query_row(
            "SELECT count(*) FROM reading WHERE sensor = 1 AND t >= ?1 AND t <= ?2",
            params![alarm_at - 10 * MIN, alarm_at + 20 * MIN],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(raw_in_alarm, 31, "raw readings around the excursion are kept");
    let (code, out, err) = verify(&site, &[]);
    assert_eq!(code, 0, "retention is not tampering:\n{out}\n{err}");
    let minutes: i64 = c
        .query_row("SELECT count(*) FROM reading_minute", [], |r| r.get(0))
        .expect("minutes");
    assert!(minutes >= 2 * 170 - 31, "per-minute summaries written: {minutes}");
    let summarised_in_alarm: i64 = c
        .query_row(
            "SELECT count(*) FROM reading_minute WHERE sensor = 1 AND minute >= ?1 AND minute <= ?2",
            params![alarm_at - 10 * MIN, alarm_at + 20 * MIN],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        summarised_in_alarm, 0,
        "readings kept raw are not also summarised (no double count)"
    );
    // An edited summary is detected.
    c.execute(
        "UPDATE reading_minute SET max = -100.0 WHERE sensor = 2 AND minute = ?1",
        [start + 5 * MIN],
    )
    .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("per-minute summaries"), "{err}");
    assert!(removed >= 300, "older raw readings removed: {removed}");
    let reduced: i64 = c
        .query_row("SELECT count(*) FROM audit WHERE kind = 'readings.reduced'", [], |r| {
            r.get(0)
        })
        .expect("audit");
    assert!(reduced >= 1);
}

/// An alarm raised and acknowledged through the store's alarm writer, as the engine does.
fn alarm_with_ack(store: &mut Store, at: i64) {
    use cryowatch::store::alarms::{AlarmRow, Changes, EventRow};
    let row = |state: &str, ack: bool| AlarmRow {
        id: 7,
        rule: "dewar-1.temp:high".into(),
        sensor: "dewar-1.temp".into(),
        asset: "dewar-1".into(),
        severity: cryowatch::model::Severity::Critical,
        state: cryowatch::model::AlarmState::parse(state).expect("an alarm state"),
        raised_at: at,
        since: at,
        value: Some(-140.0),
        latching: false,
        firing: "dewar-1.temp:high".into(),
        returned: false,
        suppressed: None,
        incident: None,
        acked_by: ack.then(|| "ana".to_string()),
        acked_at: ack.then_some(at + MIN),
        ack_comment: ack.then(|| "lid closed".to_string()),
        ack_path: ack.then(|| "sms".to_string()),
        cleared_at: None,
    };
    let event = |kind: &str, actor: &str, comment: &str| EventRow {
        t: at,
        alarm: Some(7),
        rule: Some("dewar-1.temp:high".into()),
        sensor: Some("dewar-1.temp".into()),
        kind: kind.into(),
        state: "active".into(),
        severity: Some("critical".into()),
        value: Some(-140.0),
        actor: actor.into(),
        comment: comment.into(),
    };
    for (ev, alarm) in [
        (event("raised", "system", ""), row("active", false)),
        (event("acknowledged", "ana", "lid closed"), row("acknowledged", true)),
    ] {
        let changes = Changes {
            events: vec![ev],
            alarms: vec![alarm],
            ..Default::default()
        };
        store.write_alarm_changes(&changes, at).expect("alarm");
    }
}

#[test]
fn an_edited_acknowledgement_or_an_invented_alarm_is_detected() {
    let site = site();
    let (mut store, start) = seeded(&site);
    alarm_with_ack(&mut store, start + 7 * HOUR);
    drop(store);
    assert_eq!(verify(&site, &[]).0, 0, "{:?}", verify(&site, &[]));
    let c = db(&site);
    c.execute("UPDATE alarm SET ack_comment = 'checked, all fine' WHERE id = 7", [])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("alarm 7's acknowledgement"), "{err}");
    c.execute("UPDATE alarm SET ack_comment = 'lid closed' WHERE id = 7", [])
        .expect("undo");
    c.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, latching, firing, returned)
         VALUES (8, 'dewar-1.temp:high', 'dewar-1.temp', 'dewar-1', 'critical', 'cleared', ?1, ?1, 0, '', 1)",
        [start + 7 * HOUR],
    )
    .expect("invent");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("alarm 8 is in the store but was never raised"), "{err}");
}

#[test]
fn a_reseal_appended_to_cover_a_deleted_reading_is_detected() {
    let site = site();
    let (store, start) = seeded(&site);
    drop(store);
    let c = db(&site);
    let t = start + 30 * MIN;
    c.execute("DELETE FROM reading WHERE t = ?1 AND sensor = 1", [t])
        .expect("tamper");
    // Cover it with a chain row claiming late readings, computed the way the daemon does.
    let block: (i64, i64) = c
        .query_row(
            "SELECT t_from, t_to FROM reading_seal WHERE t_from <= ?1 AND t_to > ?1",
            [t],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("block");
    let tx = c.unchecked_transaction().expect("tx");
    cryowatch::store::audit::seal::reseal(&tx, now_ms(), &[block.0], None, "late readings").expect("forge");
    tx.commit().expect("commit");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not explain"), "{err}");
}

#[test]
fn verify_while_the_daemon_writes_late_readings_gives_no_false_alarm() {
    let site = site();
    let (mut store, start) = seeded(&site);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                store
                    .insert(&[(1, start + 45 * MIN + i, Some(-189.0), Quality::Good)])
                    .expect("late reading");
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for _ in 0..10 {
        let (code, out, err) = verify(&site, &[]);
        assert_eq!(code, 0, "false alarm while writing:\n{out}\n{err}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
}

/// The seeded store plus readings committed just now, one transaction at a time (as the
/// writer commits them), newer than every seal: (store, the times written).
fn with_fresh_readings(site: &Site) -> (Store, Vec<i64>) {
    let (mut store, _) = seeded(site);
    let now = now_ms();
    let mut times = Vec::new();
    for i in 0..5 {
        let t = now - 1_000 + i * 200;
        store
            .insert(&[
                (1, t, Some(-120.0 - i as f64), Quality::Good),
                (2, t, Some(80.0), Quality::Good),
            ])
            .expect("insert");
        times.push(t);
    }
    (store, times)
}

#[test]
fn readings_committed_a_second_ago_are_verified_against_their_batches() {
    let site = site();
    let (store, _) = with_fresh_readings(&site);
    drop(store);
    let (code, out, err) = verify(&site, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("verified against the 5 batches they were committed in"),
        "{out}"
    );
}

#[test]
fn a_reading_edited_a_second_after_its_commit_fails_verify() {
    let site = site();
    let (store, _) = with_fresh_readings(&site);
    drop(store);
    db(&site)
        .execute("UPDATE reading SET value = -190.0 WHERE value = -120.0", [])
        .expect("tamper");
    let (code, out, err) = verify(&site, &[]);
    assert_eq!(code, 1, "an edit one second after the commit passed:\n{out}\n{err}");
    assert!(err.contains("was altered"), "{err}");
    assert!(err.contains("batch 1"), "names the batch: {err}");
}

#[test]
fn a_reading_deleted_a_second_after_its_commit_fails_verify() {
    let site = site();
    let (store, times) = with_fresh_readings(&site);
    drop(store);
    db(&site)
        .execute("DELETE FROM reading WHERE sensor = 2 AND t = ?1", [times[3]])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("was deleted"), "{err}");
}

#[test]
fn a_reading_added_among_fresh_ones_fails_verify() {
    let site = site();
    let (store, times) = with_fresh_readings(&site);
    drop(store);
    db(&site)
        .execute(
            "INSERT INTO reading (sensor, t, seq, value, quality) VALUES (1, ?1, 0, -191.0, 0)",
            [times[2] + 1],
        )
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("1 readings were added"), "{err}");
}

#[test]
fn a_fresh_batch_deleted_with_its_readings_breaks_the_chain_of_batches() {
    let site = site();
    let (store, times) = with_fresh_readings(&site);
    drop(store);
    let c = db(&site);
    c.execute("DELETE FROM reading WHERE t = ?1", [times[1]])
        .expect("tamper");
    c.execute("DELETE FROM reading_batch WHERE seq = 2", [])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("batch 2 of readings"), "{err}");
}

#[test]
fn a_forged_reading_is_sealed_only_with_the_finding_on_the_record() {
    let site = site();
    let (mut store, _) = seeded(&site);
    let now = now_ms();
    // A reading in the block still open, edited before its block is due.
    let t = now - 60_000;
    store.insert(&[(1, t, Some(-120.0), Quality::Good)]).expect("insert");
    db(&site)
        .execute("UPDATE reading SET value = -190.0 WHERE t = ?1 AND sensor = 1", [t])
        .expect("tamper");
    let sealed = store
        .seal_due(now + 15 * MIN, 10 * MIN, 2 * MIN)
        .expect("seal")
        .expect("a block due");
    let found = sealed.found_changed.expect("the seal found the forged reading");
    assert!(found.contains("was altered"), "{found}");
    // The batches are gone with the seal; the finding stays in the chain for good.
    assert_broken_at(
        &site,
        sealed.audit,
        "sealed readings that had changed since their commit",
    );
}

#[test]
fn the_newest_batch_removed_with_its_readings_is_caught_by_the_writer_at_the_next_seal() {
    let site = site();
    let (mut store, times) = with_fresh_readings(&site);
    // The end of the chain cut off, readings and batch: the batches left still chain, and
    // what is left of the readings matches them; only the writer knows what it wrote last.
    let c = db(&site);
    c.execute("DELETE FROM reading WHERE t = ?1", [times[4]])
        .expect("tamper");
    c.execute("DELETE FROM reading_batch WHERE seq = 5", [])
        .expect("tamper");
    drop(c);
    let sealed = store
        .seal_due(now_ms() + 15 * MIN, 10 * MIN, 2 * MIN)
        .expect("seal")
        .expect("a block due");
    let found = sealed.found_changed.expect("the cut was found");
    assert!(found.contains("cut short or rewritten"), "{found}");
    assert_broken_at(&site, sealed.audit, "changed since their commit");
}

#[test]
fn batches_removed_while_the_daemon_was_stopped_are_caught_from_its_stop_record() {
    let site = site();
    let (mut store, times) = with_fresh_readings(&site);
    let stop = store.record_stop(now_ms(), 10).expect("stop record");
    drop(store);
    let c = db(&site);
    c.execute("DELETE FROM reading WHERE t >= ?1", [times[3]])
        .expect("tamper");
    c.execute("DELETE FROM reading_batch WHERE seq >= 4", [])
        .expect("tamper");
    drop(c);
    assert_broken_at(&site, stop, "the newest when the daemon stopped");
}

#[test]
fn a_value_written_as_text_is_reported_not_a_failure_to_read() {
    let site = site();
    let (store, _) = with_fresh_readings(&site);
    drop(store);
    db(&site)
        .execute("UPDATE reading SET value = 'x' WHERE value = -120.0", [])
        .expect("tamper");
    let (code, _, err) = verify(&site, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("written by hand") || err.contains("was altered"), "{err}");
    // Sealed readings too.
    let sealed = self::site();
    let (store, start) = seeded(&sealed);
    drop(store);
    db(&sealed)
        .execute(
            "UPDATE reading SET quality = 'good' WHERE t = ?1 AND sensor = 2",
            [start + 30 * MIN],
        )
        .expect("tamper");
    let (code, _, err) = verify(&sealed, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("written by hand"), "{err}");
}
