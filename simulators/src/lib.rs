//! Device simulators for cryowatch: an LN2 dewar controller, a -80 °C freezer and a
//! UPS/ATS over Modbus TCP and RTU, plus freezers publishing MQTT telemetry, a GSM
//! modem ([`modem`]) and a bus of LN2 freezer controllers speaking a text protocol
//! ([`tec`]). Each
//! device runs a [`Scenario`] (steady, warm-up, lid open, power loss, probe fault,
//! silent) that can be switched while running, through the control port or a
//! [`SimHandle`]. See README.md for the register map and the control protocol.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cfg = cryosim::SimConfig {
//!     modbus_tcp: Some("127.0.0.1:0".parse()?),
//!     ..cryosim::SimConfig::default()
//! };
//! let sim = cryosim::Sim::start(cfg).await?;
//! println!("modbus on {:?}", sim.modbus_tcp_addr());
//! sim.set_scenario("dewar-1", "warmup:2.0".parse().map_err(anyhow::Error::msg)?)?;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod control;
pub mod devices;
pub mod lab;
mod modbus;
pub mod modem;
pub mod mqtt;
pub mod scenario;
pub mod tec;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use devices::{DEVICES, DeviceInfo};
pub use scenario::{Kind, Reading, Scenario};

use lab::SharedLab;

/// What to simulate and where to serve it. Every endpoint is optional.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Modbus TCP listen address (port 0: pick a free port).
    pub modbus_tcp: Option<SocketAddr>,
    /// Serial line to serve Modbus RTU on (e.g. one end of a socat pty pair).
    pub modbus_rtu: Option<PathBuf>,
    /// Baud rate of the RTU line (8N1).
    pub rtu_baud: u32,
    /// MQTT broker, `mqtt://[user[:pass]@]host[:port]`.
    pub mqtt_url: Option<String>,
    /// How often each MQTT device publishes.
    pub mqtt_interval: Duration,
    /// Control port listen address (port 0: pick a free port).
    pub control: Option<SocketAddr>,
    /// Scenarios to start with, per device name (`all` for every device); others run `steady`.
    pub scenario: Vec<(String, Scenario)>,
    /// Add ±0.05 variations to temperatures and levels (for demos). Off: exact constants.
    pub noise: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            modbus_tcp: None,
            modbus_rtu: None,
            rtu_baud: 9600,
            mqtt_url: None,
            mqtt_interval: Duration::from_secs(5),
            control: None,
            scenario: Vec::new(),
            noise: false,
        }
    }
}

/// Entry point; see [`Sim::start`].
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Bind every configured endpoint, apply the initial scenarios and start serving
    /// in background tasks. Fails if an address cannot be bound, the serial line cannot
    /// be opened, the MQTT URL is malformed or a scenario names an unknown device.
    /// The broker itself need not be up: the publisher connects and reconnects on its own.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
        let now = Instant::now();
        let lab = SharedLab::new(cfg.noise, now);
        for (device, scenario) in &cfg.scenario {
            lab.lock()
                .set(device, *scenario, now)
                .map_err(|e| anyhow::anyhow!("initial scenario {device}={scenario}: {e}"))?;
        }
        if let Some(url) = &cfg.mqtt_url {
            mqtt::options(url, "cryosim")?;
        }

        let mut tasks = JoinSet::new();
        let mut handle = SimHandle {
            lab: lab.clone(),
            modbus_tcp: None,
            modbus_rtu: cfg.modbus_rtu.clone(),
            mqtt_url: cfg.mqtt_url.clone(),
            control: None,
            tasks: JoinSet::new(),
        };
        if let Some(addr) = cfg.modbus_tcp {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for Modbus TCP on {addr}"))?;
            handle.modbus_tcp = Some(listener.local_addr()?);
            tasks.spawn(modbus::serve_tcp(listener, lab.clone()));
        }
        if let Some(addr) = cfg.control {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for control on {addr}"))?;
            handle.control = Some(listener.local_addr()?);
            tasks.spawn(control::serve(listener, lab.clone()));
        }
        if let Some(path) = cfg.modbus_rtu {
            let serial = modbus::open_serial(&path, cfg.rtu_baud)?;
            tasks.spawn(modbus::serve_rtu(path, cfg.rtu_baud, serial, lab.clone()));
        }
        if let Some(url) = cfg.mqtt_url {
            tasks.spawn(mqtt::run(url, cfg.mqtt_interval, lab.clone()));
        }
        handle.tasks = tasks;
        tracing::info!("{}", handle.ready_line());
        Ok(handle)
    }
}

