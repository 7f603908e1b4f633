//! What the benchmarks share: free ports, child processes killed on drop, a Mosquitto
//! broker that keeps every QoS 1 message, and percentiles.
#![allow(dead_code)]

pub mod modbus_fleet;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mosquitto on `127.0.0.1:port` with an unlimited queue (`max_queued_messages 0`), so
/// nothing is dropped for a slow subscriber.
pub fn start_broker(dir: &Path, port: u16) -> Killed {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"),
    )
    .expect("broker config");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto not found: run `bash tests/run.sh` once, or apt-get install mosquitto mosquitto-clients");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

/// (p50, p99, max) of `v`, sorting it; NaN for an empty sample.
pub fn percentiles(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    (at(50), at(99), v[v.len() - 1])
}

/// VictoriaMetrics on `127.0.0.1:port` with its storage in its own temporary directory;
/// killed before the directory is removed. It takes InfluxDB line protocol at
/// `/api/v2/write`, so it stands in for InfluxDB v2.
pub struct Victoria {
    pub port: u16,
    /// Declared before `dir`: the server dies before its storage is removed.
    _child: Killed,
    dir: tempfile::TempDir,
}

impl Victoria {
    /// Starts a server with empty storage, keeping samples for `retention` (a
    /// VictoriaMetrics duration such as "1d"), and waits until `/health` answers.
    pub fn start(retention: &str) -> Victoria {
        let dir = tempfile::tempdir().expect("victoria-metrics temp dir");
        let log = std::fs::File::create(dir.path().join("victoria.log")).expect("victoria-metrics log");
        let port = free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.path().join("data").display()))
            .arg(format!("-retentionPeriod={retention}"))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("victoria-metrics log"))
            .stderr(log)
            .spawn()
            .expect("victoria-metrics not found: run `bash tests/run.sh` once, or apt-get install victoria-metrics");
        let server = Victoria {
            port,
            _child: Killed(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok((200, body)) = http_get(port, "/health")
                && body.trim_ascii() == b"OK"
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "victoria-metrics did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, for `[influx] url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu(&self) -> Duration {
        std::fs::read_to_string(format!("/proc/{}/stat", self._child.0.id()))
            .ok()
            .and_then(|s| cpu_ticks_of(&s))
            .map_or(Duration::ZERO, ticks_to_duration)
    }

    /// The server's log (errors only, such as lines it could not parse).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("victoria.log")).unwrap_or_default()
    }

    /// How many samples the series matching `selector` hold, from 1970 to 2100, after
    /// flushing what was just written (read through `/api/v1/export`).
    pub fn samples(&self, selector: &str) -> usize {
        let (status, body) = http_get(self.port, "/internal/force_flush").expect("force_flush");
        assert_eq!(status, 200, "force_flush: {}", String::from_utf8_lossy(&body));
        let path = format!(
            "/api/v1/export?match%5B%5D={}&start=0&end=4102444800",
            percent_encode(selector)
        );
        let (status, body) = http_get(self.port, &path).expect("export");
        assert_eq!(status, 200, "export: {}", String::from_utf8_lossy(&body));
        body.split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .map(|line| {
                let json: serde_json::Value = serde_json::from_slice(line).expect("export line is JSON");
                json["timestamps"].as_array().map_or(0, Vec::len)
            })
            .sum()
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET path` on `127.0.0.1:port` with `Connection: close`: status and body, a chunked
/// body decoded.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_get_with(port, path, &[])
}

/// An HTTP/1.1 chunked body: `SIZE-IN-HEX[;ext]\r\nDATA\r\n` repeated, ended by size 0.
fn decode_chunked(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(raw, b"\r\n")?;
        let line = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime, in clock ticks, from a `/proc/.../stat` line.
fn cpu_ticks_of(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // state is field 3; utime is 14
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// The id of this process's thread named `name` (as `/proc/self/task/*/comm` shows it).
pub fn thread_id(name: &str) -> Option<i32> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim_end() == name)
            .then(|| task.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

/// Reads a kernel CPU clock (nanosecond resolution, unlike the 10 ms ticks of `/proc`).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_clock(clock: i32) -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid `struct timespec` (64-bit time_t) for the call to fill.
    let rc = unsafe { clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_clock(_clock: i32) -> Option<Duration> {
    None
}

/// CPU time (user + system) used so far by this process's thread named `name`;
/// `None` when no such thread runs. Read from the thread's kernel CPU clock, or from
/// utime + stime in `/proc/self/task/<tid>/stat` where that clock is not available.
pub fn thread_cpu(name: &str) -> Option<Duration> {
    let tid = thread_id(name)?;
    // The clock id glibc's pthread_getcpuclockid builds: (~tid << 3) | CPUCLOCK_PERTHREAD
    // | CPUCLOCK_SCHED.
    cpu_clock((!tid << 3) | 6).or_else(|| {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        cpu_ticks_of(&stat).map(ticks_to_duration)
    })
}

/// CPU time (user + system) used so far by this whole process.
pub fn process_cpu() -> Duration {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    cpu_clock(CLOCK_PROCESS_CPUTIME_ID).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_ticks_of(&s))
            .map_or(Duration::ZERO, ticks_to_duration)
    })
}

/// CPU time (user + system) used so far by process `pid` (all its threads), from
/// `/proc/PID/stat`; zero when it cannot be read.
pub fn pid_cpu(pid: u32) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| cpu_ticks_of(&s))
        .map_or(Duration::ZERO, ticks_to_duration)
}

/// [`http_get`] with extra request headers (such as `("Authorization", "Bearer ...")`).
pub fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Error, Read, Write};
    let bad = |what: &str| Error::other(format!("GET {path}: {what}"));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = find(&raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let body = &raw[end + 4..];
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        decode_chunked(body).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// True when `BENCH_QUICK=1`: every size shrinks so the whole report runs in minutes
/// (figures from such a run are not measurements).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A size from the environment variable `name` (a positive integer), else `full`, or
/// `quick` under `BENCH_QUICK=1`.
pub fn size(name: &str, full: u64, quick_size: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(if quick() { quick_size } else { full })
}

/// A `kB` field (such as `VmRSS` or `VmHWM`) of `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `cryowatch run --config CONFIG` (the binary Cargo builds beside this bench, so in the
/// same profile), its log in `log`, RUST_LOG=warn.
pub fn spawn_daemon(config: &Path, log: &Path) -> Killed {
    let file = std::fs::File::create(log).expect("daemon log");
    let child = Command::new(env!("CARGO_BIN_EXE_cryowatch"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("daemon log"))
        .stderr(file)
        .spawn()
        .expect("start cryowatch run");
    Killed(child)
}

/// Whether a process is still running (not exited, not a zombie).
pub fn alive(child: &mut Killed) -> bool {
    matches!(child.0.try_wait(), Ok(None))
}

/// `[[modbus.device]]` blocks for the fleet at `addr` (`dev-000` = unit 1, ...), one
/// `[[asset]]` of kind `freezer_minus80` per device and `registers` temperature sensors
/// per device (input register N, i16 in 0.1 °C).
/// A daemon polling `devices` × `registers` of the in-bench gateway at `addr` every
/// `poll`, with its store in a fresh temporary directory: the directory, the store's
/// path, the daemon's log and the daemon.
pub fn start_fleet_daemon(
    name: &str,
    addr: std::net::SocketAddr,
    devices: u16,
    registers: u16,
    poll: &str,
) -> (tempfile::TempDir, PathBuf, PathBuf, Killed) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let cfg = dir.path().join("cryowatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nname = \"{name}\"\n[store]\npath = \"{}\"\n{}",
            db.display(),
            fleet_config(addr, devices, registers, poll)
        ),
    )
    .expect("write config");
    let log = dir.path().join("daemon.log");
    let daemon = spawn_daemon(&cfg, &log);
    (dir, db, log, daemon)
}

/// The fleet's devices and sensors. The fleet is one server answering every unit, but it
/// stands for as many separate devices: `max_connections` gives each its own connection.
pub fn fleet_config(addr: std::net::SocketAddr, devices: u16, registers: u16, poll_interval: &str) -> String {
    use std::fmt::Write;
    let mut toml = String::new();
    for d in 0..devices {
        writeln!(
            toml,
            "[[modbus.device]]\nid = \"dev-{d:03}\"\ntransport = \"tcp\"\naddress = \"{addr}\"\nunit = {}\n\
             poll_interval = \"{poll_interval}\"\ntimeout = \"1s\"\nmax_connections = {devices}\n\
             [[asset]]\nid = \"freezer-{d:03}\"\nkind = \"freezer_minus80\"",
            d + 1
        )
        .expect("write");
        for r in 0..registers {
            writeln!(
                toml,
                "[[sensor]]\nid = \"freezer-{d:03}.t{r:02}\"\nasset = \"freezer-{d:03}\"\nquantity = \"temperature\"\nunit = \"degC\"\n\
                 [sensor.modbus]\ndevice = \"dev-{d:03}\"\nregister = \"input\"\naddress = {r}\ntype = \"i16\"\nscale = 0.1"
            )
            .expect("write");
        }
    }
    toml
}
