//! A local stand-in for Twilio's Messages API: `tests/peers/twilio_server.py` checks
//! basic auth, records every message POST to a JSONL file and answers the way Twilio
//! documents. The mode file switches it between accepting, failing with 500, rate
//! limiting (429 + Retry-After), rejecting with a Twilio error code, and accepting
//! messages whose read-back status is `undelivered` (30005).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::smtp::ready_line;
use super::tls::TestCa;
use super::{Proc, python, tests_dir};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789";

/// What the fake does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioMode {
    /// 201 queued; read-back gives `delivered`.
    Normal,
    /// 500, code 20500.
    Error500,
    /// 429 with `Retry-After: 7`, code 20429.
    RateLimit,
    /// 400 with this Twilio error code (21211 invalid To, 21610 unsubscribed, …).
    Reject(u32),
    /// 201 queued; read-back gives `undelivered` with error code 30005.
    Undelivered,
}

impl TwilioMode {
    fn text(self) -> String {
        match self {
            TwilioMode::Normal => "normal".into(),
            TwilioMode::Error500 => "error500".into(),
            TwilioMode::RateLimit => "ratelimit".into(),
            TwilioMode::Reject(code) => format!("reject:{code}"),
            TwilioMode::Undelivered => "undelivered".into(),
        }
    }
}

/// One message POST the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub to: String,
    pub from: String,
    pub body: String,
    /// The sid it answered with (only when it answered 201).
    pub sid: Option<String>,
    pub http_status: u16,
    pub authorization_ok: bool,
    pub content_type: String,
}

/// A running `twilio_server.py`, killed when dropped.
pub struct FakeTwilio {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT` (the channel's `base_url`).
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    dir: PathBuf,
    log: PathBuf,
}

impl FakeTwilio {
    /// Starts on a free loopback port; files go under `dir/twilio`.
    pub fn start(dir: &Path) -> FakeTwilio {
        Self::launch(dir, None)
    }

    /// Serves HTTPS with the test CA's server certificate (`https://localhost:PORT`).
    pub fn start_tls(dir: &Path, ca: &TestCa) -> FakeTwilio {
        Self::launch(dir, Some(ca))
    }

    fn launch(dir: &Path, tls: Option<&TestCa>) -> FakeTwilio {
        let dir = dir.join("twilio");
        std::fs::create_dir_all(&dir).expect("create the twilio directory");
        let log = dir.join("twilio_server.log");
        let err = std::fs::File::create(&log).expect("create the twilio log");
        let mut proc = Proc::spawn(
            "twilio_server.py",
            Command::new(python())
                .arg(tests_dir().join("peers/twilio_server.py"))
                .arg("--dir")
                .arg(&dir)
                .args(["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN])
                .args(
                    tls.map(|ca| {
                        vec![
                            "--certfile".into(),
                            ca.cert.clone().into_os_string(),
                            "--keyfile".into(),
                            ca.key.clone().into_os_string(),
                        ]
                    })
                    .unwrap_or_default(),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err),
        );
        let line = ready_line(&mut proc);
        let Some(port) = line.strip_prefix("ready ").and_then(|p| p.trim().parse::<u16>().ok()) else {
            let _ = proc.child.kill();
            panic!(
                "twilio_server.py did not get ready (line {line:?})\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        FakeTwilio {
            proc,
            base_url: match tls {
                Some(_) => format!("https://localhost:{port}"),
                None => format!("http://127.0.0.1:{port}"),
            },
            account_sid: ACCOUNT_SID.into(),
            auth_token: AUTH_TOKEN.into(),
            dir,
            log,
        }
    }

    /// Switches the behaviour for the following requests.
    pub fn set_mode(&self, mode: TwilioMode) {
        let tmp = self.dir.join(".mode.tmp");
        std::fs::write(&tmp, mode.text()).expect("write the twilio mode");
        std::fs::rename(&tmp, self.dir.join("mode")).expect("install the twilio mode");
    }

    /// Every message POST so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        let text = std::fs::read_to_string(self.dir.join("messages.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("parse a recorded message");
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                Recorded {
                    to: s("to"),
                    from: s("from"),
                    body: s("body"),
                    sid: v["sid"].as_str().map(str::to_string),
                    http_status: v["http_status"]
                        .as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0),
                    authorization_ok: v["authorization_ok"].as_bool().unwrap_or(false),
                    content_type: s("content_type"),
                }
            })
            .collect()
    }

    /// The messages it accepted (answered 201).
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.http_status == 201).collect()
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
