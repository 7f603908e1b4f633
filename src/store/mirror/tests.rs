use super::*;
use crate::store::Store;

fn store() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("s.db")).expect("open");
    let ids = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
    (dir, store, ids[0])
}

#[test]
fn only_readings_stored_while_mirroring_are_queued_in_insertion_order() {
    let (_dir, mut store, a) = store();
    store.insert(&[(a, 1, Some(1.0), Quality::Good)]).expect("insert");
    store.set_mirror(true).expect("enable");
    store
        .insert(&[
            (a, 3, Some(3.0), Quality::Good),
            (a, 2, Some(2.0), Quality::Good),
            (a, 3, Some(3.5), Quality::Good),
            (a, 3, Some(3.0), Quality::Good), // a redelivery: not stored, not queued
        ])
        .expect("insert");
    let q = store.with_conn(|c| next_readings(c, 10)).expect("next");
    let got: Vec<_> = q.iter().map(|r| (r.t, r.seq, r.value)).collect();
    assert_eq!(got, vec![(3, 0, Some(3.0)), (2, 0, Some(2.0)), (3, 1, Some(3.5))]);
}

#[test]
fn a_backfill_queues_each_stored_reading_of_the_range_once_over_several_days() {
    const DAY: i64 = 24 * 3600 * 1000;
    let (_dir, mut store, a) = store();
    let rows: Vec<_> = (0..10)
        .map(|d| (a, d * DAY / 2, Some(d as f64), Quality::Good))
        .collect();
    store.insert(&rows).expect("insert");
    // Readings at 0, 0.5, ..., 4.5 days; the range takes 1 to 3 days, both included.
    let (queued, events) = backfill_range(&mut store, DAY, 3 * DAY).expect("backfill");
    assert_eq!((queued, events), (5, 0));
    let q = store.with_conn(|c| next_readings(c, 100)).expect("next");
    let got: Vec<_> = q.iter().map(|r| r.t).collect();
    assert_eq!(got, vec![DAY, 3 * DAY / 2, 2 * DAY, 5 * DAY / 2, 3 * DAY]);
    assert!(store.with_conn(enabled).expect("enabled"), "the mirror is on");
    // Up to the end of time: no overflow, nothing twice.
    let (queued, _) = backfill_range(&mut store, 4 * DAY, TimestampMs::MAX).expect("backfill");
    assert_eq!(queued, 2);
}

#[test]
fn the_cursor_moves_only_on_confirm_and_ids_are_never_reused() {
    let (_dir, mut store, a) = store();
    store.set_mirror(true).expect("enable");
    store
        .insert(&[(a, 1, Some(1.0), Quality::Good), (a, 2, None, Quality::CommError)])
        .expect("insert");
    let first = store.with_conn(|c| next_readings(c, 1)).expect("next");
    assert_eq!(store.with_conn(|c| next_readings(c, 1)).expect("next"), first);
    store
        .transaction(|c| confirm(c, Stream::Readings, first[0].id, 10))
        .expect("confirm");
    let second = store.with_conn(|c| next_readings(c, 5)).expect("next");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].quality, Quality::CommError);
    store
        .transaction(|c| confirm(c, Stream::Readings, second[0].id, 11))
        .expect("confirm");
    assert_eq!(store.with_conn(lag).expect("lag").readings, 0);
    // The outbox is empty now; a new reading must still come after the cursor.
    store.insert(&[(a, 3, Some(3.0), Quality::Good)]).expect("insert");
    let third = store.with_conn(|c| next_readings(c, 5)).expect("next");
    assert_eq!(third.len(), 1);
    assert!(third[0].id > second[0].id);
}

