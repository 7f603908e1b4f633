//! Sustained MQTT ingest into the embedded store.
//!
//! A flood of QoS 1 messages from `mosquitto_pub -l` goes once to a bare
//! `mosquitto_sub` and once to cryowatch (MQTT source → store writer → SQLite). Prints
//! both rates, the readings lost (must be 0) and the bytes per reading on disk.
//!
//! Run: `cargo bench --bench mqtt_ingest` (BENCH_N sets the flood size, default 200000).
//! Needs `mosquitto`, `mosquitto_pub` and `mosquitto_sub` (installed by tests/run.sh).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cryowatch::daemon::Daemon;
use cryowatch::store::Store;

mod support;
use support::{Killed, free_port, start_broker};

const TOPIC: &str = "bench/flood";

/// A running `mosquitto_pub -l`. Its stdin stays open until the flood has been
/// received: at end of input `mosquitto_pub` 2.0 disconnects at once and drops the
/// QoS 1 messages still queued in its client, which would count as lost here.
struct Publisher {
    child: Killed,
    stdin: Option<std::process::ChildStdin>,
}

impl Publisher {
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.0.wait();
    }
}

fn publish_flood(port: u16, flood: &[u8]) -> Publisher {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", TOPIC, "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("mosquitto_pub");
    let mut stdin = child.stdin.take().expect("mosquitto_pub stdin");
    stdin.write_all(flood).expect("feed mosquitto_pub");
    stdin.flush().expect("feed mosquitto_pub");
    Publisher {
        child: Killed(child),
        stdin: Some(stdin),
    }
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let n: u64 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut flood = Vec::new();
    for i in 0..n {
        writeln!(flood, "{:.4}", -196.0 + i as f64 * 0.0001).expect("write flood");
    }
    let port = free_port();
    let _broker = start_broker(dir.path(), port);

    // 1. The bare subscriber.
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            TOPIC,
            "-C",
            &n.to_string(),
            "-i",
            "bench-bare",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let publisher = publish_flood(port, &flood);
    let status = sub.wait().expect("mosquitto_sub");
    let bare_secs = start.elapsed().as_secs_f64();
    publisher.finish();
    assert!(status.success(), "mosquitto_sub failed");
    let bare_rate = n as f64 / bare_secs;

    // 2. cryowatch, through the store.
    let db = dir.path().join("bench.db");
    let cfg_path = dir.path().join("cryowatch.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[site]\nname = \"bench\"\n[store]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"bench-cryowatch\"\n\
             [[asset]]\nid = \"a\"\nkind = \"other\"\n[[sensor]]\nid = \"flood\"\nasset = \"a\"\nunit = \"degC\"\n[sensor.mqtt]\ntopic = \"{TOPIC}\"\n",
            db.display()
        ),
    )
    .expect("config");
    let config = cryowatch::config::load(&cfg_path).expect("bench config is valid");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (cw_secs, committed) = rt.block_on(async {
        let daemon = Daemon::start(&config).expect("daemon starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.mqtt_stats.connects.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "cryowatch did not connect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        let publisher = publish_flood(port, &flood);
        let deadline = Instant::now() + Duration::from_secs(120);
        while daemon.writer_stats.committed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        publisher.finish();
        let committed = daemon.writer_stats.committed.load(Ordering::Relaxed);
        let transactions = daemon.writer_stats.transactions.load(Ordering::Relaxed);
        daemon.stop().await;
        eprintln!("  ({transactions} transactions)");
        (secs, committed)
    });
    // Fold the WAL into the database file so its size is what the readings really take.
    let store = Store::open(&db).expect("open store");
    store.checkpoint().expect("checkpoint");
    let mut store = store;
    let stored = store.count().expect("count") as u64;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let bytes = size(&db) + size(&db.with_extension("db-wal"));
    // The same once the flood's block is sealed, as it is 12 minutes later: the batches
    // that bound the readings at commit are dropped, and their pages serve new readings.
    let later = cryowatch::model::now_ms() + 13 * 60_000;
    while store.seal_due(later, 10 * 60_000, 2 * 60_000).expect("seal").is_some() {}
    store.checkpoint().expect("checkpoint");
    drop(store);
    // The file's pages in use, read on a connection of the bench's own (the WAL was just
    // folded in: the file alone holds them).
    let used: i64 = {
        let c = rusqlite::Connection::open(&db).expect("open the store file");
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("page count");
        let free: i64 = c
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .expect("free pages");
        let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page size");
        (pages - free) * size
    };
    let sealed_per_reading = used as f64 / stored.max(1) as f64;
    let cw_rate = committed as f64 / cw_secs;

    println!("mqtt ingest: {n} QoS 1 messages from one `mosquitto_pub -q 1 -l`, Mosquitto on loopback");
    println!("  bare mosquitto_sub    {bare_rate:>10.0} msg/s   ({bare_secs:.2} s)");
    println!(
        "  cryowatch into store  {cw_rate:>10.0} readings/s   ({cw_secs:.2} s, {:.0} % of bare; target >= 80 %)",
        100.0 * cw_rate / bare_rate
    );
    println!("  readings lost         {:>10}   (target 0)", n.saturating_sub(stored));
    println!(
        "  store on disk         {:>10.1} bytes/reading   ({bytes} bytes; target <= 32)",
        bytes as f64 / stored.max(1) as f64
    );
    println!("  once sealed           {sealed_per_reading:>10.1} bytes/reading   (pages in use; target <= 32)");
    println!(
        "REPORT ingest_n={n} ingest_bare_per_s={bare_rate:.0} ingest_per_s={cw_rate:.0} ingest_ratio_pct={:.1} ingest_lost={} ingest_bytes_per_reading={:.1} ingest_bytes_sealed={sealed_per_reading:.1}",
        100.0 * cw_rate / bare_rate,
        n.saturating_sub(stored),
        bytes as f64 / stored.max(1) as f64
    );
}
