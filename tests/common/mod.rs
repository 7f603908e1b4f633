//! Shared test support: free loopback ports, child processes that die with the test,
//! and the `cryowatch` binary driven the way an operator drives it.
//!
//! Peers (Mosquitto, pymodbus, socat pty pairs) live in their own submodules.
#![allow(dead_code)]

pub mod api_lab;
pub mod browser;
pub mod container;
pub mod cryosim;
pub mod engine_rig;
pub mod exim;
pub mod fault_proxy;
pub mod floods;
pub mod gateway;
pub mod http;
pub mod io_module;
pub mod lazyfs;
pub mod modem;
pub mod mosquitto;
pub mod nut;
pub mod pty;
pub mod pymodbus;
pub mod quality_lab;
pub mod quality_month;
pub mod rabbitmq;
pub mod smtp;
pub mod strict_line_protocol;
pub mod tec;
pub mod tls;
pub mod twilio;
pub mod victoria;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a test needs of an MQTT broker, whichever it is (Mosquitto, RabbitMQ).
pub trait MqttBroker {
    /// `mqtt://127.0.0.1:PORT`.
    fn url(&self) -> String;
    /// Publishes one message and returns once the broker has it (QoS 1: acknowledged).
    fn publish(&self, topic: &str, payload: &str, qos: u8);
}

impl MqttBroker for mosquitto::Mosquitto {
    fn url(&self) -> String {
        mosquitto::Mosquitto::url(self)
    }
    fn publish(&self, topic: &str, payload: &str, qos: u8) {
        mosquitto::Mosquitto::publish(self, topic, payload, qos)
    }
}

impl MqttBroker for rabbitmq::RabbitMq {
    fn url(&self) -> String {
        rabbitmq::RabbitMq::url(self)
    }
    fn publish(&self, topic: &str, payload: &str, qos: u8) {
        rabbitmq::RabbitMq::publish(self, topic, payload, qos)
    }
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test never
/// leaves a server behind.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {name}: {e} (run the tests with `bash tests/run.sh` to install peers)")
        });
        Proc {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} ({}) failed", self.pid(), self.name);
    }

    /// Waits for the process to exit by itself and returns its exit code (None if killed
    /// by a signal). Panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(timeout, &format!("{name} to exit"), || {
            child.try_wait().expect("try_wait")
        });
        status.code()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter that has pymodbus and friends: `CRYOWATCH_TEST_PYTHON`, else the
/// repository's `.venv`, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CRYOWATCH_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Path of a file under `tests/`.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The `cryowatch` binary built for this test run (`CRYOWATCH_TEST_BIN` names another
/// build, e.g. an older one to show that a test fails without a fix).
pub fn cryowatch() -> Command {
    match std::env::var_os("CRYOWATCH_TEST_BIN") {
        Some(bin) => Command::new(bin),
        None => Command::new(env!("CARGO_BIN_EXE_cryowatch")),
    }
}

/// libfaketime's library for threaded programs (Debian's `faketime` package).
pub fn libfaketime() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| panic!("libfaketimeMT.so.1 not found: `bash tests/run.sh` installs faketime"))
}

/// Standard output and standard error of a command, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cryowatch ARGS...` to completion.
pub fn cryowatch_output(args: &[&str]) -> Output {
    cryowatch()
        .args(args)
        .env_remove("CRYOWATCH_CONFIG")
        .output()
        .expect("run cryowatch")
}

