//! The `cryosim` binary as a child process: Modbus TCP and the control port on free
//! loopback ports, scenarios switched through the control port the way an operator
//! does (`set <device|all> <scenario>`), killed when the fixture is dropped.
//!
//! The binary belongs to the `cryosim` crate of the workspace, so Cargo does not build
//! it for this crate's tests: the first [`CryoSim::start`] builds it (`cargo build -p
//! cryosim --bin cryosim`, a no-op when it is up to date). `CRYOWATCH_TEST_CRYOSIM`
//! names a prebuilt binary instead.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use super::Proc;

/// How long the simulator may take to bind its ports and say `ready`.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// The path of the `cryosim` binary, built on first use.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CRYOWATCH_TEST_CRYOSIM") {
            return PathBuf::from(p);
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "cryosim",
            "--bin",
            "cryosim",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build -p cryosim");
        assert!(out.status.success(), "cargo build -p cryosim failed");
        // The compiler-artifact message of the binary names the executable.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "cryosim")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo build -p cryosim named no cryosim executable")
    })
}

/// A running `cryosim run --modbus-tcp 127.0.0.1:0 --control 127.0.0.1:0`.
pub struct CryoSim {
    proc: Proc,
    log: PathBuf,
    /// Modbus TCP: units 1 (dewar-1), 2 (freezer-7), 3 (ups-1).
    pub modbus: SocketAddr,
    pub control: SocketAddr,
}

impl CryoSim {
    /// Starts the simulator with every device `steady` and no noise (exact values),
    /// logging to `dir/cryosim.log`. Returns once it has printed its `ready` line.
    pub fn start(dir: &Path) -> CryoSim {
        let log = dir.join("cryosim.log");
        let log_file = std::fs::File::create(&log).expect("create cryosim.log");
        let mut proc = Proc::spawn(
            "cryosim",
            Command::new(binary())
                .args(["run", "--modbus-tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log_file),
        );
        let line = ready_line(&mut proc, "cryosim", &log);
        let field = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key}=ADDR in cryosim's ready line {line:?}"))
        };
        assert!(line.starts_with("ready"), "cryosim's first line: {line:?}");
        CryoSim {
            modbus: field("modbus_tcp"),
            control: field("control"),
            proc,
            log,
        }
    }

    /// The configuration of the simulated dewar as one Modbus device `ctrl` (polled every
    /// 250 ms) with its temperature sensor `dewar-1.temp` on asset `dewar-1`, for tests
    /// that need a real polled sensor and nothing special about it.
    #[allow(dead_code)]
    pub fn dewar_toml(&self) -> String {
        format!(
            r#"[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
"#,
            modbus = self.modbus
        )
    }

    /// Sends one control command and returns the answer line.
    pub fn command(&self, line: &str) -> String {
        control_command(self.control, "cryosim", line)
    }

    /// `set DEVICE SCENARIO`; panics unless the simulator answers `ok`.
    pub fn set(&self, device: &str, scenario: &str) {
        let answer = self.command(&format!("set {device} {scenario}"));
        assert_eq!(answer, "ok", "cryosim: set {device} {scenario}");
    }

    /// `get DEVICE`: what the device serves right now.
    pub fn get(&self, device: &str) -> serde_json::Value {
        let answer = self.command(&format!("get {device}"));
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("cryosim: get {device} answered {answer:?}: {e}"))
    }

    /// Kills the simulator (SIGKILL): every device stops answering at once.
    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    /// The simulator's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The first line a `cryosim` process (`what`) prints on stdout: its `ready` line with
/// the addresses it bound. The rest of stdout is read to its end by a thread, so the
/// process never blocks on a full pipe. Panics with the log after [`READY_WITHIN`].
pub fn ready_line(proc: &mut Proc, what: &str, log: &Path) -> String {
    let stdout = proc.child.stdout.take().unwrap_or_else(|| panic!("{what} stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx.recv_timeout(READY_WITHIN).unwrap_or_else(|e| {
        panic!(
            "{what} printed no ready line ({e}); log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

/// Sends one line to a `cryosim` control port and returns the answer line.
pub fn control_command(addr: SocketAddr, what: &str, line: &str) -> String {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {what}'s control port: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut writer = stream.try_clone().expect("clone the control stream");
    writer
        .write_all(format!("{line}\n").as_bytes())
        .expect("send a control command");
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .expect("read the control answer");
    answer.trim_end().to_string()
}
