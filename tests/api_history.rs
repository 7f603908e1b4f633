//! `GET /api/v1/history` over a long record (3 million readings, 500 days): the export
//! is streamed from its own read-only connection, so while it runs the rest of the API
//! (readiness, here) answers at once and the daemon's memory stays bounded; answers are
//! pages of `limit` rows chained by `X-Next-Cursor`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cryosim::CryoSim;
use common::http::call;
use common::{Proc, Site, free_port, wait_for};
use cryowatch::model::Quality;
use cryowatch::store::Store;

const VIEWER: &str = "viewer-token-0123456789";
const SENSOR: &str = "dewar-1.temp";
const ROWS: i64 = 3_000_000;
const DAY_MS: i64 = 86_400_000;
/// 500 days of readings: one every 14.4 s.
const STEP_MS: i64 = 500 * DAY_MS / ROWS;

struct Lab {
    _dir: tempfile::TempDir,
    _sim: CryoSim,
    site: Site,
    daemon: Option<Proc>,
    addr: SocketAddr,
    /// The first reading written.
    first: i64,
}

impl Lab {
    /// A site whose store already holds `rows` readings of `SENSOR`, `STEP_MS` apart, ending now.
    fn start(rows: i64) -> Lab {
        let dir = tempfile::tempdir().expect("dir");
        let sim = CryoSim::start(dir.path());
        let port = free_port();
        let site = Site::new(&format!(
            r#"[site]
name = "history lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
seal_interval = "1d"
[api]
listen = "127.0.0.1:{port}"
[[api.token]]
id = "wall"
role = "viewer"
token = "{VIEWER}"
[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "1s"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "{SENSOR}"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "10s"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
"#,
            modbus = sim.modbus
        ));
        let now = cryowatch::model::now_ms();
        let first = now - 1000 - rows * STEP_MS;
        let started = Instant::now();
        {
            let mut store = Store::open(&site.path().join("cryowatch.db")).expect("open the store");
            let ids = store
                .register_sensors(&[(SENSOR.to_string(), "degC".to_string())])
                .expect("register the sensor");
            // Committed a day at a time and sealed at the end of each day, as the daemon
            // commits and seals them, so each seal checks one day's batches.
            let seal = |store: &mut Store, until: i64| {
                while let Some(sealed) = store.seal_due(until, DAY_MS, 120_000).expect("seal the readings") {
                    if !sealed.more {
                        break;
                    }
                }
            };
            let mut batch = Vec::with_capacity(10_000);
            let mut day = first.div_euclid(DAY_MS);
            for i in 0..rows {
                let t = first + i * STEP_MS;
                if t.div_euclid(DAY_MS) != day {
                    store.insert(&batch).expect("insert readings");
                    batch.clear();
                    day = t.div_euclid(DAY_MS);
                    seal(&mut store, day * DAY_MS + 120_000);
                }
                let value = -190.0 + (i % 100) as f64 * 0.01;
                batch.push((ids[0], t, Some(value), Quality::Good));
            }
            store.insert(&batch).expect("insert readings");
            seal(&mut store, now);
        }
        eprintln!("{rows} readings written in {:.1?}", started.elapsed());
        let daemon = site.start_daemon();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let lab = Lab {
            _dir: dir,
            _sim: sim,
            site,
            daemon: Some(daemon),
            addr,
            first,
        };
        wait_for(Duration::from_secs(120), "the API to be ready", || {
            let r = lab.get("/api/v1/readyz").ok()?;
            (r.status == 200).then_some(())
        });
        lab
    }

    fn get(&self, path: &str) -> Result<common::http::Response, String> {
        let auth = format!("Bearer {VIEWER}");
        call(self.addr, "GET", path, &[("Authorization", &auth)], None)
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().map(|d| d.pid()).expect("daemon running")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.site.stop_daemon(d);
        }
    }
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// What a whole export answered: status, the X-Next-Cursor header, body lines and bytes.
struct Export {
    status: u16,
    next: Option<String>,
    lines: u64,
    bytes: u64,
}

/// `GET path` read to its end as it arrives (HTTP/1.0: the body runs to the close).
fn export(addr: SocketAddr, path: &str, accept: &str) -> Export {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\nAccept: {accept}\r\n\r\n"
    )
    .expect("send the request");
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut next = None;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("x-next-cursor")
        {
            next = Some(v.trim().to_string());
        }
    }
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).expect("body");
        if n == 0 {
            break;
        }
        lines += 1;
        bytes += n as u64;
    }
    Export {
        status,
        next,
        lines,
        bytes,
    }
}

