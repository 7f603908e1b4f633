//! A serial line without hardware: two pseudo-terminals joined by socat. Whatever is
//! written to one end comes out of the other, so a Modbus RTU server on `a` and a
//! client on `b` talk as over a cable. socat is killed when the pair is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Proc, wait_for};

pub struct PtyPair {
    /// `DIR/ttyA`: a symlink to one pty.
    pub a: PathBuf,
    /// `DIR/ttyB`: a symlink to the other.
    pub b: PathBuf,
    log: PathBuf,
    proc: Proc,
}

impl PtyPair {
    /// Starts `socat -d -d pty,raw,echo=0,link=DIR/ttyA pty,raw,echo=0,link=DIR/ttyB`
    /// (log in DIR/socat.log) and waits until both links exist and socat is relaying.
    pub fn new(dir: &Path) -> PtyPair {
        let a = dir.join("ttyA");
        let b = dir.join("ttyB");
        let log = dir.join("socat.log");
        let err = std::fs::File::create(&log).expect("create socat log");
        let mut proc = Proc::spawn(
            "socat",
            Command::new("socat")
                .arg("-d")
                .arg("-d")
                .arg(format!("pty,raw,echo=0,link={}", a.display()))
                .arg(format!("pty,raw,echo=0,link={}", b.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err),
        );
        wait_for(Duration::from_secs(5), "socat to create its pty pair", || {
            if !proc.running() {
                panic!(
                    "socat exited early: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let relaying = std::fs::read_to_string(&log).is_ok_and(|l| l.contains("starting data transfer loop"));
            (relaying && a.exists() && b.exists()).then_some(())
        });
        PtyPair { a, b, log, proc }
    }

    /// socat's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether socat is still relaying.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }
}
