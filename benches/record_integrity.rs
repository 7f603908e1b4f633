//! What a record that survives a power cut and catches tampering from the first second
//! costs, on the store writer and on the record watch:
//!
//! - a commit synced to disk (`synchronous=FULL`, what the store runs) against one that is
//!   not (`NORMAL`, what it ran before): one reading per commit (a lone MQTT message) and
//!   1,000 per commit (1,000 sensors at 1 Hz, one commit a second);
//! - binding each committed batch into the audit chain (SHA-256 over the batch, one row
//!   in the same transaction), per reading;
//! - sealing a 10-minute block of 1,000 sensors at 1 Hz, the batches checked first;
//! - the record watch proving every unsealed reading (12 minutes of 1,000 sensors at 1 Hz),
//!   and a look that proves only the last 10 s of batches.
//!
//! Run: `cargo bench --bench record_integrity` (BENCH_SENSORS, BENCH_MINUTES change the
//! size; BENCH_QUICK=1 shrinks it).

mod support;

use std::time::Instant;

use cryowatch::model::Quality;
use cryowatch::store::Store;
use cryowatch::store::audit::batch::{self, Bound};
use rusqlite::{Connection, OpenFlags};

fn rows(ids: &[i64], t: i64) -> Vec<(i64, i64, Option<f64>, Quality)> {
    ids.iter()
        .map(|&id| (id, t, Some(-190.0 + (t / 1000 % 13) as f64 * 0.1), Quality::Good))
        .collect()
}

/// Milliseconds per commit of `per_commit` readings, `commits` times, each synced to
/// disk (`full`) or not.
fn commits(full: bool, ids: &[i64], per_commit: usize, commits: i64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("commit.db")).expect("store");
    let names: Vec<(String, String)> = (0..ids.len()).map(|i| (format!("s{i}"), "degC".into())).collect();
    let ids = store.register_sensors(&names).expect("sensors");
    store.set_commit_sync(full).expect("synchronous");
    let start = 1_800_000_000_000i64;
    let t = Instant::now();
    for k in 0..commits {
        let mut batch = rows(&ids[..per_commit.min(ids.len())], start + k * 1000);
        batch.truncate(per_commit);
        store.insert(&batch).expect("insert");
    }
    t.elapsed().as_secs_f64() * 1e3 / commits as f64
}

pub fn main() {
    let quick = support::quick();
    let sensors = support::size("BENCH_SENSORS", 1000, 100) as usize;
    let minutes = support::size("BENCH_MINUTES", 12, 3) as i64;
    let ids: Vec<i64> = (1..=sensors as i64).collect();

    // 1. The sync.
    let n1 = if quick { 20 } else { 300 };
    let one_full = commits(true, &ids, 1, n1);
    let one_normal = commits(false, &ids, 1, n1);
    let nk = if quick { 5 } else { 60 };
    let k_full = commits(true, &ids, sensors, nk);
    let k_normal = commits(false, &ids, sensors, nk);
    println!(
        "commit of 1 reading: {one_full:.2} ms synced (FULL), {one_normal:.2} ms not (NORMAL); \
         of {sensors}: {k_full:.2} ms FULL, {k_normal:.2} ms NORMAL"
    );

    // 2. The binding alone: hashing the batch and writing its row, per reading.
    // The writer's SQL on a connection of the bench's own to a store's file: what the
    // binding costs, apart from the store around it.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bind.db");
    drop(Store::open(&path).expect("store"));
    let mut db = Connection::open(&path).expect("open the store file");
    let bound: Vec<Bound> = ids
        .iter()
        .map(|&sensor| Bound {
            sensor,
            t: 1_800_000_000_000,
            seq: 0,
            value: Some(-190.1),
            quality: Quality::Good,
        })
        .collect();
    let rounds = if quick { 50 } else { 2000 };
    // Every round in one transaction: the binding's own work, without the commit's sync.
    let t = Instant::now();
    let tx = db.transaction().expect("transaction");
    for k in 0..rounds {
        batch::bind(&tx, k, &bound).expect("bind");
    }
    tx.commit().expect("commit");
    let bind_us = t.elapsed().as_secs_f64() * 1e6 / (rounds as f64 * bound.len() as f64);
    println!("binding a batch of {sensors} readings: {bind_us:.3} µs per reading");

    // 3 and 4. A store with `minutes` of 1 Hz readings, one commit a second, as the
    // writer makes them; the record watch's checks; then the seal of the first block.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    let names: Vec<(String, String)> = (0..sensors).map(|i| (format!("s{i}"), "degC".into())).collect();
    let ids = store.register_sensors(&names).expect("sensors");
    let block = 10 * 60_000;
    let start = 1_800_000_000_000i64 / block * block;
    // The empty time before the first reading is sealed first, as on a new store.
    store.seal_due(start, block, 0).expect("first seal");
    let seconds = minutes * 60;
    for s in 0..seconds {
        store.insert(&rows(&ids, start + s * 1000)).expect("insert");
    }
    let unsealed = seconds * sensors as i64;
    // The record watch looks on a read-only connection of its own; so does the bench.
    let watch = Connection::open_with_flags(
        dir.path().join("bench.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store file read-only");
    let reset = batch::current_reset(&watch).expect("reset");
    let t = Instant::now();
    let open = batch::check_open(&watch, reset.as_ref(), start).expect("check");
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(open.problem.is_none(), "{:?}", open.problem);
    let head = open.head.clone().expect("batches");
    let since = (head.0 - 10, String::new());
    let hash = batch::hash_at(&watch, since.0)
        .expect("hash")
        .expect("a batch 10 s back");
    let t = Instant::now();
    let new = batch::check_new(&watch, &(since.0, hash)).expect("check new");
    let new_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(new.problem.is_none(), "{:?}", new.problem);
    println!(
        "record watch: every unsealed reading ({unsealed} in {} batches) {open_ms:.0} ms; the last 10 s ({} readings) {new_ms:.1} ms",
        open.batches, new.bound
    );
    let now = start + block + 2 * 60_000;
    let t = Instant::now();
    let sealed = store
        .seal_due(now, block, 2 * 60_000)
        .expect("seal")
        .expect("a block to seal");
    let seal_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "seal of {} readings, the {unsealed} committed since the last seal checked first: {seal_ms:.0} ms ({:.2} µs per sealed reading)",
        sealed.count,
        seal_ms * 1e3 / sealed.count.max(1) as f64
    );
    println!(
        "REPORT sync_one_full_ms={one_full:.3} sync_one_normal_ms={one_normal:.3} sync_k_full_ms={k_full:.3} \
         sync_k_normal_ms={k_normal:.3} sync_k={sensors} bind_us_per_reading={bind_us:.3} \
         seal_ms={seal_ms:.1} seal_readings={} seal_checked={unsealed} watch_open_ms={open_ms:.1} \
         watch_open_readings={unsealed} watch_new_ms={new_ms:.2} watch_new_readings={}",
        sealed.count, new.bound
    );
}