/// A temporary directory holding a config file (and, by default, the store next to it).
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// Writes `config` (TOML) to DIR/cryowatch.toml. Use `{dir}` in it for the directory.
    pub fn new(config: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(dir.path().join("cryowatch.toml"), text).expect("write config");
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("cryowatch.toml")
    }

    pub fn config_str(&self) -> String {
        self.config().display().to_string()
    }

    /// Starts `cryowatch run -c DIR/cryowatch.toml`, logging to DIR/daemon.log.
    pub fn start_daemon(&self) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("open daemon log");
        let log2 = log.try_clone().expect("clone log handle");
        Proc::spawn(
            "cryowatch run",
            cryowatch()
                .args(["run", "-c", &self.config_str()])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2),
        )
    }

    /// `cryowatch ARGS -c DIR/cryowatch.toml` with `stdin` as its standard input (a
    /// signer's password), to completion.
    pub fn with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = cryowatch()
            .args(args)
            .args(["-c", &self.config_str()])
            .env_remove("CRYOWATCH_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cryowatch");
        if let Some(mut input) = child.stdin.take() {
            let _ = std::io::Write::write_all(&mut input, stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for cryowatch")
    }

    /// `cryowatch user add NAME --role operator --name PRINTED_NAME`, the password on
    /// standard input: a person who may sign.
    pub fn add_signer(&self, name: &str, printed_name: &str, password: &str) {
        let added = self.with_stdin(
            &["user", "add", name, "--role", "operator", "--name", printed_name],
            &format!("{password}\n"),
        );
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    }

    /// `cryowatch report -c DIR/cryowatch.toml --asset ASSET --from FROM --to TO --out
    /// OUT`, with `extra` arguments after them; its output, for the caller to judge.
    pub fn report(&self, asset: &str, (from, to): (&str, &str), out: &Path, extra: &[&str]) -> Output {
        let (config, out) = (self.config_str(), out.display().to_string());
        let mut args = vec![
            "report", "-c", &config, "--asset", asset, "--from", from, "--to", to, "--out", &out,
        ];
        args.extend_from_slice(extra);
        cryowatch_output(&args)
    }

    /// Like [`wait_for`], but a timeout panics with the daemon's log, which says why
    /// the daemon did not do what was waited for.
    pub fn wait_daemon<T>(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; daemon log:\n{}",
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far (for assertion messages).
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM and asserts it exits 0 (flushing everything).
    pub fn stop_daemon(&self, mut daemon: Proc) {
        daemon.signal("TERM");
        let code = daemon.wait_exit(Duration::from_secs(20));
        assert_eq!(
            code,
            Some(0),
            "daemon did not exit cleanly; log:\n{}",
            self.daemon_log()
        );
    }

    /// `cryowatch history --sensor ID --from 2000-01-01 --format csv`, parsed; empty while
    /// the daemon has not created its store yet.
    pub fn history(&self, sensor: &str) -> Vec<Row> {
        self.history_at(&self.config(), sensor)
    }

    /// Like [`Site::history`], reading through another config file.
    pub fn history_at(&self, config: &Path, sensor: &str) -> Vec<Row> {
        let out = cryowatch_output(&[
            "history",
            "-c",
            &config.display().to_string(),
            "--sensor",
            sensor,
            "--from",
            "2000-01-01",
            "--format",
            "csv",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            && (stderr.contains("does not exist yet")
                || stderr.contains("is being created")
                || stderr.contains("nothing was ever recorded"))
        {
            return Vec::new(); // the daemon has not recorded anything (or registered its sensors) yet
        }
        assert!(
            out.status.success(),
            "history --sensor {sensor} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_csv(&String::from_utf8_lossy(&out.stdout))
    }
}

/// One line of `history --format csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: String,
    pub sensor: String,
    pub value: Option<f64>,
    pub unit: String,
    pub quality: String,
}

/// Parses `history` CSV, checking the contract header.
pub fn parse_csv(text: &str) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("time,sensor,value,unit,quality"),
        "CSV header:\n{text}"
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 5, "CSV line {l:?}");
            Row {
                time: f[0].to_string(),
                sensor: f[1].to_string(),
                value: if f[2].is_empty() {
                    None
                } else {
                    Some(f[2].parse().unwrap_or_else(|e| panic!("value in {l:?}: {e}")))
                },
                unit: f[3].to_string(),
                quality: f[4].to_string(),
            }
        })
        .collect()
}

/// Renders the first page of a PDF with poppler's `pdftoppm` (proof that a viewer can
/// draw it) and returns its text from `pdftotext -layout`. Fails when poppler-utils is
/// missing: `bash tests/run.sh` installs it.
#[allow(dead_code)]
pub fn pdf_text(pdf: &Path) -> String {
    let dir = pdf.parent().unwrap_or(Path::new("."));
    let png = dir.join("page");
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1"])
        .arg(pdf)
        .arg(&png)
        .output()
        .expect("pdftoppm runs (poppler-utils; bash tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn = std::fs::read_dir(dir).expect("dir").flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with("page") && e.path().extension().is_some_and(|x| x == "png")
    });
    assert!(drawn, "pdftoppm drew no page of {}", pdf.display());
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (poppler-utils)");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Consecutive readings are never further apart than `gap`.
pub fn assert_no_silence(rows: &[Row], gap: Duration) {
    let times: Vec<jiff::Timestamp> = rows
        .iter()
        .map(|r| r.time.parse().unwrap_or_else(|e| panic!("time {:?}: {e}", r.time)))
        .collect();
    for w in times.windows(2) {
        let d = w[1].duration_since(w[0]);
        assert!(
            d <= jiff::SignedDuration::try_from(gap).expect("gap"),
            "{d:?} without a reading between {} and {}",
            w[0],
            w[1]
        );
    }
}

/// The fonts of a PDF as poppler's `pdffonts` lists them: `(name, embedded)`.
#[allow(dead_code)]
pub fn pdf_fonts(pdf: &Path) -> Vec<(String, bool)> {
    let out = Command::new("pdffonts")
        .arg(pdf)
        .output()
        .expect("pdffonts runs (poppler-utils; bash tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "pdffonts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let emb = header.find("emb").expect("pdffonts header names the emb column");
    lines
        .skip(1)
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or_default().to_string();
            let flag = l.get(emb..emb + 3).unwrap_or_default().trim().to_string();
            assert!(flag == "yes" || flag == "no", "pdffonts line {l:?}");
            (name, flag == "yes")
        })
        .collect()
}
