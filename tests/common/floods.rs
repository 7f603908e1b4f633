//! Floods against the real daemon's HTTP API, shared by `tests/api_floods.rs` (which
//! asserts) and the fault suite (which reports a row each):
//!
//! - [`sign_in_flood`]: rounds of 64 parallel wrong-password sign-ins for one account.
//! - [`idle_connections`]: 300 connections that each send half a request header and
//!   then nothing, under a small open-file limit.
//!
//! Each returns what it measured, and `Err` naming what broke a requirement.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::http::{Response, call};
use super::smtp::SmtpServer;
use super::{Proc, Site, cryowatch, cryowatch_output, free_port, wait_for};

const VIEWER: &str = "viewer-token-0123456789";
const PASSWORD: &str = "correct horse battery";
/// Parallel sign-ins in one round of the flood.
pub const PARALLEL: usize = 64;
/// Rounds of the flood.
pub const ROUNDS: usize = 4;
/// Peak resident memory the daemon may reach under the flood.
pub const RSS_BOUND_KIB: u64 = 200 * 1024;
/// Half-sent requests of the idle-connection flood.
pub const IDLE_CONNECTIONS: usize = 300;
/// `[api].max_connections` in that scenario.
pub const MAX_CONNECTIONS: usize = 64;
/// The daemon's open-file limit in that scenario (soft and hard).
pub const OPEN_FILES: u64 = 256;
/// The server's header timeout (`cryowatch::api::server::HEADER_TIMEOUT`).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon with the API, one user (`ana`), and warnings paged to alice by email.
/// `extra` is appended to the configuration; `prefix` runs the daemon under a command
/// (e.g. `prlimit`).
pub struct Lab {
    pub smtp: SmtpServer,
    pub site: Site,
    pub daemon: Option<Proc>,
    pub addr: SocketAddr,
}

impl Lab {
    pub fn start(api_extra: &str, extra: &str, prefix: &[&str]) -> Lab {
        let dir = tempfile::tempdir().expect("dir");
        let smtp = SmtpServer::start(dir.path());
        let port = free_port();
        let site = Site::new(&format!(
            r#"[site]
name = "flood lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
flush_interval = "50ms"
[api]
listen = "127.0.0.1:{port}"
{api_extra}
[[api.token]]
id = "wall"
role = "viewer"
token = "{VIEWER}"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[route]]
escalation = "oncall"
severity = "warning"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
{extra}"#,
            smtp = smtp.port
        ));
        std::mem::forget(dir); // the SMTP server's files live as long as the lab
        let out = cryowatch_output(&["check", "-c", &site.config_str()]);
        assert!(
            out.status.success(),
            "cryowatch check refused the lab's config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut add = cryowatch()
            .args(["user", "add", "-c", &site.config_str(), "ana", "--role", "operator"])
            .env_remove("CRYOWATCH_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cryowatch user add");
        if let Some(mut stdin) = add.stdin.take() {
            stdin.write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
        }
        let added = add.wait_with_output().expect("user add");
        assert!(
            added.status.success(),
            "cryowatch user add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let log = std::fs::File::create(site.path().join("daemon.log")).expect("log");
        let log2 = log.try_clone().expect("log");
        let mut cmd = if prefix.is_empty() {
            cryowatch()
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(env_bin());
            c
        };
        cmd.args(["run", "-c", &site.config_str()])
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        let daemon = Proc::spawn("cryowatch run", &mut cmd);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let lab = Lab {
            smtp,
            site,
            daemon: Some(daemon),
            addr,
        };
        wait_for(Duration::from_secs(20), "the API to answer", || {
            lab.get("/api/v1/healthz").ok().filter(|r| r.status == 200)
        });
        lab
    }

    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().map(Proc::pid).unwrap_or(0)
    }

    pub fn get(&self, path: &str) -> Result<Response, String> {
        call(
            self.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {VIEWER}"))],
            None,
        )
    }

    /// A field of /proc/PID/status, in kB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The daemon's open descriptors.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    pub fn audit_log(&self) -> String {
        let out = cryowatch_output(&["audit", "log", "-c", &self.site.config_str()]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the daemon; `Err` when it had died or does not exit 0.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut d) = self.daemon.take() else { return Ok(()) };
        if !d.running() {
            return Err(format!("the daemon died; log:\n{}", self.site.daemon_log()));
        }
        d.signal("TERM");
        match d.wait_exit(Duration::from_secs(30)) {
            Some(0) => Ok(()),
            code => Err(format!("the daemon exited with {code:?} on SIGTERM")),
        }
    }
}

/// The binary the labs run (the one built for this test run).
fn env_bin() -> String {
    cryowatch().get_program().to_string_lossy().into_owned()
}

/// The sign-in form's double-submit token: (cookie header, token).
fn form_token(addr: SocketAddr) -> Result<(String, String), String> {
    let r = call(addr, "GET", "/login", &[], None)?;
    let cookie = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.strip_prefix("cw_login="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| format!("GET /login set no cw_login cookie: {:?}", r.headers))?
        .to_string();
    Ok((format!("cw_login={cookie}"), cookie))
}