#[test]
fn a_long_history_export_streams_in_pages_without_stalling_the_api_or_filling_memory() {
    let lab = Lab::start(ROWS);
    let pid = lab.pid();
    let rss_before = proc_kb(pid, "VmRSS");
    let hwm_before = proc_kb(pid, "VmHWM");
    let addr = lab.addr;
    // The longest page there is (a million rows), as JSON: about 110 MB on the wire.
    let worker = std::thread::spawn(move || {
        let started = Instant::now();
        let e = export(
            addr,
            &format!("/api/v1/history?sensor={SENSOR}&from=-501d&limit=1000000"),
            "application/json",
        );
        (e, started.elapsed())
    });
    let mut slowest = Duration::ZERO;
    let mut rss_peak = rss_before;
    let mut probes = 0;
    while !worker.is_finished() {
        let started = Instant::now();
        let r = lab.get("/api/v1/readyz").expect("readyz");
        let took = started.elapsed();
        assert!(r.status == 200 || r.status == 503, "readyz: {} {}", r.status, r.body);
        slowest = slowest.max(took);
        rss_peak = rss_peak.max(proc_kb(pid, "VmRSS"));
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (page, export_took) = worker.join().expect("export thread");
    let hwm_after = proc_kb(pid, "VmHWM");
    eprintln!(
        "export of {} rows ({} MB) in {export_took:.1?}; readyz slowest {slowest:?} over {probes} probes; \
         RSS {} MB before, peak {} MB during; VmHWM {} MB before, {} MB after",
        page.lines.saturating_sub(2),
        page.bytes >> 20,
        rss_before >> 10,
        rss_peak >> 10,
        hwm_before >> 10,
        hwm_after >> 10
    );
    assert_eq!(page.status, 200);
    // "[", a million rows, "]".
    assert_eq!(page.lines, 1_000_002, "one page of exactly `limit` rows");
    assert!(page.next.is_some(), "more rows follow: X-Next-Cursor says where");
    assert!(
        probes >= 3,
        "the export took {export_took:?}: too short to probe readyz during it"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "readyz took {slowest:?} while the export ran"
    );
    assert!(
        hwm_after.saturating_sub(hwm_before) < 64 * 1024,
        "the daemon's peak memory grew by {} MB during a {} MB export",
        hwm_after.saturating_sub(hwm_before) >> 10,
        page.bytes >> 20
    );

    // Following the cursors walks the whole record, each row once, as CSV too.
    let mut total = 0;
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/history?sensor={SENSOR}&from=-501d&to=now&limit=1000000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let e = export(addr, &path, "text/csv");
        assert_eq!(e.status, 200, "{path}");
        total += e.lines - 1; // the header
        pages += 1;
        match e.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
        assert!(pages < 10, "the cursors never end");
    }
    assert!(
        total >= ROWS as u64,
        "{total} rows over {pages} pages, {ROWS} written (plus the live ones)"
    );
}

#[test]
fn pages_chain_by_their_cursor_and_bad_paging_is_refused() {
    let lab = Lab::start(1000);
    let from = cryowatch::model::format_rfc3339(lab.first);
    let to = cryowatch::model::format_rfc3339(lab.first + 9 * STEP_MS);
    let whole = lab
        .get(&format!("/api/v1/history?sensor={SENSOR}&from={from}&to={to}"))
        .expect("history");
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert!(whole.header("X-Next-Cursor").is_none(), "ten rows fit the default page");
    let whole = whole.json();
    assert_eq!(whole.as_array().map(Vec::len), Some(10));
    let mut walked = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        let r = lab
            .get(&format!(
                "/api/v1/history?sensor={SENSOR}&from={from}&to={to}&limit=3{cursor}"
            ))
            .expect("history");
        assert_eq!(r.status, 200, "{}", r.body);
        walked.extend(r.json().as_array().cloned().unwrap_or_default());
        match r.header("X-Next-Cursor") {
            Some(next) => {
                assert!(
                    r.header("Link")
                        .is_some_and(|l| l.contains(next) && l.ends_with("rel=\"next\"")),
                    "{:?}",
                    r.headers
                );
                cursor = format!("&cursor={next}");
            }
            None => break,
        }
        assert!(page < 4, "three-row pages of ten rows end after four");
    }
    assert_eq!(serde_json::Value::Array(walked), whole);
    for bad in [
        "limit=0",
        "limit=1000001",
        "limit=many",
        "cursor=abc",
        "cursor=1.",
        "sensor=",
    ] {
        let path = if bad.starts_with("sensor") {
            format!("/api/v1/history?{bad}")
        } else {
            format!("/api/v1/history?sensor={SENSOR}&{bad}")
        };
        let r = lab.get(&path).expect("history");
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains(bad.split('=').next().unwrap_or_default())),
            "{path}: {}",
            r.body
        );
    }
}
