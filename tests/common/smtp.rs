//! aiosmtpd as an independent SMTP peer: `tests/peers/smtp_server.py` writes every
//! message it accepts to a directory (raw `.eml` and a `.json` parsed by Python's email
//! package), can require AUTH, offer STARTTLS or implicit TLS with a self-signed
//! certificate, answer RCPT or DATA with a chosen failure, and be stopped and started
//! again on the same port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{Proc, python, tests_dir, wait_for};

/// How the server is started.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Require AUTH (PLAIN/LOGIN, offered without TLS) with this user and password.
    pub auth: Option<(String, String)>,
    /// Offer TLS with a freshly made self-signed certificate: STARTTLS, or TLS from the
    /// first byte when `implicit_tls`.
    pub tls: bool,
    pub implicit_tls: bool,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Whether the session had authenticated.
    pub authenticated: bool,
    /// Headers in order, values decoded.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    /// The decoded text body, `\n` line ends.
    pub body: String,
    /// The message as received, envelope first (`X-Envelope-*`).
    pub raw: String,
}

impl ReceivedMail {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running `smtp_server.py`, killed when dropped.
pub struct SmtpServer {
    proc: Option<Proc>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl SmtpServer {
    /// Plain SMTP, no AUTH, accepting everything. Files go under `dir/smtp`.
    pub fn start(dir: &Path) -> SmtpServer {
        Self::start_with(dir, &SmtpOptions::default())
    }

    /// Plain SMTP that requires AUTH with `user`/`password`.
    pub fn with_auth(dir: &Path, user: &str, password: &str) -> SmtpServer {
        Self::start_with(
            dir,
            &SmtpOptions {
                auth: Some((user.into(), password.into())),
                ..SmtpOptions::default()
            },
        )
    }

    pub fn start_with(dir: &Path, options: &SmtpOptions) -> SmtpServer {
        let dir = dir.join("smtp");
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).expect("create the mail directory");
        let mut args = vec!["--dir".to_string(), mail.display().to_string()];
        if let Some((user, password)) = &options.auth {
            args.push("--auth".into());
            args.push(format!("{user}:{password}"));
        }
        if options.tls || options.implicit_tls {
            let (cert, key) = self_signed(&dir);
            args.extend([
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ]);
            if options.implicit_tls {
                args.push("--implicit-tls".into());
            }
        }
        let log = dir.join("smtp_server.log");
        let mut server = SmtpServer {
            proc: None,
            port: 0,
            dir: mail,
            args,
            log,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the smtp server log");
        let mut proc = Proc::spawn(
            "smtp_server.py",
            Command::new(python())
                .arg(tests_dir().join("peers/smtp_server.py"))
                .args(&self.args)
                .arg("--port")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err),
        );
        let line = ready_line(&mut proc);
        let port = line.strip_prefix("ready ").and_then(|p| p.trim().parse::<u16>().ok());
        let Some(port) = port else {
            let _ = proc.child.kill();
            panic!(
                "smtp_server.py did not get ready (line {line:?}); is aiosmtpd installed? \
                 (bash tests/run.sh)\n{}",
                self.log()
            );
        };
        self.port = port;
        self.proc = Some(proc);
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Stops the server (SIGKILL): connections are refused until [`SmtpServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }

    /// Starts the server again on the same port, with the same options and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Answers `stage` (`"rcpt"` or `"data"`) with `reply` (e.g. `"451 4.3.0 Try again
    /// later"`) from now on.
    pub fn fail(&self, stage: &str, reply: &str) {
        self.set_mode(&format!("{stage} {reply}"));
    }

    /// Accepts everything again.
    pub fn accept(&self) {
        self.set_mode("normal");
    }

    fn set_mode(&self, mode: &str) {
        let tmp = self.dir.join(".mode.tmp");
        std::fs::write(&tmp, mode).expect("write the smtp mode");
        std::fs::rename(&tmp, self.dir.join("mode")).expect("install the smtp mode");
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        let n = p.file_name()?.to_str()?.strip_suffix(".json")?.parse().ok()?;
                        Some((n, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        numbered.sort();
        numbered
            .into_iter()
            .map(|(n, p)| parse_mail(&p, &self.dir.join(format!("{n}.eml"))))
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        wait_for(timeout, &format!("{n} message(s) at the SMTP server"), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn parse_mail(json: &Path, eml: &Path) -> ReceivedMail {
    let text = std::fs::read_to_string(json).expect("read a received message");
    let v: Value = serde_json::from_str(&text).expect("parse a received message");
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    ReceivedMail {
        mail_from: s("mail_from"),
        rcpt_tos: v["rcpt_tos"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        authenticated: v["authenticated"].as_bool().unwrap_or(false),
        headers: v["headers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        content_type: s("content_type"),
        body: s("body"),
        raw: std::fs::read_to_string(eml).unwrap_or_default(),
    }
}

/// The first stdout line of `proc`, read on a thread so a hung interpreter fails the
/// test instead of blocking it.
pub(crate) fn ready_line(proc: &mut Proc) -> String {
    let Some(stdout) = proc.child.stdout.take() else {
        return String::new();
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default()
}

/// A self-signed certificate for `localhost` (made by the `openssl` command).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl to make a test certificate");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
