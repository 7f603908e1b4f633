//! A real VictoriaMetrics 1.79 for one test: its own loopback port and storage directory
//! under a temporary directory, killed when dropped. It speaks InfluxDB line protocol
//! (`POST /api/v2/write?org=..&bucket=..&precision=ns`), so it stands in for InfluxDB v2
//! when testing the daemon's sink; tests read back what landed with [`Victoria::export`].
//!
//! How the data model differs from InfluxDB (measured against 1.79.5 with the flags
//! below; `tests/victoria_fixture.rs` checks each point):
//!
//! - Metric names are `measurement_field` (`cryo_reading_value`), tags become labels,
//!   and string fields are stored as the number 0.
//! - Writes answer 204 even for malformed lines, which are only logged ("cannot unmarshal
//!   InfluxDB line ...; skipping it"): check what landed, not the status code.
//! - The same point written twice (same series, timestamp and value) is exported twice:
//!   nothing is deduplicated, also after a restart and a forced merge. A test can
//!   therefore catch a sink that writes a reading again.
//! - The same series and timestamp written with another value keeps both samples, in
//!   write order, also after a forced merge; in InfluxDB the second write would replace
//!   the first.
//! - Nanosecond timestamps are truncated to milliseconds, never rounded:
//!   `…000999999` ns is stored as `…000` ms. A line without a timestamp gets the
//!   server's clock.
//! - Points three days in the future and points before 1970 are dropped without a log
//!   line (one day ahead is kept).
//! - Started with `-httpAuth.username=U -httpAuth.password=P` ([`Victoria::start_with`]),
//!   every endpoint but `/health` answers 401 without those Basic credentials, also to
//!   a client sending an InfluxDB token; the fixture's own requests carry them.
//! - `/api/v1/export` without `end` stops at the server's "now", so a point stamped a
//!   few milliseconds ahead would be missed; [`Victoria::export`] passes an `end` far in
//!   the future and `start=0` (the default start already reaches back to 1970).
//! - Samples just written may wait in memory for a moment; `GET /internal/force_flush`,
//!   which [`Victoria::export`] calls first, makes them visible at once.
//!
//! HTTP goes through a plain `TcpStream` with `Connection: close`; export responses of
//! more than a few kilobytes come back with `Transfer-Encoding: chunked`, decoded by
//! the shared test client's `decode_chunked`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Proc, free_port, wait_for};

/// Export `end`: 2100-01-01, in seconds.
const FAR_FUTURE: &str = "4102444800";

/// A running `victoria-metrics` on `127.0.0.1:port`.
pub struct Victoria {
    pub port: u16,
    /// Extra command-line flags (e.g. `-httpAuth.username=…`).
    args: Vec<String>,
    /// Declared before `dir`: the server dies before its directory is removed.
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

/// One time series as `/api/v1/export` returns it, oldest sample first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Every label, the metric name included as `__name__`.
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
    /// Milliseconds since the Unix epoch, one per value.
    pub timestamps: Vec<i64>,
}

impl Series {
    /// The label `name`, or "" when the series has none.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    /// `(timestamp_ms, value)` pairs, oldest first.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.timestamps
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .collect()
    }
}

impl Victoria {
    /// Starts a server with empty storage and waits until `/health` answers OK.
    pub fn start() -> Victoria {
        Victoria::start_with(&[])
    }

