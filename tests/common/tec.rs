//! LN2 freezer controllers without hardware: a socat pty pair with `cryosim tec`
//! answering the TEC 3000-style text protocol (units 001, 002, 004) on one end;
//! cryowatch opens the other ([`FakeTec::tty`]). The control port sets values, unit
//! modes (dead, garbled, late, fault) and sends event lines. Both processes are killed
//! when the fixture is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Proc;
use super::pty::PtyPair;

pub struct FakeTec {
    /// The serial line cryowatch opens.
    pub tty: PathBuf,
    pub control: SocketAddr,
    log: PathBuf,
    // Dropped in this order: the controllers first, then the line under them.
    _proc: Proc,
    pty: PtyPair,
}

impl FakeTec {
    /// Starts socat and `cryosim tec --port DIR/ttyA --control 127.0.0.1:0 ARGS` (log in
    /// DIR/tec.log); returns once it says `ready`.
    pub fn start(dir: &Path, args: &[&str]) -> FakeTec {
        let pty = PtyPair::new(dir);
        let log = dir.join("tec.log");
        let log_file = std::fs::File::create(&log).expect("create tec.log");
        let mut proc = Proc::spawn(
            "cryosim tec",
            Command::new(super::cryosim::binary())
                .arg("tec")
                .arg("--port")
                .arg(&pty.a)
                .args(["--control", "127.0.0.1:0"])
                .args(args)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log_file),
        );
        let line = super::cryosim::ready_line(&mut proc, "cryosim tec", &log);
        assert!(line.starts_with("ready tec="), "cryosim tec's first line: {line:?}");
        let control = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("control="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no control=ADDR in {line:?}"));
        FakeTec {
            tty: pty.b.clone(),
            control,
            log,
            _proc: proc,
            pty,
        }
    }

    /// Sends one control command and asserts it is accepted.
    pub fn ok(&self, line: &str) {
        let answer = super::cryosim::control_command(self.control, "cryosim tec", line);
        assert!(answer.starts_with("ok"), "cryosim tec: {line:?} answered {answer:?}");
    }

    /// The simulator's and socat's logs (for assertion messages).
    pub fn log(&self) -> String {
        format!(
            "tec:\n{}\nsocat:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.pty.log()
        )
    }
}
