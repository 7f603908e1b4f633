//! pymodbus as an independent Modbus peer: `tests/peers/modbus_server.py` serves one
//! device over TCP or RTU and writes a manifest of every point it serves and the
//! reading cryowatch must record for it. The values are encoded by Python, not by our
//! decoder, so the tests compare two independent implementations.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{Proc, python, tests_dir};

/// What cryowatch must record for a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// `good`, `sensor_fault` or `comm_error`.
    pub quality: String,
    /// `None` unless the quality is good.
    pub value: Option<f64>,
    /// Relative tolerance (0: exact). Non-zero for f32 and scaled values.
    pub tolerance: f64,
}

impl Expect {
    /// Whether `got` is the expected value.
    pub fn matches(&self, got: Option<f64>) -> bool {
        match (self.value, got) {
            (None, None) => true,
            (Some(want), Some(got)) if self.tolerance == 0.0 => want == got,
            (Some(want), Some(got)) => (want - got).abs() <= self.tolerance * want.abs().max(1.0),
            _ => false,
        }
    }
}

/// One point the peer serves.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: String,
    /// `coil`, `discrete`, `holding` or `input`.
    pub register: String,
    pub address: u16,
    /// `u16` … `f64`, `bool`.
    pub data_type: String,
    pub byte_order: Option<String>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    pub fault_values: Vec<f64>,
    pub expect: Expect,
}

impl Point {
    /// A `[[sensor]]` table reading this point from `device`, for asset `asset`.
    pub fn sensor_toml(&self, device: &str, asset: &str) -> String {
        let mut t = format!(
            "[[sensor]]\nid = \"{}\"\nasset = \"{asset}\"\nquantity = \"other\"\nunit = \"raw\"\n\
             [sensor.modbus]\ndevice = \"{device}\"\nregister = \"{}\"\naddress = {}\ntype = \"{}\"\n",
            self.id, self.register, self.address, self.data_type
        );
        if let Some(o) = &self.byte_order {
            t += &format!("byte_order = \"{o}\"\n");
        }
        if let Some(s) = self.scale {
            t += &format!("scale = {s:?}\n");
        }
        if let Some(o) = self.offset {
            t += &format!("offset = {o:?}\n");
        }
        if !self.fault_values.is_empty() {
            let vs: Vec<String> = self.fault_values.iter().map(|v| format!("{v:?}")).collect();
            t += &format!("fault_values = [{}]\n", vs.join(", "));
        }
        t + "\n"
    }
}

/// A running `modbus_server.py`, killed when dropped.
pub struct PyModbus {
    pub proc: Proc,
    /// `host:port` when serving TCP.
    pub tcp: Option<String>,
    /// The serial device when serving RTU.
    pub rtu: Option<PathBuf>,
    pub unit: u8,
    pub points: Vec<Point>,
    log: PathBuf,
}

impl PyModbus {
    /// Serves Modbus TCP on a free loopback port; files go under `dir`.
    pub fn tcp(dir: &Path) -> PyModbus {
        Self::tcp_on(dir, "127.0.0.1:0")
    }

    /// Serves Modbus TCP on `address` (`host:port`).
    pub fn tcp_on(dir: &Path, address: &str) -> PyModbus {
        start(dir, &["--tcp", address], "pymodbus-tcp")
    }

    /// Serves the same map as each of `units` over Modbus TCP on a free loopback port, as
    /// a gateway in front of identical devices; requests for other units get no answer.
    pub fn tcp_units(dir: &Path, units: &[u8]) -> PyModbus {
        let units: Vec<String> = units.iter().map(u8::to_string).collect();
        start(
            dir,
            &["--tcp", "127.0.0.1:0", "--units", &units.join(",")],
            "pymodbus-tcp",
        )
    }

    /// Serves Modbus RTU on `serial` (one end of a pty pair) as unit `unit`. Requests
    /// for other units get no answer.
    pub fn rtu(dir: &Path, serial: &Path, unit: u8) -> PyModbus {
        let serial = serial.display().to_string();
        let unit = unit.to_string();
        start(dir, &["--rtu", &serial, "--unit", &unit], "pymodbus-rtu")
    }

    /// The point called `id` (panics if the peer does not serve it).
    pub fn point(&self, id: &str) -> &Point {
        self.points
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("the manifest has no point {id:?}"))
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start(dir: &Path, args: &[&str], name: &str) -> PyModbus {
    let manifest = dir.join(format!("{name}.json"));
    let log = dir.join(format!("{name}.log"));
    let err = std::fs::File::create(&log).expect("create pymodbus log");
    let mut proc = Proc::spawn(
        name,
        Command::new(python())
            .arg(tests_dir().join("peers/modbus_server.py"))
            .args(args)
            .arg("--manifest")
            .arg(&manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err),
    );
    // Read the ready line on a thread so a hung interpreter fails the test instead of
    // blocking it forever.
    let stdout = proc.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    if !line.starts_with("ready ") {
        let _ = proc.child.kill();
        panic!(
            "{name} did not get ready (line {line:?}); is pymodbus installed? (bash tests/run.sh)\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let text = std::fs::read_to_string(&manifest).expect("read the pymodbus manifest");
    let m: Value = serde_json::from_str(&text).expect("parse the pymodbus manifest");
    let points = m["points"]
        .as_array()
        .expect("manifest points")
        .iter()
        .map(parse_point)
        .collect();
    PyModbus {
        proc,
        tcp: m["tcp"].as_str().map(str::to_string),
        rtu: m["rtu"].as_str().map(PathBuf::from),
        unit: m["unit"]
            .as_u64()
            .and_then(|u| u8::try_from(u).ok())
            .expect("manifest unit"),
        points,
        log,
    }
}

fn parse_point(v: &Value) -> Point {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    let e = &v["expect"];
    Point {
        id: s("id").expect("point id"),
        register: s("register").expect("point register"),
        address: v["address"]
            .as_u64()
            .and_then(|a| u16::try_from(a).ok())
            .expect("address"),
        data_type: s("type").expect("point type"),
        byte_order: s("byte_order"),
        scale: v["scale"].as_f64(),
        offset: v["offset"].as_f64(),
        fault_values: v["fault_values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default(),
        expect: Expect {
            quality: e["quality"].as_str().expect("expected quality").to_string(),
            value: e["value"].as_f64(),
            tolerance: e["tolerance"].as_f64().unwrap_or(0.0),
        },
    }
}
