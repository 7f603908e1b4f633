//! The store's filesystem fills up while readings flow: the daemon must keep running,
//! raise a critical local condition and page it from memory (the outbox is in the full
//! store), and once space is freed store every reading the broker still held for it
//! (QoS 1, not acknowledged), say the store is writable again and record the outage.
//!
//! The store lives on its own small tmpfs. When mounting is not possible (not root), the
//! same fault is made with RLIMIT_FSIZE on the daemon (`prlimit`, SIGXFSZ ignored).

use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::kill::wait_until;
use super::{Feed, api_get, api_section, base_config, email_channel, json_sensor};
use crate::common::mosquitto::Mosquitto;
use crate::common::smtp::SmtpServer;
use crate::common::{Proc, Site, cryowatch_output, free_port};
use crate::outcome::Outcome;

const CLIENT: &str = "cw-fault-disk";
const SENSOR: &str = "dewar-1.temp";
const OUTAGE_SUBJECT: &str = "cannot write its store";
const RECOVERED_SUBJECT: &str = "the store takes writes again";

/// How the disk is made full.
enum Disk {
    /// A tmpfs mounted at `mount`, filled by `filler`.
    Tmpfs { mount: PathBuf, filler: PathBuf },
    /// RLIMIT_FSIZE on the daemon: files may not grow.
    Rlimit,
}

impl Disk {
    fn fill(&self, daemon: &Proc, store: &Path) -> Result<String, String> {
        match self {
            Disk::Tmpfs { filler, .. } => {
                let mut f = std::fs::File::create(filler).map_err(|e| format!("create filler: {e}"))?;
                let chunk = vec![0xA5u8; 256 * 1024];
                let mut written = 0u64;
                loop {
                    match f.write(&chunk) {
                        Ok(0) => break,
                        Ok(n) => written += n as u64,
                        Err(_) => break,
                    }
                }
                let _ = f.sync_all();
                Ok(format!("tmpfs filled ({} MiB filler)", written / (1024 * 1024)))
            }
            Disk::Rlimit => {
                let size = ["", "-wal"]
                    .iter()
                    .filter_map(|s| std::fs::metadata(format!("{}{s}", store.display())).ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0);
                prlimit(daemon.pid(), &size.to_string())?;
                Ok(format!("RLIMIT_FSIZE {size} bytes"))
            }
        }
    }

    fn free(&self, daemon: &Proc) -> Result<(), String> {
        match self {
            Disk::Tmpfs { filler, .. } => std::fs::remove_file(filler).map_err(|e| format!("remove filler: {e}")),
            Disk::Rlimit => prlimit(daemon.pid(), "unlimited"),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Disk::Tmpfs { mount, .. } = self {
            let _ = Command::new("umount").arg("-l").arg(&*mount).status();
        }
    }
}

fn prlimit(pid: u32, size: &str) -> Result<(), String> {
    let out = Command::new("prlimit")
        // Only the soft limit: raising a hard limit again needs CAP_SYS_RESOURCE.
        .args(["--pid", &pid.to_string(), &format!("--fsize={size}:unlimited")])
        .output()
        .map_err(|e| format!("prlimit: {e}"))?;
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| format!("prlimit: {}", String::from_utf8_lossy(&out.stderr)))
}

