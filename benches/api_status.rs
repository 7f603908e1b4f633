//! `GET /api/v1/status` under load, with the pipeline running.
//!
//! A real Mosquitto on a free loopback port; the release `cryowatch run` daemon (the
//! binary Cargo builds for this bench) with 1,000 MQTT sensors on 5 LN2 dewars (one
//! topic per sensor; every other sensor takes a JSON payload, the rest a bare number),
//! `[api] listen` on a free port and a viewer token. A publisher in the bench (rumqttc,
//! QoS 1) keeps every sensor at 1 Hz for the whole run. Once `/api/v1/status` shows all
//! 1,000 sensors with a value, `wrk` (Debian's) loads it over keep-alive connections.
//!
//! Prints wrk's requests/s and latency percentiles, the response size, what the
//! pipeline did meanwhile (readings acknowledged by the broker vs stored, in the same
//! window; the daemon's CPU from `/proc`), then where one request's time goes: the same
//! `report::status::gather` call the handler makes, timed in-process on the daemon's
//! database, beside the per-sensor queries it is made of and the alternatives.
//!
//! Run: `cargo bench --bench api_status`. BENCH_CONNECTIONS (default 16) and BENCH_SECS
//! (default 20) set wrk's `-c` and `-d`; wrk runs min(2, connections) threads. Needs
//! `mosquitto` (tests/run.sh installs it) and `wrk` (`apt-get install wrk`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cryowatch::model::now_ms;
use cryowatch::store::Store;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

mod support;
use support::{Killed, free_port, http_get_with, pid_cpu, start_broker};

const ASSETS: usize = 5;
const PER_ASSET: usize = 200;
const SENSORS: usize = ASSETS * PER_ASSET;
const TOKEN: &str = "bench-viewer-token-0123456789";
const STATUS: &str = "/api/v1/status";
/// Below this many requests/s the figure is called poor (the "a few hundred").
const POOR: f64 = 300.0;

fn sensor_id(i: usize) -> String {
    format!("dewar-{}.probe-{:03}", i / PER_ASSET, i % PER_ASSET)
}

fn topic(i: usize) -> String {
    format!("lab/dewar-{}/probe-{:03}", i / PER_ASSET, i % PER_ASSET)
}

/// Odd sensors publish `{"probe":{"temp_c":V}}`, even ones a bare number.
fn json_payload(i: usize) -> bool {
    i % 2 == 1
}

/// About -190 °C with a little noise: far from the dewars' default -150 °C alarm.
fn payload(i: usize, k: u64) -> Vec<u8> {
    let v = -190.0 + ((i as u64 * 7 + k * 13) % 100) as f64 * 0.01;
    if json_payload(i) {
        format!("{{\"probe\":{{\"temp_c\":{v:.2}}}}}").into_bytes()
    } else {
        format!("{v:.2}").into_bytes()
    }
}