#[test]
fn a_quarantined_batch_is_kept_counted_and_can_be_requeued() {
    let (_dir, mut store, a) = store();
    store.set_mirror(true).expect("enable");
    store
        .insert(&[(a, 1, Some(1.0), Quality::Good), (a, 2, Some(2.0), Quality::Good)])
        .expect("insert");
    let batch = store.with_conn(|c| next_readings(c, 10)).expect("next");
    store
        .transaction(|c| {
            quarantine(
                c,
                Span {
                    stream: Stream::Readings,
                    first: batch[0].id,
                    last: batch[1].id,
                    points: 2,
                },
                Some(400),
                "bad",
                5,
            )
        })
        .expect("quarantine");
    let lag_now = store.with_conn(lag).expect("lag");
    assert_eq!(
        (
            lag_now.readings,
            lag_now.quarantined_batches,
            lag_now.quarantined_points
        ),
        (0, 1, 2)
    );
    assert_eq!(store.transaction(|c| requeue(c, 6)).expect("requeue").readings, 2);
    let again = store.with_conn(|c| next_readings(c, 10)).expect("next");
    assert_eq!(again.iter().map(|r| r.t).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(store.with_conn(lag).expect("lag").quarantined_batches, 0);
    assert_eq!(
        store.transaction(|c| requeue(c, 7)).expect("requeue"),
        Requeued::default()
    );
}

#[test]
fn a_quarantined_alarm_transition_is_requeued_too() {
    let (_dir, mut store, _) = store();
    store.set_mirror(true).expect("enable");
    store
        .transaction(|c| {
            for t in [1, 2, 3] {
                c.execute(
                    "INSERT INTO alarm_event (t, alarm, rule, sensor, kind, state, severity, value, actor, comment)
                     VALUES (?1, 1, 'r', 'a', 'raised', 'active', 'alarm', 1.0, 'cryowatch', '')",
                    [t],
                )?;
            }
            Ok(())
        })
        .expect("events");
    let events = store.with_conn(|c| next_events(c, 10)).expect("next");
    assert_eq!(events.len(), 3);
    // The first is confirmed, the second refused alone, the third confirmed.
    store
        .transaction(|c| confirm(c, Stream::AlarmEvents, events[0].id, 5))
        .expect("confirm");
    let span = Span {
        stream: Stream::AlarmEvents,
        first: events[1].id,
        last: events[1].id,
        points: 1,
    };
    store
        .transaction(|c| quarantine(c, span, Some(400), "bad", 5).map(|_| ()))
        .expect("quarantine");
    store
        .transaction(|c| confirm(c, Stream::AlarmEvents, events[2].id, 5))
        .expect("confirm");
    assert_eq!(store.with_conn(lag).expect("lag").quarantined_batches, 1);

    let requeued = store.transaction(|c| requeue(c, 6)).expect("requeue");
    assert_eq!(
        requeued,
        Requeued {
            readings: 0,
            alarm_events: 2
        }
    );
    let again = store.with_conn(|c| next_events(c, 10)).expect("next");
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![events[1].id, events[2].id]
    );
    assert_eq!(store.with_conn(lag).expect("lag").quarantined_batches, 0);
}

#[test]
fn disabling_empties_the_outbox_and_backfill_queues_history() {
    let (_dir, mut store, a) = store();
    store.insert(&[(a, 1, Some(1.0), Quality::Good)]).expect("insert");
    store.set_mirror(true).expect("enable");
    store.insert(&[(a, 2, Some(2.0), Quality::Good)]).expect("insert");
    assert_eq!(store.set_mirror(false).expect("disable"), 1);
    store.insert(&[(a, 3, Some(3.0), Quality::Good)]).expect("insert");
    assert_eq!(store.with_conn(lag).expect("lag").readings, 0);
    store.set_mirror(true).expect("enable");
    assert_eq!(store.transaction(|c| backfill(c, 0, 2)).expect("backfill"), 2);
    let q = store.with_conn(|c| next_readings(c, 10)).expect("next");
    assert_eq!(q.iter().map(|r| r.t).collect::<Vec<_>>(), vec![1, 2]);
}
