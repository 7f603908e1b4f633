//! A year of one sensor: `cryowatch history --format csv` over 525,600 one-minute
//! readings, and what that year takes on disk.
//!
//! The readings (2025-01-01T00:00Z to 2025-12-31T23:59Z, one a minute, about -190 °C)
//! are written through the store's own insert path (`Store::insert`, 10,000 per
//! transaction) into a fresh store, then the WAL is checkpointed. The export is the
//! `cryowatch` binary Cargo builds with this bench, its standard output written to a
//! file, timed from spawn to exit (three runs; the median is reported). Every run must
//! write the header and exactly one row per reading. Bytes per reading = size of the
//! store file (and WAL, if any) ÷ readings.
//!
//! Run: `cargo bench --bench export_year`. BENCH_MINUTES sets the number of readings
//! (default 525600); BENCH_QUICK=1 exports 30 days (43,200) once.

use std::process::{Command, Stdio};
use std::time::Instant;

use cryowatch::model::{Quality, TimestampMs};
use cryowatch::store::Store;

mod support;
use support::size;

const SENSOR: &str = "dewar-1.temp";
/// 2025-01-01T00:00:00Z.
const T0: TimestampMs = 1_735_689_600_000;
const CHUNK: usize = 10_000;

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let minutes = size("BENCH_MINUTES", 525_600, 43_200) as usize;
    let runs = if support::quick() { 1 } else { 3 };
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("year.db");
    let cfg = dir.path().join("cryowatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nname = \"export bench\"\n[store]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"bench\"\n\
             [[asset]]\nid = \"dewar-1\"\nkind = \"ln2_dewar\"\n\
             [[sensor]]\nid = \"{SENSOR}\"\nasset = \"dewar-1\"\nquantity = \"temperature\"\nunit = \"degC\"\n\
             [sensor.mqtt]\ntopic = \"lab/dewar-1/temp\"\n",
            db.display()
        ),
    )
    .expect("write config");

    let t = Instant::now();
    let mut store = Store::open(&db).expect("open store");
    let ids = store
        .register_sensors(&[(SENSOR.to_string(), "degC".to_string())])
        .expect("register sensor");
    let id = ids[0];
    let rows: Vec<(i64, TimestampMs, Option<f64>, Quality)> = (0..minutes)
        .map(|k| {
            let v = -190.0 + ((k * 7) % 100) as f64 * 0.01 - 0.5;
            (id, T0 + k as i64 * 60_000, Some(v), Quality::Good)
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        store.insert(chunk).expect("insert");
    }
    store.checkpoint().expect("checkpoint");
    let stored = store.count().expect("count");
    drop(store);
    let insert_secs = t.elapsed().as_secs_f64();
    assert_eq!(stored as usize, minutes, "readings stored");
    let file_size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let bytes = file_size(&db) + file_size(std::path::Path::new(&wal));
    let per_reading = bytes as f64 / minutes as f64;

    let to = cryowatch::model::format_rfc3339(T0 + minutes as i64 * 60_000);
    let out_path = dir.path().join("year.csv");
    let mut times = Vec::new();
    let mut out_bytes = 0;
    for _ in 0..runs {
        let out = std::fs::File::create(&out_path).expect("output file");
        let t = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_cryowatch"))
            .args(["history", "-c"])
            .arg(&cfg)
            .args([
                "--sensor",
                SENSOR,
                "--from",
                "2025-01-01T00:00:00Z",
                "--to",
                &to,
                "--format",
                "csv",
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .status()
            .expect("run cryowatch history");
        times.push(t.elapsed().as_secs_f64());
        assert!(status.success(), "cryowatch history failed: {status}");
        let text = std::fs::read_to_string(&out_path).expect("read the export");
        out_bytes = text.len();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("time,sensor,value,unit,quality"), "CSV header");
        let first = lines.next().unwrap_or_default().to_string();
        let rows = 1 + lines.count();
        assert_eq!(rows, minutes, "rows exported (first row: {first})");
        assert!(first.starts_with("2025-01-01T00:00:00"), "first row: {first}");
    }
    // Sorts `times`: the first is the fastest.
    let (median, _, _) = support::percentiles(&mut times);
    let fastest = times.first().copied().unwrap_or(f64::NAN);
    let rows_per_s = minutes as f64 / median;

    println!(
        "export year: {minutes} one-minute readings of one sensor, `cryowatch history --format csv` ({} build)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!("  stored              in {insert_secs:.1} s through Store::insert");
    println!(
        "  export              {median:>8.3} s median of {runs} (fastest {fastest:.3} s)   {rows_per_s:.0} rows/s, {:.1} MB of CSV",
        out_bytes as f64 / 1e6
    );
    println!("  store on disk       {per_reading:>8.1} bytes/reading   ({bytes} bytes after checkpoint)");
    println!(
        "REPORT export_readings={minutes} export_secs={median:.3} export_rows_per_s={rows_per_s:.0} export_bytes_per_reading={per_reading:.1}"
    );
}