fn sign_in(addr: SocketAddr, cookie: &str, token: &str, user: &str, password: &str) -> Result<Response, String> {
    let body = format!("user={user}&password={password}&login_token={token}&next=%2F");
    call(
        addr,
        "POST",
        "/login",
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )
}

/// What the sign-in flood measured.
#[derive(Debug, Default)]
pub struct SignInFlood {
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
    pub rss_after_kib: u64,
    pub attempts: usize,
    pub unauthorized: usize,
    pub pushed_back: usize,
    pub other: Vec<String>,
    pub locked: bool,
    pub audited: usize,
    pub paged_after: Option<Duration>,
}

impl SignInFlood {
    pub fn summary(&self) -> String {
        format!(
            "peak RSS {} MB (from {} MB; {} MB after); {} sign-ins: {} refused 401, {} pushed back 429/503; locked: {}; {} audit entries; security page {}",
            self.peak_rss_kib / 1024,
            self.rss_before_kib / 1024,
            self.rss_after_kib / 1024,
            self.attempts,
            self.unauthorized,
            self.pushed_back,
            if self.locked { "yes" } else { "no" },
            self.audited,
            self.paged_after
                .map_or_else(|| "missing".to_string(), |d| format!("after {:.1} s", d.as_secs_f64()))
        )
    }
}

/// Rounds of [`PARALLEL`] wrong-password sign-ins for `ana`, then checks: peak RSS
/// under [`RSS_BOUND_KIB`], some pushed back with 429/503 and `Retry-After`, `ana`
/// locked (even the right password is refused, without saying whether it was right),
/// the failures, throttles and lockout audited, and the security warning paged.
pub fn sign_in_flood() -> (SignInFlood, Result<(), String>) {
    let mut lab = Lab::start("", "", &[]);
    let mut m = SignInFlood {
        rss_before_kib: lab.status_kib("VmRSS"),
        ..SignInFlood::default()
    };
    let result = run_sign_in_flood(&lab, &mut m);
    eprintln!("sign-in flood: {}", m.summary());
    let stopped = lab.stop();
    (m, result.and(stopped))
}

