use super::*;
use crate::model::Quality;
use crate::store::Store;

fn store() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = Store::open(&dir.path().join("s.db")).expect("store");
    let ids = s.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
    (dir, s, ids[0])
}

fn look(w: &mut Watch, s: &Store, now: TimestampMs) -> Look {
    s.with_conn(|c| w.check(c, now, &[])).expect("look")
}

#[test]
fn an_untouched_record_passes_every_look_and_its_heads_move_on() {
    let (_d, mut s, id) = store();
    let mut w = Watch::new();
    let first = look(&mut w, &s, 1_000);
    assert!(first.full && first.problem.is_none(), "{first:?}");
    s.insert(&[(id, 500, Some(-190.0), Quality::Good)]).expect("insert");
    let second = look(&mut w, &s, 2_000);
    assert!(!second.full && second.problem.is_none(), "{second:?}");
    let anchor = second.anchor.expect("heads");
    assert_eq!(anchor.batch_seq, Some(1));
}

#[test]
fn a_reading_edited_after_a_look_fails_the_next_one_and_stays_failed() {
    let (_d, mut s, id) = store();
    let mut w = Watch::new();
    s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
    assert!(look(&mut w, &s, 1_000).problem.is_none());
    s.with_conn(|c| c.execute("UPDATE reading SET value = -190.0", []))
        .expect("tamper");
    let p = look(&mut w, &s, 2_000).problem.expect("caught");
    assert!(p.contains("was altered"), "{p}");
    s.with_conn(|c| c.execute("UPDATE reading SET value = -120.0", []))
        .expect("undo");
    assert!(look(&mut w, &s, 3_000).problem.is_some(), "a failure is kept");
}

#[test]
fn when_the_full_check_is_costly_new_batches_are_checked_at_once_and_old_ones_each_minute() {
    let (_d, mut s, id) = store();
    let mut w = Watch::new();
    s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
    assert!(look(&mut w, &s, 1_000).problem.is_none(), "full verification");
    assert!(look(&mut w, &s, 1_500).problem.is_none(), "every unsealed reading");
    w.open_cheap = false;
    // An old batch edited: not seen by the cheap look, seen at the next full one.
    s.with_conn(|c| c.execute("UPDATE reading SET value = -190.0 WHERE t = 500", []))
        .expect("tamper");
    s.insert(&[(id, 600, Some(-121.0), Quality::Good)]).expect("insert");
    assert!(look(&mut w, &s, 2_000).problem.is_none(), "only the new batch checked");
    let p = look(&mut w, &s, 1_500 + OPEN_EVERY.as_millis() as i64 + 1)
        .problem
        .expect("caught");
    assert!(p.contains("was altered"), "{p}");
}

#[test]
fn a_new_batch_edited_is_caught_by_the_cheap_look() {
    let (_d, mut s, id) = store();
    let mut w = Watch::new();
    assert!(look(&mut w, &s, 1_000).problem.is_none());
    s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
    assert!(look(&mut w, &s, 2_000).problem.is_none());
    w.open_cheap = false;
    s.insert(&[(id, 600, Some(-121.0), Quality::Good)]).expect("insert");
    s.with_conn(|c| c.execute("DELETE FROM reading WHERE t = 600", []))
        .expect("tamper");
    let p = look(&mut w, &s, 3_000).problem.expect("caught");
    assert!(p.contains("was deleted"), "{p}");
}

#[test]
fn the_newest_batch_removed_with_its_readings_after_a_look_is_caught() {
    let (_d, mut s, id) = store();
    let mut w = Watch::new();
    for t in [500, 600, 700] {
        s.insert(&[(id, t, Some(-190.0), Quality::Good)]).expect("insert");
    }
    assert!(look(&mut w, &s, 1_000).problem.is_none());
    assert!(look(&mut w, &s, 1_500).problem.is_none());
    s.with_conn(|c| {
        c.execute("DELETE FROM reading WHERE t = 700", [])?;
        c.execute("DELETE FROM reading_batch WHERE seq = 3", [])
    })
    .expect("tamper");
    let p = look(&mut w, &s, 2_000).problem.expect("caught");
    assert!(p.contains("were removed"), "{p}");
}

#[test]
fn an_audit_record_rewritten_after_it_was_verified_is_caught() {
    let (_d, s, _) = store();
    let mut w = Watch::new();
    assert!(look(&mut w, &s, 1_000).problem.is_none());
    s.with_conn(|c| {
        c.execute(
            "UPDATE audit SET hash = 'x' || substr(hash, 2) WHERE seq = (SELECT max(seq) FROM audit)",
            [],
        )
    })
    .expect("tamper");
    let p = look(&mut w, &s, 2_000).problem.expect("caught");
    assert!(p.contains("rewritten"), "{p}");
}

#[test]
fn a_published_anchor_the_trail_no_longer_carries_is_caught() {
    let (_d, s, _) = store();
    let mut w = Watch::new();
    let a = look(&mut w, &s, 1_000).anchor.expect("heads");
    let forged = Anchor {
        audit_hash: "0".repeat(64),
        ..a.clone()
    };
    assert!(
        s.with_conn(|c| w.check(c, 2_000, std::slice::from_ref(&a)))
            .expect("look")
            .problem
            .is_none()
    );
    let p = s
        .with_conn(|c| w.check(c, 3_000, &[forged]))
        .expect("look")
        .problem
        .expect("caught");
    assert!(p.contains("does not carry the hash published"), "{p}");
}
