//! A real Mosquitto broker for one test: its own loopback port, config, log and
//! persistence directory under a temporary directory, killed when dropped.
//!
//! Every broker queues without limit (`max_queued_messages 0`): with Mosquitto's default
//! of 1000, QoS 1 messages for an offline or slow persistent session are silently
//! dropped by the broker, and a test checking "nothing lost" would blame the daemon.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::tls::TestCa;
use super::{Proc, free_port, wait_for};

/// A running `mosquitto` on `127.0.0.1:port` (and with TLS on `tls_port`).
pub struct Mosquitto {
    pub port: u16,
    /// A second listener speaking TLS with the test CA's server certificate
    /// ([`Mosquitto::start_tls`]).
    pub tls_port: Option<u16>,
    /// Declared before `dir`: the broker dies before its directory is removed.
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// A broker that forgets everything when it stops (`persistence false`).
    pub fn start() -> Mosquitto {
        Mosquitto::launch(false, None)
    }

    /// A broker that also listens with TLS (`listener PORT 127.0.0.1`, `cafile`,
    /// `certfile`, `keyfile`) on `tls_port`, its certificate signed by `ca`.
    pub fn start_tls(ca: &TestCa) -> Mosquitto {
        Mosquitto::launch(false, Some(ca))
    }

    /// A broker that saves sessions and queued messages to its directory on shutdown,
    /// so [`Mosquitto::restart`] keeps the daemon's persistent session.
    pub fn start_persistent() -> Mosquitto {
        Mosquitto::launch(true, None)
    }

    fn launch(persistent: bool, tls: Option<&TestCa>) -> Mosquitto {
        // Another test may take the free port between our probe and the broker's bind:
        // try a few ports before giving up.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("broker temp dir");
            let port = free_port();
            let tls = tls.map(|ca| (free_port(), ca));
            write_config(dir.path(), port, persistent, tls);
            let mut broker = Mosquitto {
                port,
                tls_port: tls.map(|(p, _)| p),
                proc: None,
                dir,
            };
            if broker.spawn() {
                return broker;
            }
        }
        panic!("mosquitto did not start on any of 5 free ports");
    }

    /// Starts the process and waits until it accepts connections; false when it exited
    /// instead (port taken).
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("open broker log");
        let log2 = log.try_clone().expect("clone broker log handle");
        let mut proc = Proc::spawn(
            "mosquitto",
            Command::new("mosquitto")
                .arg("-c")
                .arg(self.dir.path().join("mosquitto.conf"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2),
        );
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let up = wait_for(Duration::from_secs(10), "mosquitto to accept connections", || {
            if !proc.running() {
                return Some(false);
            }
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .then_some(true)
        });
        if up {
            self.proc = Some(proc);
        }
        up
    }

    /// `mqtt://127.0.0.1:PORT`, for the daemon's `[mqtt] url`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://localhost:TLS_PORT` (the name the test certificate carries).
    pub fn tls_url(&self) -> String {
        format!("mqtts://localhost:{}", self.tls_port.expect("started with start_tls"))
    }

    /// The broker's own log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker gracefully (SIGTERM: a persistent broker writes its database)
    /// and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped broker again on the same port, with the same directory.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "mosquitto is already running");
        // The port was ours a moment ago; only a slow release of the socket can delay
        // the bind, so retry for a while.
        wait_for(Duration::from_secs(10), "mosquitto to start again on its port", || {
            self.spawn().then_some(())
        });
    }

    /// Stops the broker gracefully and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.signal("TERM");
            let code = proc.wait_exit(Duration::from_secs(10));
            assert_eq!(code, Some(0), "mosquitto did not stop cleanly; log:\n{}", self.log());
        }
    }

    fn pub_cmd(&self, topic: &str, qos: u8) -> Command {
        mosquitto_pub(self.port, topic, qos)
    }

    /// The message retained on `topic`, if any (`mosquitto_sub` returns it at once).
    pub fn retained(&self, topic: &str) -> Option<String> {
        retained_at(self.port, topic)
    }

    /// Publishes one message with `mosquitto_pub` and waits until the broker has it
    /// (for QoS 1: acknowledged).
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        let out = self
            .pub_cmd(topic, qos)
            .args(["-m", payload])
            .output()
            .expect("run mosquitto_pub");
        assert!(
            out.status.success(),
            "mosquitto_pub -t {topic} -m {payload:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Publishes `payload` (any size, any bytes) as one message (`mosquitto_pub -f`) and
    /// waits until the broker has it.
    pub fn publish_bytes(&self, topic: &str, payload: &[u8], qos: u8) {
        let file = self.dir.path().join("payload.bin");
        std::fs::write(&file, payload).expect("write payload file");
        let out = self
            .pub_cmd(topic, qos)
            .arg("-f")
            .arg(&file)
            .output()
            .expect("run mosquitto_pub");
        assert!(
            out.status.success(),
            "mosquitto_pub -t {topic} -f ({} bytes) failed: {}",
            payload.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Publishes every line as one message (`mosquitto_pub -l`) and waits until done.
    pub fn publish_lines(&self, topic: &str, lines: &[String], qos: u8) {
        let mut publisher = self.spawn_publish_lines(topic, lines, qos);
        let code = publisher.wait_exit(Duration::from_secs(60));
        assert_eq!(code, Some(0), "mosquitto_pub -l -t {topic} failed");
    }

    /// Starts publishing every line as one message (`mosquitto_pub -l`) in the
    /// background; wait for the returned process to know when the broker has them all.
    pub fn spawn_publish_lines(&self, topic: &str, lines: &[String], qos: u8) -> Proc {
        let file = self.lines_file(lines);
        Proc::spawn(
            "mosquitto_pub -l",
            self.pub_cmd(topic, qos)
                .arg("-l")
                .stdin(File::open(&file).expect("open lines file"))
                .stdout(Stdio::null()),
        )
    }

    fn lines_file(&self, lines: &[String]) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = self
            .dir
            .path()
            .join(format!("lines-{}.txt", N.fetch_add(1, Ordering::Relaxed)));
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).expect("write lines file");
        path
    }
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT -t TOPIC -q QOS`, to any broker.
pub fn mosquitto_pub(port: u16, topic: &str, qos: u8) -> Command {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        topic,
        "-q",
        &qos.to_string(),
    ]);
    cmd
}

/// The message retained on `topic` at the broker on `port`, if any (`mosquitto_sub`
/// returns it at once).
pub fn retained_at(port: u16, topic: &str) -> Option<String> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "2",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn write_config(dir: &Path, port: u16, persistent: bool, tls: Option<(u16, &TestCa)>) {
    let mut conf = format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nlog_dest stderr\n");
    if let Some((tls_port, ca)) = tls {
        conf.push_str(&format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            ca.ca.display(),
            ca.cert.display(),
            ca.key.display()
        ));
    }
    if persistent {
        conf.push_str(&format!(
            "persistence true\npersistence_location {}/\nautosave_interval 0\n",
            dir.display()
        ));
    } else {
        conf.push_str("persistence false\n");
    }
    // As root Mosquitto drops to the `mosquitto` user, who cannot write our temp dir.
    if running_as_root() {
        conf.push_str("user root\n");
    }
    std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
}

/// True when the tests run as root (Mosquitto then drops to its own user unless told
/// `user root`).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