/// A running simulator. Dropping it stops every server (use [`SimHandle::shutdown`]
/// to wait until they are gone).
#[derive(Debug)]
pub struct SimHandle {
    lab: SharedLab,
    modbus_tcp: Option<SocketAddr>,
    modbus_rtu: Option<PathBuf>,
    mqtt_url: Option<String>,
    control: Option<SocketAddr>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl SimHandle {
    /// The bound Modbus TCP address (the real port when 0 was asked for).
    pub fn modbus_tcp_addr(&self) -> Option<SocketAddr> {
        self.modbus_tcp
    }

    /// The bound control port address.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// One line naming every served endpoint, space separated `key=value` after the
    /// word `ready`; keys appear in this order and only when configured:
    /// `ready modbus_tcp=127.0.0.1:40123 modbus_rtu=/tmp/t/ttyB mqtt=mqtt://127.0.0.1:1883 control=127.0.0.1:40124`
    pub fn ready_line(&self) -> String {
        let mut line = String::from("ready");
        if let Some(a) = self.modbus_tcp {
            line += &format!(" modbus_tcp={a}");
        }
        if let Some(p) = &self.modbus_rtu {
            line += &format!(" modbus_rtu={}", p.display());
        }
        if let Some(u) = &self.mqtt_url {
            line += &format!(" mqtt={u}");
        }
        if let Some(a) = self.control {
            line += &format!(" control={a}");
        }
        line
    }

    /// Switch `device` (or `all`) to `scenario` now, exactly like the control port's `set`.
    pub fn set_scenario(&self, device: &str, scenario: Scenario) -> anyhow::Result<()> {
        self.lab
            .lock()
            .set(device, scenario, Instant::now())
            .map_err(anyhow::Error::msg)
    }

    /// The current scenario of `device`.
    pub fn scenario(&self, device: &str) -> Option<Scenario> {
        let idx = devices::find(device)?;
        Some(self.lab.lock().scenario(idx))
    }

    /// What `device` serves right now.
    pub fn reading(&self, device: &str) -> Option<Reading> {
        let idx = devices::find(device)?;
        Some(self.lab.lock().reading(idx, Instant::now()))
    }

    /// The control port's `get` answer for `device`.
    pub fn get(&self, device: &str) -> Option<serde_json::Value> {
        let idx = devices::find(device)?;
        Some(self.lab.lock().json(idx, Instant::now()))
    }

    /// Resolves only if a server task stops on its own, with the reason. Servers retry
    /// transient failures themselves, so normally this never resolves.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            None => std::future::pending().await,
            Some(Ok(Ok(()))) => anyhow::anyhow!("a simulator task stopped"),
            Some(Ok(Err(err))) => err,
            Some(Err(err)) => anyhow::Error::new(err).context("a simulator task failed"),
        }
    }

    /// Stop every server and wait until they are gone (listeners closed, serial line
    /// released, MQTT connection dropped).
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        tracing::info!("simulators stopped");
    }
}

/// Run the simulators until `shutdown` resolves (or a server fails).
pub async fn run(cfg: SimConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut sim = Sim::start(cfg).await?;
    let result = tokio::select! {
        () = shutdown => Ok(()),
        err = sim.failed() => Err(err),
    };
    sim.shutdown().await;
    result
}