fn run_sign_in_flood(lab: &Lab, m: &mut SignInFlood) -> Result<(), String> {
    let (cookie, token) = form_token(lab.addr)?;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let answers: Vec<Result<Response, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..PARALLEL)
                .map(|i| {
                    let (cookie, token) = (&cookie, &token);
                    s.spawn(move || sign_in(lab.addr, cookie, token, "ana", &format!("wrong-{round}-{i}")))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("client thread panicked".into())))
                .collect()
        });
        for a in answers {
            m.attempts += 1;
            match a {
                Ok(r) if r.status == 401 => m.unauthorized += 1,
                Ok(r) if (r.status == 429 || r.status == 503) && r.header("retry-after").is_some() => {
                    m.pushed_back += 1
                }
                Ok(r) => m
                    .other
                    .push(format!("{} {}", r.status, r.header("retry-after").unwrap_or("-"))),
                Err(e) => m.other.push(e),
            }
        }
        m.peak_rss_kib = m.peak_rss_kib.max(lab.status_kib("VmHWM"));
    }
    m.peak_rss_kib = m.peak_rss_kib.max(lab.status_kib("VmHWM"));
    m.rss_after_kib = lab.status_kib("VmRSS");
    // The right password now: the account is locked, and the answer says only that.
    let right = sign_in(lab.addr, &cookie, &token, "ana", PASSWORD)?;
    m.locked = right.status == 429 && right.body.contains("locked") && right.header("location").is_none();
    let page = wait_page(lab, Duration::from_secs(30));
    m.paged_after = page.as_ref().map(|_| started.elapsed());
    let log = lab.audit_log();
    m.audited = [
        "web.login_failed",
        "web.login_throttled",
        "web.login_locked",
        "web.account_locked",
    ]
    .iter()
    .map(|k| log.matches(k).count())
    .sum();
    let mut problems = Vec::new();
    if m.peak_rss_kib > RSS_BOUND_KIB {
        problems.push(format!(
            "peak RSS {} MB exceeds {} MB",
            m.peak_rss_kib / 1024,
            RSS_BOUND_KIB / 1024
        ));
    }
    if m.pushed_back == 0 {
        problems.push("no sign-in was pushed back with 429/503 and Retry-After".to_string());
    }
    if !m.other.is_empty() {
        problems.push(format!("unexpected answers: {:?}", &m.other[..m.other.len().min(5)]));
    }
    if !m.locked {
        problems.push(format!(
            "the right password after the flood was not refused as locked: {} {}",
            right.status,
            right.body.chars().take(300).collect::<String>()
        ));
    }
    for kind in [
        "web.login_failed",
        "web.login_throttled",
        "web.account_locked",
        "web.login_locked",
    ] {
        if !log.contains(kind) {
            problems.push(format!("no {kind} in `cryowatch audit log`"));
        }
    }
    if page.is_none() {
        problems.push("no page for the security warning cryowatch.security:sign-ins within 30 s".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The first page about the sign-in warning.
fn wait_page(lab: &Lab, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(m) = lab
            .smtp
            .messages()
            .into_iter()
            .find(|m| m.body.contains("cryowatch.security"))
        {
            return Some(m.body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// What the idle-connection flood measured.
#[derive(Debug, Default)]
pub struct IdleFlood {
    pub files_before: usize,
    pub files_peak: usize,
    /// Of the half-sent requests, how many the server had closed by the header timeout
    /// plus a margin.
    pub closed: usize,
    pub ready_after: Option<Duration>,
    /// The last answer to `/api/v1/status` before it answered 200.
    pub last_answer: String,
    pub paged_during: bool,
}

impl IdleFlood {
    pub fn summary(&self) -> String {
        format!(
            "{} half-sent requests: {} closed by the server within {} s; daemon descriptors {} -> at most {} (max_connections {}, open-file limit {}); /api/v1/status {}; page during the flood: {}",
            IDLE_CONNECTIONS,
            self.closed,
            HEADER_TIMEOUT.as_secs() + 3,
            self.files_before,
            self.files_peak,
            MAX_CONNECTIONS,
            OPEN_FILES,
            self.ready_after.map_or_else(
                || format!("never answered 200 (last: {})", self.last_answer),
                |d| format!("answered 200 after {:.1} s", d.as_secs_f64())
            ),
            if self.paged_during { "yes" } else { "no" }
        )
    }
}

/// [`IDLE_CONNECTIONS`] connections each sending half a request header, against a
/// daemon limited to [`OPEN_FILES`] descriptors with `max_connections` [`MAX_CONNECTIONS`];
/// a sensor with no device goes stale during the flood and must be paged. Checks: every
/// half-sent request is closed by the server within the header timeout (plus 3 s), the
/// daemon's descriptors stay under `max_connections` plus its own, the API answers
/// within the header timeout (`/api/v1/status`), and the page goes out.
pub fn idle_connections() -> (IdleFlood, Result<(), String>) {
    let dead = free_port();
    let mut lab = Lab::start(
        &format!("max_connections = {MAX_CONNECTIONS}"),
        &format!(
            r#"[[modbus.device]]
id = "gone"
transport = "tcp"
address = "127.0.0.1:{dead}"
unit = 1
poll_interval = "250ms"
timeout = "200ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "6s"
[sensor.modbus]
device = "gone"
register = "input"
address = 0
type = "f32"
[[rule]]
id = "dewar-silent"
sensor = "dewar-1.temp"
kind = "stale"
severity = "warning"
"#
        ),
        &["prlimit", &format!("--nofile={OPEN_FILES}:{OPEN_FILES}"), "--"],
    );
    let mut m = IdleFlood {
        files_before: lab.open_files(),
        ..IdleFlood::default()
    };
    let result = run_idle_connections(&lab, &mut m);
    let stopped = lab.stop();
    (m, result.and(stopped))
}

fn run_idle_connections(lab: &Lab, m: &mut IdleFlood) -> Result<(), String> {
    let started = Instant::now();
    let mut socks = Vec::new();
    let mut refused = 0;
    for _ in 0..IDLE_CONNECTIONS {
        match TcpStream::connect_timeout(&lab.addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                socks.push(s);
            }
            Err(_) => refused += 1,
        }
        m.files_peak = m.files_peak.max(lab.open_files());
    }
    // While they hang: readyz, descriptors, the page.
    while started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(3) {
        m.files_peak = m.files_peak.max(lab.open_files());
        if m.ready_after.is_none() {
            match lab.get("/api/v1/status") {
                Ok(r) if r.status == 200 => m.ready_after = Some(started.elapsed()),
                Ok(r) => m.last_answer = format!("{} {}", r.status, r.body.trim()),
                Err(e) => m.last_answer = e,
            }
        }
        if !m.paged_during && lab.smtp.messages().iter().any(|msg| msg.body.contains("dewar-silent")) {
            m.paged_during = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for s in &mut socks {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 512];
        // Closed by the server: EOF or reset, after any 503 it wrote.
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                    break false;
                }
                Err(_) => break true,
            }
        };
        m.closed += usize::from(closed);
    }
    let closed_all = m.closed + refused >= IDLE_CONNECTIONS;
    m.closed += refused;
    drop(socks);
    let mut problems = Vec::new();
    if !closed_all {
        problems.push(format!(
            "{} of {IDLE_CONNECTIONS} half-sent requests were still open {} s later",
            IDLE_CONNECTIONS - m.closed,
            HEADER_TIMEOUT.as_secs() + 3
        ));
    }
    let bound = m.files_before + MAX_CONNECTIONS + 16;
    if m.files_peak > bound {
        problems.push(format!(
            "the daemon held {} descriptors (more than {bound}: its own {} + max_connections {MAX_CONNECTIONS} + 16)",
            m.files_peak, m.files_before
        ));
    }
    if m.ready_after.is_none() {
        problems.push(format!(
            "/api/v1/status did not answer 200 during the flood; daemon log: {}",
            lab.site
                .daemon_log()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(8)
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    if !m.paged_during {
        problems.push(format!(
            "the stale warning was not paged during the flood; daemon log tail: {}",
            lab.site
                .daemon_log()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
