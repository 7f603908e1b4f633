//! pymodbus as a Modbus I/O module (`tests/peers/io_module.py`): 32 coils and 32 holding
//! registers that journal every write a client makes, and that the test can change as
//! someone at the module would (`set`), for the local alarm output tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{Proc, python, tests_dir};

/// One line of the journal: a client's write, or the test's own `set`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds since the epoch, as the module saw it.
    pub t: f64,
    /// `coil` or `holding`.
    pub kind: String,
    pub address: u16,
    pub value: u16,
    /// A client's write (not the test's `set`).
    pub written: bool,
}

/// A running `io_module.py`, killed when dropped.
pub struct IoModule {
    pub proc: Proc,
    /// `host:port` it serves Modbus TCP on.
    pub address: String,
    journal: PathBuf,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
}

impl IoModule {
    /// Serves on a free loopback port; its journal goes under `dir`.
    pub fn start(dir: &Path) -> IoModule {
        Self::start_on(dir, "127.0.0.1:0")
    }

    /// Serves on `address` (`host:port`), e.g. the address of a module that was stopped.
    pub fn start_on(dir: &Path, address: &str) -> IoModule {
        let journal = dir.join("io-module.jsonl");
        let log = std::fs::File::create(dir.join("io-module.log")).expect("create the io module log");
        let mut proc = Proc::spawn(
            "io module",
            Command::new(python())
                .arg(tests_dir().join("peers/io_module.py"))
                .args(["--tcp", address, "--journal"])
                .arg(&journal)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log),
        );
        let stdin = proc.child.stdin.take().expect("piped stdin");
        let stdout = proc.child.stdout.take().expect("piped stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = answers.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let Some(address) = ready.strip_prefix("ready tcp=") else {
            panic!(
                "the io module did not get ready (line {ready:?}); is pymodbus installed? (bash tests/run.sh)\n{}",
                std::fs::read_to_string(dir.join("io-module.log")).unwrap_or_default()
            );
        };
        IoModule {
            proc,
            address: address.trim().to_string(),
            journal,
            stdin,
            answers,
        }
    }

    /// Sets a coil or holding register (`kind` `coil` or `holding`) on the module, as
    /// someone at the module would; returns once it is applied.
    pub fn set(&mut self, kind: &str, address: u16, value: u16) {
        writeln!(self.stdin, "set {kind} {address} {value}").expect("write to the io module");
        self.stdin.flush().expect("flush to the io module");
        let answer = self.answers.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        assert_eq!(answer, "ok", "set {kind} {address} {value}");
    }

    /// Every journal entry for `kind` at `address`, in order.
    pub fn entries(&self, kind: &str, address: u16) -> Vec<Entry> {
        let text = std::fs::read_to_string(&self.journal).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                let written = v.get("fc").is_some();
                let entry = Entry {
                    t: v["t"].as_f64()?,
                    kind: (if written { &v["kind"] } else { &v["set"] }).as_str()?.to_string(),
                    address: u16::try_from(v["address"].as_u64()?).ok()?,
                    value: u16::try_from(v["values"][0].as_u64()?).ok()?,
                    written,
                };
                (entry.kind == kind && entry.address == address).then_some(entry)
            })
            .collect()
    }

    /// The clients' writes of `kind` at `address`, in order.
    pub fn writes(&self, kind: &str, address: u16) -> Vec<Entry> {
        self.entries(kind, address).into_iter().filter(|e| e.written).collect()
    }

    /// The value `kind` at `address` holds now (0 until anything was written or set).
    pub fn value(&self, kind: &str, address: u16) -> u16 {
        self.entries(kind, address).last().map_or(0, |e| e.value)
    }
}
