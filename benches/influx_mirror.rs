//! The InfluxDB mirror against a real VictoriaMetrics (which speaks InfluxDB line
//! protocol).
//!
//! 1. Back-fill: 1,000 sensors × 1,000 readings (1 s apart, ending now) waiting in the
//!    mirror's outbox; the sink is started and timed until the outbox is empty. Printed
//!    for the default batch size (5,000 points) and, for comparison, 1,000 and 20,000;
//!    every run checks that VictoriaMetrics holds each reading exactly once.
//! 2. Steady state: 1,000 sensors at 1 Hz for 30 s through the store writer, once with
//!    the mirror and the sink, once without. Prints the CPU time of the `influx-sink`
//!    and `store-writer` threads as a share of one core (CPU time per second of
//!    readings fed), and what mirroring costs in total; checks that every reading of
//!    the run reached VictoriaMetrics.
//!
//! Run: `cargo bench --bench influx_mirror` (BENCH_STEADY_SECS sets the length of each
//! steady-state run, default 30; BENCH_COMPARE=0 skips the 1,000 and 20,000 back-fills;
//! BENCH_HISTORY sets the readings per sensor of the back-fill, default 1,000).
//! Needs `victoria-metrics` (installed by tests/run.sh). Set RUST_LOG (default `warn`)
//! to see more of the sink's log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cryowatch::config::Config;
use cryowatch::model::{Quality, Reading, TimestampMs, now_ms};
use cryowatch::pipeline::commit::{self, Batch};
use cryowatch::sink::SinkStats;
use cryowatch::store::Store;
use cryowatch::store::mirror;
use tokio_util::sync::CancellationToken;

mod support;
use support::{Victoria, free_port, process_cpu, thread_cpu};

const RACKS: usize = 10;
const PROBES: usize = 100;
const SENSORS: usize = RACKS * PROBES;
/// Readings per sensor in the back-fill (BENCH_HISTORY).
const HISTORY: usize = 1_000;
const INSERT_CHUNK: usize = 10_000;
/// What VictoriaMetrics keeps: every timestamp of the bench is within the last hour.
const RETENTION: &str = "1d";
/// One sample per reading: the `quality` field is written for every reading.
const SELECTOR: &str = "cryo_reading_quality";
/// The writer's queue in the daemon.
const QUEUE: usize = 65_536;

fn sensor_id(i: usize) -> String {
    format!("rack-{:02}.probe-{:03}", i / PROBES, i % PROBES)
}

/// About -190 °C with a little noise, as an LN2 dewar's probes read.
fn value(sensor: usize, k: usize) -> f64 {
    -190.0 + ((sensor * 7 + k * 13) % 100) as f64 * 0.01 - 0.5
}

/// A configuration with the bench's sensors (MQTT sensors; the broker is never
/// contacted, only the sink runs) and `[influx]` pointing at `influx_url` with every
/// setting at its default (nanosecond precision, batches of 5,000, flush interval 1 s).
fn write_config(dir: &Path, db: &Path, influx_url: &str) -> Config {
    use std::fmt::Write;
    let mut toml = format!(
        "[site]\nname = \"bench\"\n[store]\npath = \"{}\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"bench-cryowatch\"\n\
         [influx]\nurl = \"{influx_url}\"\norg = \"bench\"\nbucket = \"cryo\"\ntoken = \"bench-token\"\nprecision = \"ns\"\n",
        db.display(),
        free_port()
    );
    for rack in 0..RACKS {
        writeln!(toml, "[[asset]]\nid = \"rack-{rack:02}\"\nkind = \"ln2_dewar\"").expect("write");
    }
    for i in 0..SENSORS {
        writeln!(
            toml,
            "[[sensor]]\nid = \"{}\"\nasset = \"rack-{:02}\"\nquantity = \"temperature\"\nunit = \"degC\"\n\
             [sensor.mqtt]\ntopic = \"lab/{}\"",
            sensor_id(i),
            i / PROBES,
            sensor_id(i).replace('.', "/")
        )
        .expect("write");
    }
    let path = dir.join("cryowatch.toml");
    std::fs::write(&path, toml).expect("write config");
    cryowatch::config::load(&path).unwrap_or_else(|e| panic!("bench config is invalid: {e}"))
}

