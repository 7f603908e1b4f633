//! `deploy/`: the Compose stack's files are all there, and its Mosquitto configuration,
//! with `deploy/mosquitto-cryowatch.conf`, runs in the real broker: it asks for a
//! password, and it keeps more than Mosquitto's default 1000 queued messages for
//! cryowatch's persistent session while cryowatch is away.

mod common;

use common::mosquitto::running_as_root;
use common::{Proc, free_port, tests_dir, wait_for};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn deploy() -> std::path::PathBuf {
    tests_dir().join("../deploy")
}

#[test]
fn every_file_the_compose_stack_mounts_is_in_the_repository() {
    let stack = deploy().join("stack");
    let compose = std::fs::read_to_string(stack.join("compose.yaml")).expect("read compose.yaml");
    let mut mounts = 0;
    for line in compose.lines() {
        let item = line.trim().trim_start_matches("- ").trim_matches('"');
        let Some((source, _)) = item.split_once(':') else {
            continue;
        };
        if !(source.starts_with("./") || source.starts_with("../")) {
            continue;
        }
        mounts += 1;
        // The broker's password file is made by the administrator (README.md of the stack).
        if source == "./mosquitto/passwd" {
            let ignore = std::fs::read_to_string(stack.join(".gitignore")).expect("read .gitignore");
            assert!(
                ignore.lines().any(|l| l == "mosquitto/passwd"),
                "the password file must stay out of git"
            );
            continue;
        }
        assert!(
            stack.join(source).exists(),
            "compose.yaml mounts {source}, which is missing"
        );
    }
    assert!(mounts >= 5, "only {mounts} bind mounts found in compose.yaml");
    for service in ["mosquitto:", "influxdb:", "grafana:"] {
        assert!(
            compose.lines().any(|l| l.trim() == service),
            "compose.yaml has no {service}"
        );
    }
}

/// The stack's mosquitto.conf with its container paths moved under `dir` and its
/// listener on a loopback port.
fn broker_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let conf = std::fs::read_to_string(deploy().join("stack/mosquitto/mosquitto.conf")).expect("read mosquitto.conf");
    assert!(conf.contains("listener 1883\n"), "the stack's broker listens on 1883");
    let mut text = conf
        .replace("listener 1883\n", &format!("listener {port} 127.0.0.1\n"))
        .replace("/mosquitto/config/", &format!("{}/", dir.display()))
        .replace("/mosquitto/data/", &format!("{}/data/", dir.display()))
        .replace("log_dest stdout", "log_dest stderr");
    if running_as_root() {
        // As root Mosquitto drops to its own user, who cannot read our temp dir.
        text.push_str("user root\n");
    }
    std::fs::create_dir_all(dir.join("conf.d")).expect("conf.d");
    std::fs::create_dir_all(dir.join("data")).expect("data");
    std::fs::copy(
        deploy().join("mosquitto-cryowatch.conf"),
        dir.join("conf.d/cryowatch.conf"),
    )
    .expect("copy conf");
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(dir.join("passwd"))
        .args(["cryowatch", "deploy-test-password"])
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed");
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, text).expect("write mosquitto.conf");
    path
}

fn publish(port: u16, auth: bool, topic: &str, payloads: &[String]) -> bool {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-l"]);
    if auth {
        cmd.args(["-u", "cryowatch", "-P", "deploy-test-password"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mosquitto_pub");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        for p in payloads {
            if writeln!(stdin, "{p}").is_err() {
                break;
            }
        }
    }
    child.wait().map(|s| s.success()).unwrap_or(false)
}

/// Connects the persistent session `id` and returns what it receives in `window`.
fn drain(port: u16, id: &str, window: Duration) -> Vec<String> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-c", "-i", id])
        .args(["-u", "cryowatch", "-P", "deploy-test-password", "-t", "lab/#"])
        .args(["-W", &window.as_secs().to_string()])
        .output()
        .expect("run mosquitto_sub");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_stack_broker_asks_for_a_password_and_keeps_a_deep_queue_for_cryowatch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let conf = broker_config(dir.path(), port);
    let log = std::fs::File::create(dir.path().join("mosquitto.log")).expect("log");
    let mut broker = Proc::spawn(
        "mosquitto",
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log),
    );
    let broker_log = || std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default();
    wait_for(Duration::from_secs(10), "the stack's mosquitto to listen", || {
        assert!(
            broker.running(),
            "mosquitto refused the stack's configuration:\n{}",
            broker_log()
        );
        TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // Without the password: refused.
    assert!(
        !publish(port, false, "lab/x", &["1".to_string()]),
        "an anonymous client could publish:\n{}",
        broker_log()
    );
    // cryowatch's persistent session subscribes, then goes away (a restart, an upgrade).
    let first = drain(port, "cryowatch-deploy", Duration::from_secs(1));
    assert!(first.is_empty(), "nothing was published yet: {first:?}");
    let sent: Vec<String> = (0..2500).map(|i| format!("{i}")).collect();
    assert!(
        publish(port, true, "lab/freezer-7/temp", &sent),
        "publishing with the password failed"
    );
    // Back: every message queued meanwhile arrives, beyond the default limit of 1000.
    let got = drain(port, "cryowatch-deploy", Duration::from_secs(3));
    assert_eq!(
        got.len(),
        sent.len(),
        "the broker kept {} of {} queued messages:\n{}",
        got.len(),
        sent.len(),
        broker_log()
    );
    assert_eq!(got, sent, "queued messages arrive in order");
}
