//! The store's own tests: private file modes, synchronous commits, schema versions,
//! reading order and deduplication, sensor registration.

use std::path::Path;

use super::schema::MIGRATIONS;
use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("s.db")).expect("open");
    (dir, store)
}

fn all(store: &Store, id: i64) -> Vec<StoredReading> {
    let mut out = Vec::new();
    store
        .history(id, i64::MIN, i64::MAX, |r| {
            out.push(r);
            true
        })
        .expect("history");
    out
}

#[test]
fn the_store_and_its_directory_are_private_to_their_owner_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("var/lib/cryowatch/cryowatch.db");
    let store = Store::open(&path).expect("open");
    store
        .with_conn(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
        .expect("write");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the database");
    let wal = path.with_extension("db-wal");
    assert_eq!(mode(&wal), 0o600, "the write-ahead log");
    assert_eq!(mode(path.parent().expect("dir")), 0o700, "the directory created for it");
}

#[test]
fn a_store_without_its_schema_yet_is_not_ready_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(matches!(Store::open_read_only(&path), Err(StoreError::Missing(_))));
    drop(Connection::open(&path).unwrap());
    let err = Store::open_read_only(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("is being created"), "{err}");
    drop(Store::open(&path).unwrap());
    assert!(Store::open_read_only(&path).is_ok());
}

#[test]
fn every_commit_is_synced_to_disk_before_it_returns() {
    // synchronous: 2 = FULL (the WAL is synced at every commit), 1 = NORMAL (only at
    // checkpoints: a power cut loses commits already reported done).
    let (_dir, store) = temp_store();
    let level: i64 = store
        .sql(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)))
        .expect("pragma");
    assert_eq!(level, 2);
    let mode: String = store
        .sql(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .expect("pragma");
    assert_eq!(mode, "wal");
}

#[test]
fn a_new_store_is_at_the_latest_schema_version_and_reopens() {
    let (dir, store) = temp_store();
    assert_eq!(store.schema_version().expect("version"), MIGRATIONS.len() as i64);
    drop(store);
    let again = Store::open(&dir.path().join("s.db")).expect("reopen");
    assert_eq!(again.schema_version().expect("version"), MIGRATIONS.len() as i64);
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let (dir, store) = temp_store();
    store
        .sql(|c| c.execute("UPDATE schema_version SET version = 99", []))
        .expect("bump");
    drop(store);
    assert!(matches!(
        Store::open(&dir.path().join("s.db")),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn readings_come_back_in_time_order_with_their_quality() {
    let (_dir, mut store) = temp_store();
    let ids = store
        .register_sensors(&[("a".into(), "degC".into()), ("b".into(), "%".into())])
        .expect("sensors");
    store
        .insert(&[
            (ids[0], 20, Some(-190.5), Quality::Good),
            (ids[0], 10, None, Quality::CommError),
            (ids[1], 15, Some(1.0), Quality::Good),
        ])
        .expect("insert");
    let got = all(&store, ids[0]);
    assert_eq!(got.iter().map(|r| r.time).collect::<Vec<_>>(), vec![10, 20]);
    assert_eq!(got[0].quality, Quality::CommError);
    assert_eq!(got[1].value, Some(-190.5));
}

#[test]
fn two_readings_in_one_millisecond_are_both_kept_and_an_exact_repeat_is_not() {
    let (_dir, mut store) = temp_store();
    let ids = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
    store
        .insert(&[
            (ids[0], 5, Some(1.0), Quality::Good),
            (ids[0], 5, Some(2.0), Quality::Good),
        ])
        .expect("insert");
    store
        .insert(&[
            (ids[0], 5, Some(2.0), Quality::Good),
            (ids[0], 5, Some(3.0), Quality::Good),
        ])
        .expect("insert");
    let values: Vec<_> = all(&store, ids[0]).iter().map(|r| r.value).collect();
    assert_eq!(values, vec![Some(1.0), Some(2.0), Some(3.0)]);
}

#[test]
fn identical_readings_stamped_on_arrival_are_all_kept() {
    let (_dir, mut store) = temp_store();
    let ids = store.register_sensors(&[("a".into(), "%".into())]).expect("sensors");
    let row = Row {
        sensor: ids[0],
        time: 5,
        value: Some(85.5),
        quality: Quality::Good,
        source_time: false,
    };
    store.insert(&[row, row]).expect("insert");
    store
        .insert(&[row, Row { time: 4, ..row }, Row { time: 4, ..row }])
        .expect("insert");
    let got: Vec<_> = all(&store, ids[0]).iter().map(|r| r.time).collect();
    assert_eq!(got, vec![4, 4, 5, 5, 5]);
}

#[test]
fn after_a_restart_a_repeated_reading_is_skipped_and_a_new_one_in_the_same_millisecond_kept() {
    let (dir, mut store) = temp_store();
    let ids = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
    store
        .insert(&[
            (ids[0], 5, Some(1.0), Quality::Good),
            (ids[0], 9, Some(9.0), Quality::Good),
        ])
        .expect("insert");
    drop(store);
    let mut store = Store::open(&dir.path().join("s.db")).expect("reopen");
    store
        .insert(&[
            (ids[0], 5, Some(1.0), Quality::Good),
            (ids[0], 5, Some(4.0), Quality::Good),
            (ids[0], 7, None, Quality::Stale),
        ])
        .expect("insert");
    let got: Vec<_> = all(&store, ids[0]).iter().map(|r| (r.time, r.value)).collect();
    assert_eq!(got, vec![(5, Some(1.0)), (5, Some(4.0)), (7, None), (9, Some(9.0))]);
}

#[test]
fn registering_again_keeps_ids_and_updates_units() {
    let (_dir, mut store) = temp_store();
    let first = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
    let again = store
        .register_sensors(&[("b".into(), "x".into()), ("a".into(), "K".into())])
        .expect("sensors");
    assert_eq!(first[0], again[1]);
    assert_eq!(store.sensors().expect("map")["a"].1, "K");
}
