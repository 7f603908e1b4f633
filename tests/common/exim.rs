//! exim4 (`exim4-daemon-light`) as an independent mail relay for one test: its own
//! configuration, spool and Maildir under the test's directory, listening on two free
//! loopback ports: one offering STARTTLS, one speaking TLS from the first byte
//! (`tls_on_connect_ports`). Its certificate is signed by the test's CA
//! ([`super::tls::TestCa`]), and it relays only after AUTH PLAIN or LOGIN (plaintext
//! authenticator) as [`USER`] / [`PASSWORD`]. Every accepted message lands in the
//! Maildir, parsed with Python's `email` package (policy.strict).
//!
//! Running it here: the tests run as root, and exim takes a `-C` configuration file
//! only from root, only when the file is owned by root and writable by nobody else.
//! The daemon runs as root (`exim_user = root`, so it can write the spool under the
//! test's directory), but exim never delivers as root (root is in its built-in
//! `fixed_never_users`): the Maildir transport runs as `Debian-exim`, which owns the
//! Maildir and must be able to walk into the test's directory (mode 0755).
//! `-bdf` keeps the daemon in the foreground so the test owns its process.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::tls::{TestCa, set_mode};
use super::{Proc, free_port, python, wait_for};

pub const USER: &str = "pager";
pub const PASSWORD: &str = "relay-secret";

/// A message in the Maildir.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Headers in order, values decoded.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running exim daemon, killed when dropped.
pub struct Exim {
    proc: Proc,
    /// The STARTTLS port (`tls = "starttls"`).
    pub starttls_port: u16,
    /// The implicit TLS port (`tls = "tls"`).
    pub tls_port: u16,
    dir: PathBuf,
}

impl Exim {
    /// Starts exim under `dir/exim` with the CA's server certificate.
    pub fn start(dir: &Path, ca: &TestCa) -> Exim {
        let dir = dir.join("exim");
        let spool = dir.join("spool");
        let maildir = dir.join("Maildir");
        std::fs::create_dir_all(&spool).expect("create the exim spool");
        std::fs::create_dir_all(&maildir).expect("create the Maildir");
        // The transport delivers as Debian-exim: it must reach and own the Maildir.
        let mut parent = Some(dir.as_path());
        while let Some(p) = parent.filter(|p| p.starts_with(std::env::temp_dir()) && *p != std::env::temp_dir()) {
            set_mode(p, 0o755);
            parent = p.parent();
        }
        let chown = Command::new("chown")
            .args(["-R", "Debian-exim:Debian-exim"])
            .arg(&maildir)
            .status()
            .expect("run chown");
        assert!(chown.success(), "chown Debian-exim {}", maildir.display());
        let conf = dir.join("exim.conf");
        for _ in 0..5 {
            let (starttls_port, tls_port) = (free_port(), free_port());
            std::fs::write(&conf, config(&spool, &maildir, ca, tls_port)).expect("write exim.conf");
            set_mode(&conf, 0o644);
            let log = std::fs::File::create(dir.join("exim.stderr")).expect("create the exim log");
            let mut proc = Proc::spawn(
                "exim",
                Command::new("exim")
                    .arg("-C")
                    .arg(&conf)
                    .arg("-bdf")
                    .arg("-oX")
                    .arg(format!("{starttls_port}:{tls_port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log),
            );
            // Ready once exim says it bound both ports: a connection alone could reach
            // another test's server that took one of them first.
            let started = format!("[127.0.0.1]:{starttls_port} and for SMTPS on [127.0.0.1]:{tls_port}");
            let up = wait_for(Duration::from_secs(10), "exim to accept connections", || {
                if !proc.running() {
                    return Some(false);
                }
                let said = std::fs::read_to_string(spool.join("mainlog")).unwrap_or_default();
                let bound = said
                    .lines()
                    .any(|l| l.contains("daemon started") && l.contains(&started));
                let both = [starttls_port, tls_port]
                    .iter()
                    .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
                (bound && both).then_some(true)
            });
            if up {
                return Exim {
                    proc,
                    starttls_port,
                    tls_port,
                    dir,
                };
            }
        }
        panic!(
            "exim did not start on any of 5 port pairs (install exim4-daemon-light):\n{}",
            std::fs::read_to_string(dir.join("exim.stderr")).unwrap_or_default()
        );
    }

    /// exim's main and panic logs (for assertion messages).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join("spool").join(f)).unwrap_or_default();
        format!("{}{}", read("mainlog"), read("paniclog"))
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let new = self.dir.join("Maildir/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|f| parse(f)).collect()
    }

    /// Waits until `n` messages are delivered.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        wait_for(timeout, &format!("{n} message(s) in exim's Maildir"), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// Parses one delivered message with Python's `email` package, strictly.
fn parse(file: &Path) -> Mail {
    let script = "import email, email.policy, json, sys\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.strict)\n\
                  print(json.dumps({'headers': [[k, str(v)] for k, v in m.items()], 'body': m.get_content()}))\n";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("parsed message as JSON");
    let headers = v["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    let s = |i: usize| h[i].as_str().unwrap_or_default().to_string();
                    (s(0), s(1))
                })
                .collect()
        })
        .unwrap_or_default();
    Mail {
        headers,
        body: v["body"].as_str().unwrap_or_default().replace("\r\n", "\n"),
    }
}

fn config(spool: &Path, maildir: &Path, ca: &TestCa, tls_port: u16) -> String {
    r#"primary_hostname = localhost
local_interfaces = 127.0.0.1
exim_user = root
exim_group = root
keep_environment =
spool_directory = @SPOOL@
log_file_path = @SPOOL@/%slog
pid_file_path = @SPOOL@/exim.pid
tls_advertise_hosts = *
tls_on_connect_ports = @TLS_PORT@
tls_certificate = @CERT@
tls_privatekey = @KEY@
auth_advertise_hosts = *
acl_smtp_rcpt = acl_check_rcpt
domainlist local_domains = *

begin acl
acl_check_rcpt:
  accept authenticated = *
  deny message = authentication required

begin routers
everyone:
  driver = accept
  transport = maildir

begin transports
maildir:
  driver = appendfile
  directory = @MAILDIR@
  maildir_format
  envelope_to_add
  return_path_add
  user = Debian-exim
  group = Debian-exim

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = ${if and{{eq{$auth2}{@USER@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and{{eq{$auth1}{@USER@}}{eq{$auth2}{@PASSWORD@}}}}
  server_set_id = $auth1
"#
    .replace("@SPOOL@", &spool.display().to_string())
    .replace("@MAILDIR@", &maildir.display().to_string())
    .replace("@CERT@", &ca.cert.display().to_string())
    .replace("@KEY@", &ca.key.display().to_string())
    .replace("@TLS_PORT@", &tls_port.to_string())
    .replace("@USER@", USER)
    .replace("@PASSWORD@", PASSWORD)
}
