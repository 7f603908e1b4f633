//! A real RabbitMQ 3.10 with its MQTT plugin (MQTT 3.1.1), beside Mosquitto: loopback
//! ports of its own (AMQP, MQTT, Erlang distribution, epmd), node name, database, logs
//! and config under a temporary directory, memory bounded, anonymous MQTT allowed (as
//! the default user `guest`, from loopback).
//!
//! RabbitMQ takes several seconds to boot, so a test binary starts one with
//! [`shared`] and its tests take turns on it (each with its own client id and topics).
//! The broker runs under a small shell that stops it when told to on its standard input
//! or when that input closes: a test binary that exits or dies leaves no broker behind.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::mosquitto::mosquitto_pub;
use super::{Proc, free_port, wait_for};

/// How long a boot may take on a busy machine (about 13 s on an idle one).
const BOOT: Duration = Duration::from_secs(90);

/// Starts epmd and the broker, then waits for a line (or the end) on standard input and
/// stops both.
const SUPERVISE: &str = r#"epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 &
epmd_pid=$!
/usr/lib/rabbitmq/bin/rabbitmq-server &
server_pid=$!
read -r _ || true
kill -TERM "$server_pid" 2>/dev/null
wait "$server_pid"
kill -TERM "$epmd_pid" 2>/dev/null
wait "$epmd_pid"
exit 0
"#;

/// A running RabbitMQ whose MQTT listener is `127.0.0.1:port`.
pub struct RabbitMq {
    pub port: u16,
    amqp_port: u16,
    dist_port: u16,
    epmd_port: u16,
    /// Declared before `dir`: the broker stops before its directory is removed.
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

static SHARED: Mutex<Option<RabbitMq>> = Mutex::new(None);

/// The test binary's RabbitMQ, started at the first call; the guard gives the calling
/// test the broker to itself (a test that restarts it disturbs no other).
pub fn shared() -> MutexGuard<'static, Option<RabbitMq>> {
    let mut guard = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if guard.as_mut().is_none_or(|b| !b.running()) {
        *guard = Some(RabbitMq::start());
    }
    guard
}

impl RabbitMq {
    /// Starts a broker on free ports and waits until its MQTT listener accepts
    /// connections.
    pub fn start() -> RabbitMq {
        let dir = tempfile::tempdir().expect("rabbitmq temp dir");
        let mut broker = RabbitMq {
            port: free_port(),
            amqp_port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            proc: None,
            dir,
        };
        broker.write_config();
        broker.start_again();
        broker
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{amqp}\n\
             mqtt.listeners.tcp.1 = 127.0.0.1:{mqtt}\n\
             mqtt.allow_anonymous = true\n\
             vm_memory_high_watermark.absolute = 256MB\n\
             disk_free_limit.absolute = 50MB\n\
             log.console = true\n\
             log.console.level = info\n\
             log.file = false\n",
            amqp = self.amqp_port,
            mqtt = self.port,
        );
        std::fs::write(d.join("rabbitmq.conf"), conf).expect("write rabbitmq.conf");
        // The plugin enabled offline, before the first boot.
        std::fs::write(d.join("enabled_plugins"), "[rabbitmq_mqtt].\n").expect("write enabled_plugins");
        std::fs::write(d.join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
    }

    /// Starts the broker (again, with the same ports, node and database) and waits until
    /// it accepts MQTT connections.
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "rabbitmq is already running");
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("rabbitmq.log"))
            .expect("open rabbitmq log");
        let log2 = log.try_clone().expect("clone rabbitmq log handle");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SUPERVISE)
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", format!("cw{}@localhost", self.port))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"))
            // The Erlang VM replaces the start script: the broker's pid is the one the
            // supervising shell stops.
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2);
        let mut proc = Proc::spawn("rabbitmq-server (install the Debian package rabbitmq-server)", &mut cmd);
        let port = self.port;
        let up = wait_for(BOOT, "rabbitmq to accept MQTT connections", || {
            if !proc.running() {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok().then_some(true)
        });
        assert!(up, "rabbitmq exited while starting; log:\n{}", self.log());
        self.proc = Some(proc);
    }

    /// Stops the broker gracefully (its durable queues, the MQTT persistent sessions,
    /// are kept) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            if let Some(stdin) = proc.child.stdin.as_mut() {
                let _ = stdin.write_all(b"stop\n");
            }
            let code = proc.wait_exit(Duration::from_secs(60));
            assert_eq!(code, Some(0), "rabbitmq did not stop cleanly; log:\n{}", self.log());
        }
    }

    /// Stops the broker and starts it again on the same ports with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::running)
    }

    /// `mqtt://127.0.0.1:PORT`, for the daemon's `[mqtt] url`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rabbitmq.log")).unwrap_or_default()
    }

    /// Publishes one message with `mosquitto_pub` and waits until the broker has it.
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        let out = mosquitto_pub(self.port, topic, qos)
            .args(["-m", payload])
            .output()
            .expect("run mosquitto_pub");
        assert!(
            out.status.success(),
            "mosquitto_pub to rabbitmq -t {topic} -m {payload:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Publishes every line as one message (`mosquitto_pub -l`) and waits until done.
    pub fn publish_lines(&self, topic: &str, lines: &[String], qos: u8) {
        let file = self.dir.path().join(format!("lines-{topic}.txt").replace('/', "_"));
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&file, text).expect("write lines file");
        let out = mosquitto_pub(self.port, topic, qos)
            .arg("-l")
            .stdin(std::fs::File::open(&file).expect("open lines file"))
            .output()
            .expect("run mosquitto_pub -l");
        assert!(
            out.status.success(),
            "mosquitto_pub -l to rabbitmq -t {topic} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The message retained on `topic` (an exact topic: RabbitMQ 3.10 sends retained
    /// messages only to subscriptions without wildcards), if any.
    pub fn retained(&self, topic: &str) -> Option<String> {
        super::mosquitto::retained_at(self.port, topic)
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // Gracefully when possible: a SIGKILL of the supervising shell would leave the
        // Erlang VM running.
        if let Some(proc) = self.proc.as_mut()
            && let Some(stdin) = proc.child.stdin.as_mut()
        {
            let _ = stdin.write_all(b"stop\n");
            let _ = proc.child.stdin.take();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while proc.running() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