fn config(broker: &Mosquitto, smtp: &SmtpServer, api: std::net::SocketAddr) -> String {
    let mut text = base_config(broker, CLIENT).replace("{dir}/cryowatch.db", "{dir}/vol/cryowatch.db");
    text.push_str(&json_sensor(SENSOR, "lab/dewar-1/temp", true));
    text.push_str(&api_section(api));
    text.push_str(
        r#"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[contact]]
id = "bob"
name = "Bob"
email = "bob@example.org"

[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
[[escalation.step]]
after = "5m"
notify = ["contact:bob"]

[[route]]
severity = "critical"
escalation = "oncall"
"#,
    );
    text.push_str(&email_channel(smtp.port));
    text
}

/// The watchdog period given to the daemon.
const WATCHDOG: Duration = Duration::from_secs(4);

/// A notify socket like systemd's, recording every datagram with its arrival time.
struct Notify {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(Instant, String)>>>,
}

impl Notify {
    fn bind(path: &Path) -> Notify {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("notify socket timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        got.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
                    }
                }
                got
            })
        };
        Notify {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<(Instant, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

fn subjects(smtp: &SmtpServer, needle: &str) -> Vec<String> {
    smtp.messages()
        .iter()
        .filter_map(|m| m.header("Subject").map(str::to_string))
        .filter(|s| s.contains(needle))
        .collect()
}

pub fn run() -> Outcome {
    let mut out = Outcome::new("disk full under the store");
    let broker = Mosquitto::start();
    let peers = tempfile::tempdir().expect("peer dir");
    let smtp = SmtpServer::start(peers.path());
    let api: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("api address");
    let site = Site::new(&config(&broker, &smtp, api));
    let vol = site.path().join("vol");
    std::fs::create_dir_all(&vol).expect("create the store's directory");
    let store = vol.join("cryowatch.db");
    // CRYOWATCH_FAULT_DISK=rlimit tries the fallback where mounting would work.
    let forced = std::env::var("CRYOWATCH_FAULT_DISK").is_ok_and(|v| v == "rlimit");
    let mounted = Command::new(if forced { "false" } else { "mount" })
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&vol)
        .output();
    let (disk, how) = match mounted {
        Ok(o) if o.status.success() => (
            Disk::Tmpfs {
                mount: vol.clone(),
                filler: vol.join("filler"),
            },
            "48 MiB tmpfs".to_string(),
        ),
        other => (
            Disk::Rlimit,
            format!(
                "tmpfs mount failed ({}); RLIMIT_FSIZE fallback",
                match other {
                    _ if forced => "not tried: CRYOWATCH_FAULT_DISK=rlimit".to_string(),
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                }
            ),
        ),
    };
    // Under a systemd of our own: a notify socket and a watchdog. A daemon that stopped
    // pinging while the disk is full would be restarted by systemd again and again.
    let notify = Notify::bind(&site.path().join("notify.sock"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(site.path().join("daemon.log"))
        .expect("open daemon log");
    let log2 = log.try_clone().expect("clone log handle");
    // An ignored SIGXFSZ stays ignored across exec: with the RLIMIT_FSIZE fallback,
    // writes past the limit fail with EFBIG instead of killing the daemon. systemd names
    // the watched process in WATCHDOG_PID: `exec` keeps the shell's pid.
    let mut daemon = Proc::spawn(
        "cryowatch run",
        Command::new("sh")
            .args(["-c", "trap '' XFSZ; WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_cryowatch"))
            .args(["run", "-c", &site.config_str()])
            .env("NOTIFY_SOCKET", notify.path.as_os_str())
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env("RUST_LOG", "info")
            .stdout(log)
            .stderr(log2),
    );
    super::wait_subscribed(&site, &broker, CLIENT);
    let feed = Feed::start(
        &broker,
        "cw-fault-disk-feed",
        Duration::from_millis(20),
        super::readings("lab/dewar-1/temp", |i| -190.0 + (i % 10) as f64 * 0.1),
    );
    std::thread::sleep(Duration::from_secs(2));

    let filled = match disk.fill(&daemon, &store) {
        Ok(how) => how,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let filled_at = Instant::now();
    let paged = wait_until(Duration::from_secs(40), || !subjects(&smtp, OUTAGE_SUBJECT).is_empty());
    let page_after = filled_at.elapsed();
    // While it lasts: readiness, `status`, the daemon alive.
    let ready = api_get(api, "/api/v1/readyz");
    let status = cryowatch_output(&["status", "-c", &site.config_str()]);
    let status_says = String::from_utf8_lossy(&status.stderr)
        .lines()
        .find(|l| l.contains("cannot write"))
        .map(str::to_string);
    let mut crashes = u64::from(!daemon.running());
    std::thread::sleep(Duration::from_secs(2));

    let acked_before_free = feed.acked();
    let outage_window = (filled_at, Instant::now());
    if let Err(e) = disk.free(&daemon) {
        out.error = Some(e);
        return out;
    }
    let freed_at = Instant::now();
    // Recovered: writes commit again and everything the broker acknowledged before the
    // space came back is stored.
    let caught_up = wait_until(Duration::from_secs(40), || {
        super::stored_times(&site, SENSOR).len() as u64 >= acked_before_free
    });
    let recovery = freed_at.elapsed();
    let told = wait_until(Duration::from_secs(30), || {
        !subjects(&smtp, RECOVERED_SUBJECT).is_empty()
    });
    let (times, _) = feed.stop();
    let drained = super::wait_stored(&site, SENSOR, &times, Duration::from_secs(30));
    crashes += u64::from(!daemon.running());
    let failures = api_get(api, "/metrics")
        .and_then(|r| {
            r.body
                .lines()
                .find(|l| l.starts_with("cryowatch_store_write_failures_total"))
                .and_then(|l| l.split_whitespace().last().map(str::to_string))
        })
        .unwrap_or_else(|| "?".into());
    std::thread::sleep(Duration::from_secs(1));
    let code = super::stop_daemon(daemon);

    let (stored, dup) = super::tally(&times, &super::stored_times(&site, SENSOR));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.recovery = caught_up.then_some(recovery);

    // Pages: one "cannot write" and one "writable again" to alice (the first step of the
    // escalation a critical alarm follows), nobody else.
    let outage = subjects(&smtp, OUTAGE_SUBJECT);
    let again = subjects(&smtp, RECOVERED_SUBJECT);
    let to_alice = smtp
        .messages()
        .iter()
        .filter(|m| m.rcpt_tos.iter().all(|r| r == "alice@example.org"))
        .count();
    out.pages_expected = Some(2);
    out.pages_sent = Some(u64::from(!outage.is_empty()) + u64::from(!again.is_empty()));
    out.pages_missed = Some(u64::from(outage.is_empty()) + u64::from(again.is_empty()));
    out.pages_duplicated = Some(outage.len().saturating_sub(1) as u64 + again.len().saturating_sub(1) as u64);

    // systemd's view of the outage: the longest silence of the watchdog, and the status.
    let messages = notify.stop();
    let pings: Vec<Instant> = messages
        .iter()
        .filter(|(t, m)| m.contains("WATCHDOG=1") && *t >= outage_window.0 && *t <= outage_window.1)
        .map(|(t, _)| *t)
        .collect();
    let longest_silence = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(pings.first().map(|p| *p - outage_window.0))
        .chain(pings.last().map(|p| outage_window.1 - *p))
        .max()
        .unwrap_or(outage_window.1 - outage_window.0);
    let systemd_status = messages
        .iter()
        .filter_map(|(_, m)| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
        .find(|s| s.contains("cannot write"))
        .map(str::to_string);

    let rows = super::outbox_at(&store);
    let recorded: Vec<String> = rows
        .iter()
        .filter(|r| r.kind.starts_with("store_"))
        .map(|r| format!("{}:{}:{}", r.kind, r.contact, r.state))
        .collect();
    let audited = super::db_at(&store)
        .map(|c| super::audit(&c, "store.write_failed").len())
        .unwrap_or(0);
    let ready_text = ready
        .as_ref()
        .map(|r| format!("{} {}", r.status, r.body.replace('"', "")))
        .unwrap_or_else(|| "no answer".into());
    let errors_logged = super::log_lines(&site, " ERROR ");
    out.detail = format!(
        "{how}, {filled}; {errors_logged} error lines logged in all; watchdog ({} s) pinged {} times during the outage, longest silence {:.1} s; systemd status {:?}; paged from memory {:.1} s after the disk filled; during it readyz {ready_text}, status {:?}; {failures} failed commits; outbox {recorded:?}, audit store.write_failed ×{audited}; recovery = space freed → backlog stored",
        WATCHDOG.as_secs(),
        pings.len(),
        longest_silence.as_secs_f64(),
        systemd_status.as_deref().map(|s| s.split(':').next().unwrap_or(s)).unwrap_or("not told"),
        page_after.as_secs_f64(),
        status_says.as_deref().unwrap_or("said nothing"),
    )
    .replace(&store.display().to_string(), "<store>");
    let mut problems = Vec::new();
    if !paged {
        problems.push("no outage page within 40 s".to_string());
    }
    if ready.as_ref().is_none_or(|r| r.status != 503) {
        problems.push(format!("readyz during the outage: {ready_text}"));
    }
    if longest_silence >= WATCHDOG {
        problems.push(format!(
            "the watchdog went {:.1} s without a ping: systemd would restart the daemon",
            longest_silence.as_secs_f64()
        ));
    }
    if systemd_status.is_none() {
        problems.push("systemd was not told of the outage (STATUS=)".into());
    }
    if status_says.is_none() {
        problems.push(format!(
            "status showed no condition: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        ));
    }
    if !caught_up || drained.is_none() {
        problems.push("readings not all stored after the space came back".into());
    }
    if !told {
        problems.push("no \"writable again\" message".into());
    }
    if to_alice != outage.len() + again.len() {
        problems.push("a store page went to someone else than the first step's contact".into());
    }
    if audited != 1 || !recorded.iter().any(|r| r.starts_with("store_failure:alice:sent")) {
        problems.push(format!("outage not recorded: outbox {recorded:?}, audit ×{audited}"));
    }
    super::conclude(&mut out, problems, code, &site);
    drop(disk);
    out
}