    /// Starts a server with extra flags, e.g. `-httpAuth.username=u` so that it refuses
    /// writes without those credentials (401).
    pub fn start_with(args: &[&str]) -> Victoria {
        // Another test may take the free port between our probe and the server's bind:
        // try a few ports before giving up.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("victoria-metrics temp dir");
            let mut server = Victoria {
                port: free_port(),
                args: args.iter().map(|a| a.to_string()).collect(),
                proc: None,
                dir,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("victoria-metrics did not start on any of 5 free ports");
    }

    /// Starts the process and waits until it is healthy; false when it exited instead
    /// (port taken).
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("victoria.log"))
            .expect("open victoria-metrics log");
        let log2 = log.try_clone().expect("clone victoria-metrics log handle");
        let mut proc = Proc::spawn(
            "victoria-metrics",
            Command::new("victoria-metrics")
                .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
                .arg(format!("-storageDataPath={}", self.dir.path().join("data").display()))
                // Readings may carry old timestamps; keep everything since 1926.
                .arg("-retentionPeriod=100y")
                // Queries see samples at once instead of 30 s later.
                .arg("-search.latencyOffset=0s")
                .arg("-search.disableCache")
                // Startup chatter off; rejected lines are logged as errors and stay.
                .arg("-loggerLevel=ERROR")
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2),
        );
        let addr = self.addr();
        let up = wait_for(Duration::from_secs(15), "victoria-metrics to answer /health", || {
            if !proc.running() {
                return Some(false);
            }
            match request(addr, None, "GET", "/health", None) {
                Ok((200, body)) if body.trim() == "OK" => Some(true),
                _ => None,
            }
        });
        if up {
            self.proc = Some(proc);
        }
        up
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `user:password` from the `-httpAuth.*` flags: with them, every endpoint but
    /// `/health` wants Basic credentials, and the fixture's own requests send them.
    fn basic_auth(&self) -> Option<String> {
        let flag = |name: &str| {
            let prefix = format!("-httpAuth.{name}=");
            self.args
                .iter()
                .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
        };
        flag("username").map(|user| format!("{user}:{}", flag("password").unwrap_or_default()))
    }

    /// `http://127.0.0.1:PORT`, for the daemon's `[influx] url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's own log: errors only, such as rejected lines (for assertion
    /// messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("victoria.log")).unwrap_or_default()
    }

    /// Whether the server process is running.
    pub fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.running())
    }

    /// Stops the server (SIGTERM, which flushes its data; SIGKILL after 10 s) and waits
    /// for it to exit. The port and the storage stay for [`Victoria::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            if proc.running() {
                proc.signal("TERM");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Dropping the process kills it if it is still there, and reaps it.
            drop(proc);
        }
    }

    /// Replaces the extra flags used by the next [`Victoria::start_again`].
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts a stopped server again on the same port, with the same storage.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "victoria-metrics is already running");
        // The port was ours a moment ago; only a slow release of the socket can delay
        // the bind, so retry for a while.
        wait_for(
            Duration::from_secs(15),
            "victoria-metrics to start again on its port",
            || self.spawn().then_some(()),
        );
    }

    /// `GET path_and_query`: status and body.
    pub fn get(&self, path_and_query: &str) -> (u16, String) {
        request(self.addr(), self.basic_auth().as_deref(), "GET", path_and_query, None)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}; log:\n{}", self.log()))
    }

    /// `POST path_and_query` with `body` as `text/plain` (line protocol): status and
    /// body. VictoriaMetrics answers 204 even when it skipped malformed lines.
    pub fn post(&self, path_and_query: &str, body: &str) -> (u16, String) {
        request(
            self.addr(),
            self.basic_auth().as_deref(),
            "POST",
            path_and_query,
            Some(("text/plain; charset=utf-8", body)),
        )
        .unwrap_or_else(|e| panic!("POST {path_and_query}: {e}; log:\n{}", self.log()))
    }

    /// Every series matching `selector` (PromQL series selector such as
    /// `{__name__=~"cryo_.*"}` or `cryo_reading_value{sensor="dewar-1.temp"}`), with all
    /// samples from 1970 to 2100, after flushing what was just written. Sorted by
    /// labels; lines the server splits for one series are joined.
    pub fn export(&self, selector: &str) -> Vec<Series> {
        let (status, body) = self.get("/internal/force_flush");
        assert_eq!(status, 200, "force_flush: {body}");
        let form = format!("match[]={}&start=0&end={FAR_FUTURE}", form_encode(selector));
        let (status, body) = request(
            self.addr(),
            self.basic_auth().as_deref(),
            "POST",
            "/api/v1/export",
            Some(("application/x-www-form-urlencoded", &form)),
        )
        .unwrap_or_else(|e| panic!("export {selector}: {e}; log:\n{}", self.log()));
        assert_eq!(status, 200, "export {selector}: {body}");

        let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let (labels, points) = parse_export_line(line);
            by_labels.entry(labels).or_default().extend(points);
        }
        by_labels
            .into_iter()
            .map(|(labels, mut points)| {
                // Stable: samples with equal timestamps keep their order.
                points.sort_by_key(|&(t, _)| t);
                Series {
                    labels,
                    timestamps: points.iter().map(|&(t, _)| t).collect(),
                    values: points.iter().map(|&(_, v)| v).collect(),
                }
            })
            .collect()
    }

    /// How many samples the metric `metric` holds, over all its series.
    pub fn samples(&self, metric: &str) -> usize {
        self.export(&format!("{{__name__=\"{metric}\"}}"))
            .iter()
            .map(|s| s.values.len())
            .sum()
    }
}

/// One export line: `{"metric":{..},"values":[..],"timestamps":[..]}`.
fn parse_export_line(line: &str) -> (BTreeMap<String, String>, Vec<(i64, f64)>) {
    let json: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {line:?}: {e}"));
    let labels = json["metric"]
        .as_object()
        .unwrap_or_else(|| panic!("export line without metric: {line}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let values = json["values"]
        .as_array()
        .unwrap_or_else(|| panic!("export line without values: {line}"));
    let timestamps = json["timestamps"]
        .as_array()
        .unwrap_or_else(|| panic!("export line without timestamps: {line}"));
    assert_eq!(values.len(), timestamps.len(), "export line {line}");
    let points = timestamps
        .iter()
        .zip(values)
        .map(|(t, v)| {
            let t = t.as_i64().unwrap_or_else(|| panic!("timestamp {t} in {line}"));
            // NaN and infinities come as strings.
            let v = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or_else(|| panic!("value {v} in {line}"));
            (t, v)
        })
        .collect();
    (labels, points)
}

/// Percent-encodes everything but unreserved characters, for a form value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.1 request with `Connection: close` and, given `user:password`, Basic
/// authentication; returns status and body (chunked transfer encoding decoded).
fn request(
    addr: SocketAddr,
    basic_auth: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    use base64::Engine;
    let auth = basic_auth.map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c)));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if let Some((content_type, _)) = body {
        headers.push(("Content-Type", content_type));
    }
    let r = super::http::call(addr, method, path_and_query, &headers, body.map(|(_, b)| b.as_bytes()))?;
    Ok((r.status, r.body))
}