/// Opens the store at `db` and registers the configured sensors; returns their ids in
/// configuration order.
fn open_store(config: &Config, db: &Path) -> (Store, Vec<i64>) {
    let mut store = Store::open(db).expect("open store");
    let names: Vec<(String, String)> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
    let ids = store.register_sensors(&names).expect("register sensors");
    (store, ids)
}

fn waiting(db: &Path) -> i64 {
    let store = Store::open_read_only(db).expect("open store read-only");
    store.mirror_lag().expect("mirror lag").readings
}

/// A running sink and how to stop it.
struct RunningSink {
    thread: std::thread::JoinHandle<()>,
    stats: Arc<SinkStats>,
    shutdown: CancellationToken,
}

impl RunningSink {
    fn start(config: &Config) -> RunningSink {
        let shutdown = CancellationToken::new();
        let (thread, stats) = cryowatch::sink::spawn(Arc::new(config.clone()), shutdown.clone())
            .expect("sink starts")
            .expect("[influx] is configured");
        RunningSink {
            thread,
            stats,
            shutdown,
        }
    }

    fn stop(self) -> Arc<SinkStats> {
        self.shutdown.cancel();
        self.thread.join().expect("sink thread");
        self.stats
    }
}

/// Polls the outbox every 50 ms until it is empty; false on `timeout`.
fn wait_drained(db: &Path, timeout: Duration) -> bool {
    let store = Store::open_read_only(db).expect("open store read-only");
    let deadline = Instant::now() + timeout;
    loop {
        if store.mirror_lag().expect("mirror lag").readings == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints the count found in VictoriaMetrics; true when it is `expected`. Right after a
/// large ingest, VictoriaMetrics 1.79 sometimes shows only part of the samples even
/// after `/internal/force_flush` and the rest a moment later: a short count is taken
/// again for up to 10 s (a count above `expected` means duplicates and is final).
fn check_landed(vm: &Victoria, expected: usize) -> bool {
    let start = Instant::now();
    let first = vm.samples(SELECTOR);
    let mut found = first;
    while found < expected && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        found = vm.samples(SELECTOR);
    }
    let note = if found == first {
        String::new()
    } else {
        format!(
            "   (first count {first}; complete after {:.1} s)",
            start.elapsed().as_secs_f64()
        )
    };
    let mark = if found == expected { "" } else { "   <-- MISMATCH" };
    println!("    in VictoriaMetrics: {found} of {expected}{note}{mark}");
    let log = vm.log();
    if found != expected || !log.trim().is_empty() {
        eprintln!("victoria-metrics log:\n{log}");
    }
    found == expected
}

/// One back-fill of everything in the outbox into a fresh VictoriaMetrics with
/// `batch_size` points per write. Returns whether every reading landed once, and the
/// rate in readings/s.
fn backfill_run(config: &Config, db: &Path, batch_size: usize, expected: usize) -> (bool, f64) {
    let vm = Victoria::start(RETENTION);
    let mut config = config.clone();
    let influx = config.influx.as_mut().expect("[influx]");
    influx.url = vm.url();
    influx.batch_size = batch_size;
    assert_eq!(waiting(db) as usize, expected, "outbox before the run");

    let vm_cpu0 = vm.cpu();
    let start = Instant::now();
    let sink = RunningSink::start(&config);
    let drained = wait_drained(db, Duration::from_secs(120));
    let secs = start.elapsed().as_secs_f64();
    let sink_cpu = thread_cpu("influx-sink").unwrap_or_default();
    let vm_cpu = vm.cpu() - vm_cpu0;
    let stats = sink.stop();
    let writes = stats.writes.load(Ordering::Relaxed);
    let retries = stats.retries.load(Ordering::Relaxed);
    let quarantined = stats.quarantined.load(Ordering::Relaxed);
    println!(
        "  batch {batch_size:>6}   {:>9.0} readings/s   ({secs:.2} s, {writes} writes, {retries} retries, {quarantined} quarantined)",
        expected as f64 / secs
    );
    println!(
        "    busy: influx-sink thread {:.0} % of one core, victoria-metrics {:.0} %",
        100.0 * sink_cpu.as_secs_f64() / secs,
        100.0 * vm_cpu.as_secs_f64() / secs
    );
    if !drained {
        println!("    outbox not empty after 120 s: {} waiting", waiting(db));
    }
    (check_landed(&vm, expected) && drained, expected as f64 / secs)
}

/// CPU time used during one steady-state run.
struct Steady {
    writer: Duration,
    sink: Option<Duration>,
    process: Duration,
    readings: usize,
    ok: bool,
}

/// Feeds the store writer `SENSORS` readings a second for `secs` seconds, with the
/// mirror on (and the sink writing to a fresh VictoriaMetrics) or off.
fn steady_run(config: &Config, dir: &Path, secs: usize, mirrored: bool) -> Steady {
    let db = dir.join(if mirrored {
        "steady-mirror.db"
    } else {
        "steady-plain.db"
    });
    let vm = mirrored.then(|| Victoria::start(RETENTION));
    let mut config = config.clone();
    config.store.path = db.clone();
    if let (Some(vm), Some(influx)) = (&vm, config.influx.as_mut()) {
        influx.url = vm.url();
    }
    let (mut store, ids) = open_store(&config, &db);
    store.set_mirror(mirrored).expect("mirror on/off");
    let sink = mirrored.then(|| RunningSink::start(&config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let readings = SENSORS * secs;

    let (writer, sink_cpu, process, ok) = rt.block_on(async {
        let (handle, join) = commit::spawn(
            store,
            ids,
            Vec::new(),
            QUEUE,
            config.store.batch_size,
            None,
            Default::default(),
        )
        .expect("store writer starts");
        // Let the sink settle (its first pass writes the thresholds).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let writer0 = thread_cpu("store-writer").expect("store-writer thread");
        let sink0 = thread_cpu("influx-sink");
        let process0 = process_cpu();
        let mut every = tokio::time::interval(Duration::from_secs(1));
        for k in 0..secs {
            every.tick().await;
            let t: TimestampMs = now_ms();
            let batch = (0..SENSORS)
                .map(|i| Reading {
                    sensor: i,
                    time: t,
                    value: Some(value(i, k)),
                    quality: Quality::Good,
                    source_time: false,
                    flag: None,
                })
                .collect();
            handle.send(Batch::new(batch)).await.expect("writer running");
        }
        // The last second's batch, then the sink's last partial batch (it waits one
        // flush interval for more).
        every.tick().await;
        while handle.stats.committed.load(Ordering::Relaxed) < readings as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let writer1 = thread_cpu("store-writer").expect("store-writer thread");
        let mut ok = true;
        if mirrored {
            ok = wait_drained(&db, Duration::from_secs(30));
        }
        let sink1 = thread_cpu("influx-sink");
        let process1 = process_cpu();
        drop(handle);
        join.join().await;
        (
            writer1 - writer0,
            sink0.zip(sink1).map(|(a, b)| b - a),
            process1 - process0,
            ok,
        )
    });
    if let Some(sink) = sink {
        let stats = sink.stop();
        let retries = stats.retries.load(Ordering::Relaxed);
        if retries > 0 {
            println!("    the sink retried {retries} times");
        }
    }
    let mut ok = ok;
    if let Some(vm) = &vm {
        if !ok {
            println!("    outbox not empty 30 s after the run: {} waiting", waiting(&db));
        }
        ok &= check_landed(vm, readings);
    }
    Steady {
        writer,
        sink: sink_cpu,
        process,
        readings,
        ok,
    }
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let ok = run();
    if !ok {
        println!("FAILED: not every reading reached VictoriaMetrics exactly once");
        std::process::exit(1);
    }
}

/// Both figures; false when a check failed. Every server is stopped when it returns.
fn run() -> bool {
    let steady_secs: usize = std::env::var("BENCH_STEADY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let compare = std::env::var("BENCH_COMPARE").map_or(true, |v| v != "0");
    let history: usize = std::env::var("BENCH_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(HISTORY);
    let dir = tempfile::tempdir().expect("temp dir");
    let db: PathBuf = dir.path().join("backfill.db");
    // The URL is replaced by each run's own VictoriaMetrics.
    let config = write_config(dir.path(), &db, "http://127.0.0.1:9");
    let influx = config.influx.as_ref().expect("[influx]");
    let default_batch = influx.batch_size;
    let mut ok = true;

    // 1. Back-fill.
    let total = SENSORS * history;
    let start = Instant::now();
    let (mut store, ids) = open_store(&config, &db);
    store.set_mirror(true).expect("mirror on");
    let end = now_ms();
    let rows: Vec<(i64, TimestampMs, Option<f64>, Quality)> = (0..history)
        .flat_map(|k| {
            let t = end - (history - 1 - k) as i64 * 1_000;
            // The probes only: not the monitor's own record-integrity sensor.
            ids.iter()
                .take(SENSORS)
                .enumerate()
                .map(move |(i, &id)| (id, t, Some(value(i, k)), Quality::Good))
        })
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        store.insert(chunk).expect("insert");
    }
    drop(rows);
    let insert_secs = start.elapsed().as_secs_f64();
    println!(
        "influx mirror: {SENSORS} sensors, VictoriaMetrics 1.79 on loopback, precision {}, flush interval {:?}, {} cores",
        influx.precision.as_str(),
        influx.flush_interval,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "back-fill of {total} queued readings ({SENSORS} sensors × {history} at 1 s; stored and queued in {insert_secs:.1} s):"
    );
    let mut sizes = vec![default_batch];
    if compare {
        sizes.extend([1_000, 20_000]);
    }
    for (n, &size) in sizes.iter().enumerate() {
        if n > 0 {
            // The same readings again, queued as `cryowatch influx backfill` does.
            let (queued, _) = mirror::backfill_range(&mut store, 0, i64::MAX).expect("queue again");
            assert_eq!(queued, total);
        }
        let (landed, rate) = backfill_run(&config, &db, size, total);
        ok &= landed;
        if n == 0 {
            println!(
                "REPORT backfill_per_s={rate:.0} backfill_readings={total} backfill_batch={size} backfill_landed={landed}"
            );
        }
        if n == 0 && compare {
            println!("  for comparison:");
        }
    }
    drop(store);

    // 2. Steady state.
    println!("steady state: {SENSORS} sensors at 1 Hz for {steady_secs} s, one batch a second into the store writer:");
    let pct = |cpu: Duration| 100.0 * cpu.as_secs_f64() / steady_secs as f64;
    let with = steady_run(&config, dir.path(), steady_secs, true);
    let without = steady_run(&config, dir.path(), steady_secs, false);
    ok &= with.ok && without.ok;
    let sink = with.sink.unwrap_or_default();
    println!(
        "  influx-sink thread          {:>6.2} % of one core   ({} readings mirrored)",
        pct(sink),
        with.readings
    );
    println!("  store-writer, mirror on     {:>6.2} % of one core", pct(with.writer));
    println!(
        "  store-writer, mirror off    {:>6.2} % of one core",
        pct(without.writer)
    );
    println!(
        "  cost of mirroring           {:>6.2} % of one core   (sink + writer's extra {:+.2} %)",
        pct(sink) + pct(with.writer) - pct(without.writer),
        pct(with.writer) - pct(without.writer)
    );
    println!(
        "  whole process               {:>6.2} % with the mirror, {:.2} % without",
        pct(with.process),
        pct(without.process)
    );
    println!(
        "REPORT mirror_cost_pct={:.2} mirror_steady_secs={steady_secs} mirror_landed={}",
        pct(sink) + pct(with.writer) - pct(without.writer),
        with.ok
    );
    ok
}
