//! Under systemd: the unit file passes `systemd-analyze verify` and carries its
//! hardening; the daemon, started with a notify socket of our own, says READY=1 and
//! pings the watchdog; when the store is stalled (another process holds SQLite's write
//! lock) the pings stop, and they resume when it is released.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Site, tests_dir};

fn unit() -> String {
    std::fs::read_to_string(tests_dir().join("../systemd/cryowatch.service")).expect("unit file")
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    let text = unit();
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "Restart=always",
        "User=cryowatch",
        "StateDirectory=cryowatch",
        "ConfigurationDirectory=cryowatch",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "SupplementaryGroups=dialout",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw",
        "ExecReload=/usr/bin/cryowatch check -c /etc/cryowatch/cryowatch.toml",
        "ExecReload=/bin/sh -c 'kill -HUP \"$MAINPID\"'",
        "SystemCallFilter=@system-service",
        "SyslogLevelPrefix=yes",
    ] {
        assert!(has(line), "the unit lacks {line:?}");
    }
    assert!(text.lines().any(|l| l.starts_with("WatchdogSec=")), "no WatchdogSec");
    // systemd-analyze verify, where systemd is installed: ExecStart must point at a real
    // binary, so the copy points at the one just built.
    let Ok(probe) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed here: verify skipped, keys checked above");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("cryowatch.service");
    std::fs::write(
        &copy,
        text.replace("/usr/bin/cryowatch", env!("CARGO_BIN_EXE_cryowatch")),
    )
    .expect("copy");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<_> = err.lines().filter(|l| l.contains("cryowatch.service")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

/// Messages sent to our notify socket within `window`.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

#[test]
fn ready_and_watchdog_pings_stop_while_the_store_is_stalled() {
    let site = Site::new(
        "[site]\nname = \"notify\"\n[store]\npath = \"{dir}/cryowatch.db\"\n[[asset]]\nid = \"d\"\nkind = \"ln2_dewar\"\n",
    );
    let sock_path = site.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let log = std::fs::File::create(site.path().join("daemon.log")).expect("log");
    let mut daemon = common::Proc::spawn(
        "cryowatch run",
        // systemd names the watched process in WATCHDOG_PID: `exec` keeps the shell's pid.
        std::process::Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" run -c \"$1\"")
            .arg(env!("CARGO_BIN_EXE_cryowatch"))
            .arg(site.config_str())
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "1000000")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
    );
    let first = collect(&sock, Duration::from_secs(4));
    let all = first.join("\n");
    assert!(
        all.contains("READY=1"),
        "no READY=1 in {first:?}\n{}",
        site.daemon_log()
    );
    assert!(all.contains("STATUS=running"), "{first:?}");
    assert!(
        first.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3,
        "{first:?}"
    );

    // Another process takes SQLite's write lock: the writer cannot commit.
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("db");
    db.execute_batch("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE;")
        .expect("lock the store");
    // Let a ping already in flight arrive, then none may come while it is stalled.
    let settling = collect(&sock, Duration::from_millis(1200));
    let stalled = collect(&sock, Duration::from_secs(3));
    assert!(
        !stalled.iter().any(|m| m.contains("WATCHDOG=1")),
        "pinged while stalled: {stalled:?}"
    );
    assert!(
        settling.iter().chain(&stalled).any(|m| m.contains("STATUS=stuck")),
        "{settling:?} {stalled:?}"
    );
    db.execute_batch("COMMIT;").expect("release");
    let after = collect(&sock, Duration::from_secs(4));
    assert!(
        after.iter().any(|m| m.contains("WATCHDOG=1")),
        "pings did not resume: {after:?}\n{}",
        site.daemon_log()
    );

    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        site.daemon_log()
    );
    // Datagrams wait in our socket after the daemon is gone.
    let last = collect(&sock, Duration::from_millis(300));
    assert!(last.iter().any(|m| m.contains("STOPPING=1")), "{last:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_structured_fields() {
    let site = Site::new(
        "[site]\nname = \"json\"\n[store]\npath = \"{dir}/cryowatch.db\"\n[[asset]]\nid = \"d\"\nkind = \"ln2_dewar\"\n",
    );
    let log = site.path().join("json.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut daemon = common::Proc::spawn(
        "cryowatch run",
        std::process::Command::new(env!("CARGO_BIN_EXE_cryowatch"))
            .args(["--log-format", "json", "run", "-c", &site.config_str()])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(file),
    );
    std::thread::sleep(Duration::from_millis(1500));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let running = lines
        .iter()
        .find(|l| l["fields"]["message"] == "cryowatch running")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(running["fields"]["site"], "json");
    assert_eq!(running["level"], "INFO");
    assert!(!text.contains('\u{1b}'), "no colour codes");
}

/// Runs the daemon briefly with standard error to a file and `JOURNAL_STREAM` set as
/// `journal_stream` says (given the file's `device:inode`), and returns what it logged.
fn log_with_journal_stream(journal_stream: impl Fn(&str) -> String) -> String {
    use std::os::unix::fs::MetadataExt;
    let site = Site::new(
        "[site]\nname = \"journal\"\n[store]\npath = \"{dir}/cryowatch.db\"\n[[asset]]\nid = \"d\"\nkind = \"ln2_dewar\"\n",
    );
    let log = site.path().join("journal.log");
    let file = std::fs::File::create(&log).expect("log");
    let meta = file.metadata().expect("stat");
    let mut daemon = common::Proc::spawn(
        "cryowatch run",
        std::process::Command::new(env!("CARGO_BIN_EXE_cryowatch"))
            .args(["run", "-c", &site.config_str()])
            .env("RUST_LOG", "info")
            .env(
                "JOURNAL_STREAM",
                journal_stream(&format!("{}:{}", meta.dev(), meta.ino())),
            )
            .stdout(std::process::Stdio::null())
            .stderr(file),
    );
    std::thread::sleep(Duration::from_millis(1500));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    std::fs::read_to_string(&log).expect("read log")
}

#[test]
fn to_journald_each_line_starts_with_its_priority_and_carries_no_time_of_its_own() {
    let text = log_with_journal_stream(|ours| ours.to_string());
    let running = text
        .lines()
        .find(|l| l.contains("cryowatch running"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(running.starts_with("<6>"), "{running}");
    assert!(
        text.lines().all(|l| l.starts_with('<')),
        "a line without its priority:\n{text}"
    );
    assert!(
        !text.contains("Z  INFO") && !text.contains("Z INFO"),
        "a timestamp of our own:\n{text}"
    );
    // The variable of another stream (inherited, say) changes nothing.
    let elsewhere = log_with_journal_stream(|_| "1:2".to_string());
    assert!(elsewhere.lines().all(|l| !l.starts_with('<')), "{elsewhere}");
    assert!(
        elsewhere.contains("Z  INFO"),
        "a plain log line keeps its time:\n{elsewhere}"
    );
}
