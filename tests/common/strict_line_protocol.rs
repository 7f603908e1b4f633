//! A strict InfluxDB 2.x line-protocol receiver in front of VictoriaMetrics
//! (tests/peers/strict_line_protocol.py): a batch with any line an InfluxDB 2.x server
//! could not parse is answered 400 with InfluxDB's JSON error body; good batches are
//! forwarded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::smtp::ready_line;
use super::{Proc, python, tests_dir};

pub struct StrictLineProtocol {
    pub port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl StrictLineProtocol {
    /// Starts the receiver on a free loopback port in front of `upstream` (a URL).
    pub fn start(dir: &Path, upstream: &str) -> StrictLineProtocol {
        let log = dir.join("strict-line-protocol.log");
        let err = std::fs::File::create(&log).expect("create the strict receiver's log");
        let mut proc = Proc::spawn(
            "strict_line_protocol.py",
            Command::new(python())
                .arg(tests_dir().join("peers/strict_line_protocol.py"))
                .args(["--upstream", upstream])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err),
        );
        let line = ready_line(&mut proc);
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "strict_line_protocol.py did not get ready (line {line:?})\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        StrictLineProtocol { port, log, _proc: proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The batches refused so far, one line each with the reason.
    pub fn refused(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("refused: "))
            .map(str::to_string)
            .collect()
    }
}