fn write_config(dir: &Path, mqtt_port: u16, api_port: u16) -> std::path::PathBuf {
    use std::fmt::Write;
    let mut toml = format!(
        "[site]\nname = \"bench\"\n[store]\npath = \"{}\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nclient_id = \"bench-cryowatch\"\n\
         [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
         [[api.token]]\nid = \"bench\"\nrole = \"viewer\"\ntoken = \"{TOKEN}\"\n",
        dir.join("bench.db").display()
    );
    for a in 0..ASSETS {
        writeln!(
            toml,
            "[[asset]]\nid = \"dewar-{a}\"\nname = \"Dewar {a}\"\nkind = \"ln2_dewar\"\nlocation = \"Room 214\""
        )
        .expect("write");
    }
    for i in 0..SENSORS {
        writeln!(
            toml,
            "[[sensor]]\nid = \"{}\"\nasset = \"dewar-{}\"\nquantity = \"temperature\"\nunit = \"degC\"\n\
             [sensor.mqtt]\ntopic = \"{}\"",
            sensor_id(i),
            i / PER_ASSET,
            topic(i)
        )
        .expect("write");
        if json_payload(i) {
            writeln!(toml, "format = \"json\"\njson_path = \"probe.temp_c\"").expect("write");
        }
    }
    let path = dir.join("cryowatch.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// The publisher: every sensor once a second, QoS 1, from one rumqttc client.
struct Publisher {
    /// PUBACKs received: readings the broker has taken.
    acked: Arc<AtomicU64>,
    stop: CancellationToken,
    rt: tokio::runtime::Runtime,
}

impl Publisher {
    fn start(port: u16) -> Publisher {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-publisher")
            .enable_all()
            .build()
            .expect("runtime");
        let acked = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let topics: Vec<String> = (0..SENSORS).map(topic).collect();
        let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_inflight(500);
        let (client, mut eventloop) = AsyncClient::new(options, 2 * SENSORS);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        {
            let acked = acked.clone();
            let stop = stop.clone();
            rt.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        ev = eventloop.poll() => match ev {
                            Ok(Event::Incoming(Packet::PubAck(_))) => {
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                eprintln!("publisher: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                    }
                }
            });
        }
        {
            let stop = stop.clone();
            rt.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for k in 0u64.. {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    for (i, t) in topics.iter().enumerate() {
                        if client.publish(t, QoS::AtLeastOnce, false, payload(i, k)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Publisher { acked, stop, rt }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops publishing; the messages in flight are acknowledged before the client goes.
    fn stop(self) -> u64 {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.cancel();
        self.rt.shutdown_timeout(Duration::from_secs(2));
        self.acked.load(Ordering::Relaxed)
    }
}

fn get_status(port: u16) -> (u16, Vec<u8>) {
    let auth = format!("Bearer {TOKEN}");
    http_get_with(port, STATUS, &[("Authorization", &auth)]).expect("GET /api/v1/status")
}

/// (sensors listed, sensors with a value) in a status body.
fn valued(body: &[u8]) -> (usize, usize) {
    let json: serde_json::Value = serde_json::from_slice(body).expect("status is JSON");
    let sensors: Vec<&serde_json::Value> = json["assets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["sensors"].as_array().into_iter().flatten())
        .collect();
    let with = sensors.iter().filter(|s| s["value"].is_number()).count();
    (sensors.len(), with)
}

fn stored(db: &Path) -> u64 {
    Store::open_read_only(db)
        .and_then(|s| s.count())
        .expect("count readings") as u64
}

/// (busy, total) jiffies of the whole machine, from the first line of `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// What wrk printed, parsed.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    secs: f64,
    bytes: f64,
    rps: f64,
    /// Latency distribution, milliseconds.
    p50: f64,
    p75: f64,
    p90: f64,
    p99: f64,
    max: f64,
    non_2xx: u64,
    socket_errors: Option<String>,
}

/// `1.23ms`, `850.00us`, `1.02s`, `1.50m` → milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let n: f64 = s[..split].parse().ok()?;
    Some(match &s[split..] {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

/// `5.00GB` → bytes (wrk's units are binary).
fn wrk_bytes(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let n: f64 = s[..split].parse().ok()?;
    let unit = match &s[split..] {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * unit)
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => w.p50 = wrk_ms(v).unwrap_or(f64::NAN),
            ["75%", v] => w.p75 = wrk_ms(v).unwrap_or(f64::NAN),
            ["90%", v] => w.p90 = wrk_ms(v).unwrap_or(f64::NAN),
            ["99%", v] => w.p99 = wrk_ms(v).unwrap_or(f64::NAN),
            ["Latency", _avg, _stdev, max, ..] => w.max = wrk_ms(max).unwrap_or(f64::NAN),
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(f64::NAN),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non_2xx = n.parse().unwrap_or(u64::MAX),
            [n, "requests", "in", secs, bytes, "read"] => {
                w.requests = n.parse().unwrap_or(0);
                w.secs = wrk_ms(secs.trim_end_matches(',')).unwrap_or(f64::NAN) / 1000.0;
                w.bytes = wrk_bytes(bytes).unwrap_or(f64::NAN);
            }
            ["Socket", "errors:", ..] => w.socket_errors = Some(line.trim().to_string()),
            _ => {}
        }
    }
    w
}

/// Mean milliseconds of `f` over `n` runs, after two unmeasured ones.
fn time_ms<T>(n: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..2 {
        std::hint::black_box(f());
    }
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    start.elapsed().as_secs_f64() * 1000.0 / n as f64
}

/// Times, in-process on the daemon's database (read-only, no lock contention), the
/// handler's `gather` and the queries it is made of, beside the rate one request at a
/// time under the store's Mutex would allow; returns the lines to print.
fn where_the_time_goes(cfg_path: &Path, db: &Path) -> Vec<String> {
    const N: usize = 20;
    let config = cryowatch::config::load(cfg_path).expect("bench config is valid");
    let store = Store::open_read_only(db).expect("open store read-only");
    let ids = store.sensors().expect("sensors");
    let sensor_ids: Vec<i64> = config.sensors.iter().map(|s| ids[&s.id].0).collect();
    const LAST: &str = "SELECT t, value, quality FROM reading WHERE sensor = ?1 ORDER BY t DESC, seq DESC LIMIT 1";

    let gather = time_ms(N, || {
        cryowatch::report::status::gather(&config, &store, now_ms()).expect("gather")
    });
    let sensors = time_ms(N, || store.sensors().expect("sensors"));
    let alarms = time_ms(N, || store.alarms(true).expect("alarms"));
    let latest = time_ms(N, || {
        for &id in &sensor_ids {
            std::hint::black_box(store.latest(id, i64::MAX).expect("latest"));
        }
    });
    // The statement-level figures below (preparing, cached lookups, one statement) run
    // SQLite directly, on a read-only connection of the bench's own to the same file,
    // opened as the store opens its readers: the same statements, the same cache.
    let c = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store file read-only");
    c.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    let prepare_only = time_ms(N, || {
        for _ in &sensor_ids {
            drop(c.prepare(LAST).expect("prepare"));
        }
    });
    let cached_lookups = |c: &rusqlite::Connection| -> rusqlite::Result<()> {
        let mut st = c.prepare_cached(LAST)?;
        for &id in &sensor_ids {
            std::hint::black_box(st.query_row([id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?, r.get::<_, i64>(2)?))
            })?);
        }
        Ok(())
    };
    let cached = time_ms(N, || cached_lookups(&c).expect("cached"));
    // The same in one read transaction: one snapshot, one WAL read lock instead of 1,000.
    let cached_tx = time_ms(N, || {
        c.execute_batch("BEGIN").expect("begin");
        let r = cached_lookups(&c);
        c.execute_batch("COMMIT").expect("commit");
        r.expect("cached in a transaction")
    });
    // One statement for every sensor's newest reading (newest good one left out: it
    // is the newest reading itself whenever that is good).
    let one_query = time_ms(N, || {
        let mut st = c
            .prepare_cached(
                "SELECT s.id, r.t, r.value, r.quality FROM sensor s JOIN reading r ON r.sensor = s.id
                 AND (r.t, r.seq) = (SELECT t, seq FROM reading WHERE sensor = s.id ORDER BY t DESC, seq DESC LIMIT 1)",
            )
            .expect("one query");
        st.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<f64>>(2)?))
        })
        .expect("one query")
        .count()
    });
    let rows = cryowatch::report::status::gather(&config, &store, now_ms()).expect("gather");
    let serialize = time_ms(N, || {
        // As the handler builds it: rows grouped by asset into a json! value, then bytes.
        let assets: Vec<_> = config
            .assets
            .iter()
            .map(|a| {
                let mine: Vec<_> = rows.iter().filter(|r| r.asset == a.id).collect();
                serde_json::json!({ "id": a.id, "name": a.name, "kind": a.kind, "location": a.location, "state": "ok", "sensors": mine })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "site": "bench", "assets": assets })).expect("json")
    });
    // The same body serialized straight from the rows, without the `Value` tree.
    #[derive(serde::Serialize)]
    struct Asset<'a> {
        id: &'a str,
        name: &'a str,
        kind: &'a str,
        location: &'a str,
        state: &'a str,
        sensors: Vec<&'a cryowatch::report::status::SensorStatus>,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        site: &'a str,
        assets: Vec<Asset<'a>>,
    }
    let serialize_direct = time_ms(N, || {
        let assets = config
            .assets
            .iter()
            .map(|a| Asset {
                id: &a.id,
                name: &a.name,
                kind: &a.kind,
                location: &a.location,
                state: "ok",
                sensors: rows.iter().filter(|r| r.asset == a.id).collect(),
            })
            .collect();
        serde_json::to_vec(&Body { site: "bench", assets }).expect("json")
    });
    let rest = (gather - sensors - alarms - latest).max(0.0);
    let mut out = Vec::new();
    out.push(format!(
        "where one request's time goes (in-process, same database, mean of {N}, no contention):"
    ));
    out.push(format!(
        "  status::gather (under the store Mutex)   {gather:>7.2} ms   -> at most {:.0} req/s, one at a time",
        1000.0 / gather
    ));
    out.push(format!("    store.sensors()                        {sensors:>7.2} ms"));
    out.push(format!("    open alarms query                      {alarms:>7.2} ms"));
    out.push(format!(
        "    store.latest() one call per sensor x {SENSORS} {latest:>7.2} ms   ({:.1} us per sensor; gather uses latest_of instead)",
        latest * 1000.0 / SENSORS as f64
    ));
    out.push(format!(
        "      of which statement preparation       {prepare_only:>7.2} ms   (preparing a statement per call)"
    ));
    out.push(format!("    the rest (states, strings, alarms)     {rest:>7.2} ms"));
    out.push(format!(
        "  JSON body, grouped and serialized       {serialize:>7.2} ms   (outside the Mutex)"
    ));
    out.push("  alternatives:".to_string());
    out.push(format!(
        "    JSON straight from the rows (no Value)  {serialize_direct:>6.2} ms"
    ));
    out.push(format!("    same query per sensor, prepare_cached  {cached:>7.2} ms"));
    out.push(format!(
        "      ... inside one read transaction      {cached_tx:>7.2} ms"
    ));
    out.push(format!(
        "    one statement for all sensors          {one_query:>7.2} ms"
    ));
    out
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .unwrap_or(default)
    };
    let connections = env("BENCH_CONNECTIONS", 16);
    let secs = env("BENCH_SECS", 20);
    let threads = connections.min(2);
    let wall = Instant::now();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk not found: apt-get install wrk");
        std::process::exit(1);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt_port = free_port();
    let _broker = start_broker(dir.path(), mqtt_port);
    let api_port = free_port();
    let cfg_path = write_config(dir.path(), mqtt_port, api_port);
    let db = dir.path().join("bench.db");
    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).expect("daemon log");
    let daemon = Killed(
        Command::new(env!("CARGO_BIN_EXE_cryowatch"))
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("daemon log"))
            .stderr(log)
            .spawn()
            .expect("start cryowatch run"),
    );
    let pid = daemon.0.id();
    let daemon_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let auth = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        http_get_with(api_port, "/api/v1/healthz", &[("Authorization", &auth)]),
        Ok((200, _))
    ) {
        assert!(Instant::now() < deadline, "the API did not come up:\n{}", daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let publisher = Publisher::start(mqtt_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = get_status(api_port);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (listed, with) = valued(&body);
        // The probes and the monitor's own sensors: record integrity, and refused
        // sign-ins (there is an API).
        assert_eq!(listed, SENSORS + 2, "sensors listed by /api/v1/status");
        if with == SENSORS + 2 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "only {with} of {SENSORS} sensors have a value after 30 s:\n{}",
            daemon_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let ready_secs = wall.elapsed().as_secs_f64();
    // One request at a time, unloaded.
    let mut single: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let (status, _) = get_status(api_port);
            assert_eq!(status, 200);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let (single_p50, _, single_max) = support::percentiles(&mut single);

    let url = format!("http://127.0.0.1:{api_port}{STATUS}");
    let args = [
        "-t".to_string(),
        threads.to_string(),
        "-c".to_string(),
        connections.to_string(),
        "-d".to_string(),
        format!("{secs}s"),
        "--latency".to_string(),
        "-H".to_string(),
        format!("Authorization: Bearer {TOKEN}"),
        url,
    ];
    let stored0 = stored(&db);
    let acked0 = publisher.acked();
    let cpu0 = pid_cpu(pid);
    let machine0 = machine_ticks();
    let t0 = Instant::now();
    let out = Command::new("wrk").args(&args).output().expect("run wrk");
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = pid_cpu(pid);
    let machine1 = machine_ticks();
    let acked1 = publisher.acked();
    let stored1 = stored(&db);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!("wrk failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let w = parse_wrk(&text);
    if w.requests == 0 {
        panic!("could not read wrk's output:\n{text}");
    }
    let (_, after) = get_status(api_port);
    let (_, with_after) = valued(&after);

    let profile = where_the_time_goes(&cfg_path, &db);

    let acked_total = publisher.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stored_total = stored(&db);
    while stored_total < acked_total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stored_total = stored(&db);
    }
    let log_text = daemon_log();
    drop(daemon);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let machine_busy = (machine1.0 - machine0.0) as f64 / (machine1.1 - machine0.1).max(1) as f64;
    println!(
        "api status: GET {STATUS}, {SENSORS} MQTT sensors on {ASSETS} assets at 1 Hz (QoS 1, Mosquitto on loopback), release `cryowatch run`, {cores} cores"
    );
    let quoted: Vec<String> = args
        .iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() })
        .collect();
    println!("  wrk {}", quoted.join(" "));
    println!(
        "  requests/s        {:>10.1}   ({} requests in {:.2} s{})",
        w.rps,
        w.requests,
        w.secs,
        if w.rps < POOR {
            format!("; below {POOR:.0}: poor")
        } else {
            String::new()
        }
    );
    println!(
        "  latency           p50 {:.2} ms   p75 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        w.p50, w.p75, w.p90, w.p99, w.max
    );
    println!(
        "REPORT api_rps={:.1} api_p50_ms={:.2} api_p99_ms={:.2} api_connections={connections} api_secs={secs}",
        w.rps, w.p50, w.p99
    );
    println!(
        "  unloaded          p50 {single_p50:.2} ms   max {single_max:.2} ms   (10 requests one at a time, new connection each)"
    );
    println!(
        "  response          {} bytes of JSON body; {:.0} bytes/response read by wrk (headers included)",
        body.len(),
        w.bytes / w.requests as f64
    );
    if w.non_2xx > 0 || w.socket_errors.is_some() {
        println!(
            "  errors            {} non-2xx responses; {}",
            w.non_2xx,
            w.socket_errors.as_deref().unwrap_or("no socket errors")
        );
    }
    let published = acked1 - acked0;
    let stored_window = stored1 - stored0;
    println!(
        "  pipeline meanwhile ({window:.1} s): {published} readings acknowledged by the broker, {stored_window} stored ({:.0} /s vs {:.0} /s published)",
        stored_window as f64 / window,
        published as f64 / window
    );
    println!("                    all {SENSORS} sensors with a value after the load: {with_after} of {SENSORS}");
    println!(
        "  whole run         {acked_total} readings acknowledged, {stored_total} stored, {} lost",
        acked_total.saturating_sub(stored_total)
    );
    println!(
        "  daemon CPU        {:.2} cores during the load ({:.1} s of CPU in {window:.1} s); machine {:.0} % busy of {cores} cores",
        (cpu1 - cpu0).as_secs_f64() / window,
        (cpu1 - cpu0).as_secs_f64(),
        100.0 * machine_busy
    );
    let warnings: Vec<&str> = log_text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !warnings.is_empty() {
        println!(
            "  daemon log        {} warning/error lines, first: {}",
            warnings.len(),
            warnings[0]
        );
    }
    for line in &profile {
        println!("{line}");
    }
    println!(
        "  bench             {:.1} s in all ({ready_secs:.1} s until every sensor had a value)",
        wall.elapsed().as_secs_f64()
    );
}
