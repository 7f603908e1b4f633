//! A GSM modem without hardware: a socat pty pair with `cryosim modem` answering AT
//! commands on one end. cryowatch opens the other end ([`FakeModem::tty`]). Submitted
//! messages and ended voice calls are recorded by the fake modem as JSON lines, in the
//! order they happened; its control port queues
//! inbound messages, makes submissions fail, silences the modem or takes its network
//! away. Both processes are killed when the fixture is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::pty::PtyPair;
use super::{Proc, wait_for};

/// A message as the fake modem recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub to: String,
    pub text: String,
    pub reference: u64,
}

/// A voice call as the fake modem recorded it once it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub number: String,
    /// Milliseconds since the Unix epoch.
    pub dialled_ms: u64,
    pub ended_ms: u64,
    /// `ATH` (hung up by the caller), `NO CARRIER` or `BUSY`.
    pub ended_by: String,
}

impl RecordedCall {
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.ended_ms.saturating_sub(self.dialled_ms))
    }
}

/// One line of the record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Sms(Recorded),
    Call(RecordedCall),
}

pub struct FakeModem {
    /// The serial line cryowatch opens.
    pub tty: PathBuf,
    pub control: SocketAddr,
    record: PathBuf,
    log: PathBuf,
    // Dropped in this order: the modem first, then the line under it.
    proc: Proc,
    pty: PtyPair,
}

impl FakeModem {
    /// Starts socat and `cryosim modem --port DIR/ttyA --record DIR/sms.jsonl --control
    /// 127.0.0.1:0` (log in DIR/modem.log); returns once the modem says `ready`.
    pub fn start(dir: &Path) -> FakeModem {
        let pty = PtyPair::new(dir);
        let record = dir.join("sms.jsonl");
        let log = dir.join("modem.log");
        let log_file = std::fs::File::create(&log).expect("create modem.log");
        let mut proc = Proc::spawn(
            "cryosim modem",
            Command::new(super::cryosim::binary())
                .arg("modem")
                .arg("--port")
                .arg(&pty.a)
                .arg("--record")
                .arg(&record)
                .args(["--control", "127.0.0.1:0"])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log_file),
        );
        let line = super::cryosim::ready_line(&mut proc, "cryosim modem", &log);
        assert!(line.starts_with("ready modem="), "cryosim modem's first line: {line:?}");
        let control = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("control="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no control=ADDR in {line:?}"));
        FakeModem {
            tty: pty.b.clone(),
            control,
            record,
            log,
            proc,
            pty,
        }
    }

    /// Sends one control command and returns the answer line.
    pub fn command(&self, line: &str) -> String {
        super::cryosim::control_command(self.control, "the modem", line)
    }

    fn ok(&self, line: &str) -> String {
        let answer = self.command(line);
        assert!(answer.starts_with("ok"), "fake modem: {line:?} answered {answer:?}");
        answer
    }

    /// Queues an inbound SMS; returns its storage index.
    pub fn queue_sms(&self, from: &str, text: &str) -> u32 {
        let answer = self.ok(&format!("sms {from} {text}"));
        answer
            .strip_prefix("ok ")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("sms answered {answer:?}"))
    }

    /// The next `count` submissions answer `+CMS ERROR: <code>`.
    pub fn fail_next(&self, count: usize, code: u16) {
        self.ok(&format!("fail {count} {code}"));
    }

    /// On: the modem answers nothing. Off: it answers again, as after a restart.
    pub fn silent(&self, on: bool) {
        self.ok(if on { "silent on" } else { "silent off" });
    }

    /// `home`, `roaming`, `searching`, `denied`, `none` or a `+CREG` stat number.
    pub fn network(&self, state: &str) {
        self.ok(&format!("network {state}"));
    }

    /// `AT+CSQ` rssi (0–31, 99 unknown).
    pub fn signal(&self, rssi: u8) {
        self.ok(&format!("signal {rssi}"));
    }

    /// Messages still stored on the modem, as JSON.
    pub fn inbox(&self) -> serde_json::Value {
        let answer = self.command("inbox");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("inbox answered {answer:?}: {e}"))
    }

    /// `ATD` calls end by themselves with `NO CARRIER` after `ms` milliseconds
    /// (`"never"`: they ring until `ATH`, the default; `"busy"`: `ATD` answers `BUSY`).
    pub fn call_end(&self, how: &str) {
        self.ok(&format!("call_end {how}"));
    }

    /// Every submitted message and ended call so far, from the record file, in order.
    pub fn history(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("record line {l:?}: {e}"));
                let ms = |key: &str| v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {l:?}"));
                match v["call"].as_str() {
                    Some(number) => Event::Call(RecordedCall {
                        number: number.to_string(),
                        dialled_ms: ms("dialled_ms"),
                        ended_ms: ms("ended_ms"),
                        ended_by: v["ended_by"].as_str().unwrap_or_default().to_string(),
                    }),
                    None => Event::Sms(Recorded {
                        to: v["to"].as_str().unwrap_or_default().to_string(),
                        text: v["text"].as_str().unwrap_or_default().to_string(),
                        reference: ms("ref"),
                    }),
                }
            })
            .collect()
    }

    /// Every submitted message so far, from the record file, in order.
    pub fn sent(&self) -> Vec<Recorded> {
        self.history()
            .into_iter()
            .filter_map(|e| match e {
                Event::Sms(sms) => Some(sms),
                Event::Call(_) => None,
            })
            .collect()
    }

    /// Every ended call so far, from the record file, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.history()
            .into_iter()
            .filter_map(|e| match e {
                Event::Call(call) => Some(call),
                Event::Sms(_) => None,
            })
            .collect()
    }

    /// Waits until at least `n` messages are recorded and returns them all.
    pub fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        wait_for(timeout, &format!("{n} recorded messages"), || {
            let sent = self.sent();
            (sent.len() >= n).then_some(sent)
        })
    }

    /// The fake modem's and socat's logs (for assertion messages).
    pub fn log(&self) -> String {
        format!(
            "modem:\n{}\nsocat:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.pty.log()
        )
    }

    /// Whether the fake modem is still running.
    pub fn running(&mut self) -> bool {
        self.proc.running()
    }
}
