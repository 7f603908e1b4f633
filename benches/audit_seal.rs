//! What the audit trail costs: sealing a 10-minute block of 1,000 sensors at 1 Hz
//! (600,000 readings) on the store writer, and `audit verify`'s rate over sealed readings.
//!
//! Run: `cargo bench --bench audit_seal` (BENCH_SENSORS and BENCH_MINUTES change the
//! block).

use std::time::Instant;

use cryowatch::model::Quality;
use cryowatch::store::Store;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let sensors = env("BENCH_SENSORS", 1000);
    let minutes = env("BENCH_MINUTES", 10) as i64;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    let names: Vec<(String, String)> = (0..sensors).map(|i| (format!("s{i}"), "degC".into())).collect();
    let ids = store.register_sensors(&names).expect("sensors");
    let block = 10 * 60_000;
    let start = 1_800_000_000_000i64 / block * block;
    let seconds = minutes * 60;
    let t0 = Instant::now();
    for s in 0..seconds {
        let rows: Vec<_> = ids
            .iter()
            .map(|&id| {
                (
                    id,
                    start + s * 1000,
                    Some(-190.0 + (s % 13) as f64 * 0.1),
                    Quality::Good,
                )
            })
            .collect();
        store.insert(&rows).expect("insert");
    }
    let readings = seconds * sensors as i64;
    println!(
        "stored {readings} readings ({sensors} sensors x {seconds} s) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Seal everything up to the block boundary after the data, as the writer would.
    let now = start + minutes * 60_000 + 3 * 60_000;
    // The first seal covers the empty time before the oldest reading; the next, the data.
    let mut t = Instant::now();
    let mut sealed = store
        .seal_due(now, block, 2 * 60_000)
        .expect("seal")
        .expect("a block to seal");
    while sealed.count == 0 {
        t = Instant::now();
        sealed = store
            .seal_due(now, block, 2 * 60_000)
            .expect("seal")
            .expect("a block to seal");
    }
    let seal = t.elapsed();
    println!(
        "seal of {} readings: {:.0} ms ({:.2} µs per reading) on the writer thread",
        sealed.count,
        seal.as_secs_f64() * 1e3,
        seal.as_secs_f64() * 1e6 / sealed.count.max(1) as f64
    );
    let t = Instant::now();
    let v = store.verify(|_, _| {}).expect("verify");
    let took = t.elapsed().as_secs_f64();
    assert!(v.ok(), "{:?}", v.problem);
    println!(
        "audit verify: {} records, {} sealed readings in {:.2} s = {:.0} readings/s",
        v.records,
        v.sealed_readings,
        took,
        v.sealed_readings as f64 / took
    );
    let per_day = sensors as f64 * 86_400.0;
    println!(
        "at this rate a year of {sensors} sensors at 1 Hz verifies in {:.0} min",
        per_day * 365.0 / (v.sealed_readings as f64 / took) / 60.0
    );
}
