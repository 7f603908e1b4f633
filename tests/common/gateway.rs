//! A Modbus TCP gateway that serves one client at a time (as many RS-485-to-TCP
//! converters do), made of socat in front of a Modbus server; and modbus-tk, a second
//! independent Modbus server that serves several units on one TCP port
//! (tests/peers/modbus_tk_server.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::smtp::ready_line;
use super::{Proc, free_port, python, tests_dir, wait_for};

/// `socat TCP-LISTEN:PORT,fork,max-children=N,reuseaddr TCP:UPSTREAM`: at most `N`
/// clients are relayed at once; further connections wait in the listen backlog,
/// unanswered, until one of them closes.
pub struct Gateway {
    /// `127.0.0.1:PORT` the clients connect to.
    pub address: String,
    pub port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl Gateway {
    /// Starts the gateway in front of `upstream` (`host:port`), relaying at most
    /// `max_clients` connections at once; returns once it listens.
    pub fn start(dir: &Path, upstream: &str, max_clients: u32) -> Gateway {
        let port = free_port();
        let log = dir.join(format!("gateway-{port}.log"));
        let err = std::fs::File::create(&log).expect("create the socat log");
        let mut proc = Proc::spawn(
            "socat gateway",
            Command::new("socat")
                .arg("-d")
                .arg(format!(
                    "TCP-LISTEN:{port},bind=127.0.0.1,fork,max-children={max_clients},reuseaddr"
                ))
                .arg(format!("TCP:{upstream}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err),
        );
        // Listening is checked without connecting: a probe would take the one client slot.
        wait_for(Duration::from_secs(5), "socat to listen", || {
            assert!(
                proc.running(),
                "socat exited: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            (!connections(&format!("sport = :{port}"), "-ltn").is_empty()).then_some(())
        });
        Gateway {
            address: format!("127.0.0.1:{port}"),
            port,
            log,
            _proc: proc,
        }
    }

    /// Established client connections to the gateway right now, counted on the client
    /// side: the ones relayed and the ones waiting in the backlog.
    pub fn clients(&self) -> usize {
        connections(&format!("dport = :{}", self.port), "-tn")
            .iter()
            .filter(|l| l.starts_with("ESTAB"))
            .count()
    }

    /// socat's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `ss -H FLAGS FILTER`, one line per socket.
fn connections(filter: &str, flags: &str) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-H", flags, filter])
        .output()
        .expect("run ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// One point a modbus-tk unit serves, with the value cryowatch must record.
#[derive(Debug, Clone)]
pub struct TkPoint {
    pub unit: u8,
    pub id: String,
    pub register: String,
    pub address: u16,
    pub data_type: String,
    pub value: f64,
}

/// A running `modbus_tk_server.py`, killed when dropped.
pub struct ModbusTk {
    /// `host:port` it serves on.
    pub tcp: String,
    pub points: Vec<TkPoint>,
    log: PathBuf,
    _proc: Proc,
}

impl ModbusTk {
    /// Serves `units` on a free loopback port; any other unit gets no answer.
    pub fn start(dir: &Path, units: &[u8]) -> ModbusTk {
        let manifest = dir.join("modbus-tk.json");
        let log = dir.join("modbus-tk.log");
        let err = std::fs::File::create(&log).expect("create the modbus-tk log");
        let units: Vec<String> = units.iter().map(u8::to_string).collect();
        let mut proc = Proc::spawn(
            "modbus-tk",
            Command::new(python())
                .arg(tests_dir().join("peers/modbus_tk_server.py"))
                .args(["--tcp", "127.0.0.1:0", "--units", &units.join(","), "--manifest"])
                .arg(&manifest)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err),
        );
        let line = ready_line(&mut proc);
        assert!(
            line.starts_with("ready "),
            "modbus_tk_server.py did not get ready (line {line:?}); is modbus-tk installed? (bash tests/run.sh)\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).expect("read the modbus-tk manifest"))
            .expect("parse the modbus-tk manifest");
        let points = m["points"]
            .as_array()
            .expect("manifest points")
            .iter()
            .map(|p| TkPoint {
                unit: p["unit"].as_u64().and_then(|u| u8::try_from(u).ok()).expect("unit"),
                id: p["id"].as_str().expect("id").to_string(),
                register: p["register"].as_str().expect("register").to_string(),
                address: p["address"]
                    .as_u64()
                    .and_then(|a| u16::try_from(a).ok())
                    .expect("address"),
                data_type: p["type"].as_str().expect("type").to_string(),
                value: p["value"].as_f64().expect("value"),
            })
            .collect();
        ModbusTk {
            tcp: m["tcp"].as_str().expect("manifest tcp").to_string(),
            points,
            log,
            _proc: proc,
        }
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
