//! `cryowatch demo`: the device simulators and the daemon in one process, with an
//! embedded store in a temporary (or given) directory. Needs no broker and no setup.
//!
//! The simulated lab is `config/demo.toml`: an LN2 dewar controller, a -80 °C freezer
//! and a UPS with generator transfer, all over Modbus TCP on a free loopback port. The
//! demo writes that configuration (pointed at the port the simulator got) into the demo
//! directory, so every other command works on the same data while the demo runs and
//! after it stops.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use cryosim::{Scenario, Sim, SimConfig, SimHandle};

use crate::config;
use crate::daemon::Daemon;
use crate::model::now_ms;
use crate::report::status;
use crate::store::Store;

/// The demo lab's configuration, as shipped in `config/demo.toml`.
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
/// The Modbus address written in `config/demo.toml`, replaced by the simulator's.
const DEMO_ADDRESS: &str = "127.0.0.1:15020";

/// How often the demo prints the newest readings.
const SHOW_EVERY: Duration = Duration::from_secs(5);

/// The scripted story: after how long which device switches to which scenario, and why.
const STORY: &[(u64, &str, &str, &str)] = &[
    (
        20,
        "dewar-1",
        "warmup:6",
        "dewar-1 loses its LN2 supply and warms at 6 °C/min",
    ),
    (
        40,
        "ups-1",
        "power-loss",
        "mains power is lost: the UPS goes on battery, the generator follows",
    ),
];

pub async fn run(dir: Option<PathBuf>, duration: Option<Duration>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating the demo directory {}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("cryowatch-demo-")
            .tempdir()
            .context("creating a temporary demo directory")?
            .keep(),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);

    let sim = Sim::start(SimConfig {
        modbus_tcp: Some(([127, 0, 0, 1], 0).into()),
        control: Some(([127, 0, 0, 1], 0).into()),
        noise: true,
        ..SimConfig::default()
    })
    .await
    .context("starting the device simulators")?;
    let modbus = sim
        .modbus_tcp_addr()
        .context("the simulator did not open its Modbus port")?;
    let control = sim
        .control_addr()
        .context("the simulator did not open its control port")?;

    let config_path = dir.join("cryowatch.toml");
    let text = DEMO_CONFIG.replace(DEMO_ADDRESS, &modbus.to_string());
    std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
    let config = config::load(&config_path).map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?;

    let daemon = Daemon::start(&config)?;
    print!(
        "{}",
        banner(
            &dir,
            &config_path,
            &config.store.path,
            &modbus.to_string(),
            &control.to_string(),
            duration
        )
    );

    let outcome = drive(&sim, &config, duration).await;

    daemon.stop().await;
    sim.shutdown().await;
    let stored = Store::open_read_only(&config.store.path)
        .and_then(|s| s.count())
        .unwrap_or(0);
    let cfg = config_path.display();
    println!();
    println!("demo stopped: {stored} readings in {}", config.store.path.display());
    println!("look at them with:");
    println!("  cryowatch status  -c {cfg}");
    println!("  cryowatch history -c {cfg} --sensor dewar-1.temp --from -1h");
    println!("  cryowatch alarms  -c {cfg}");
    outcome
}

/// Prints the newest readings every few seconds and plays the story until Ctrl-C,
/// SIGTERM or the end of `--for`.
async fn drive(sim: &SimHandle, config: &config::Config, duration: Option<Duration>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let start = tokio::time::Instant::now();
    let end = duration.and_then(|d| start.checked_add(d));
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(3), SHOW_EVERY);
    let mut story = STORY.iter().peekable();
    loop {
        let next_story = story.peek().map(|(at, ..)| start + Duration::from_secs(*at));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = sleep_until_opt(end) => return Ok(()),
            _ = sleep_until_opt(next_story) => {
                if let Some((_, device, scenario, what)) = story.next() {
                    let parsed: Scenario = scenario.parse().map_err(|e| anyhow::anyhow!("demo story: {e}"))?;
                    sim.set_scenario(device, parsed)?;
                    println!("\n>>> {what} (cryosim: set {device} {scenario})\n");
                }
            }
            _ = tick.tick() => {
                match snapshot(config) {
                    Ok(text) => print!("{text}"),
                    Err(e) => println!("cannot read the store yet: {e:#}"),
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The sensors the live view shows, out of the demo lab's eighteen.
const SHOWN: &[&str] = &[
    "dewar-1.temp",
    "dewar-1.level",
    "dewar-1.lid",
    "freezer-7.temp",
    "freezer-7.door",
    "ups-1.on_battery",
    "ups-1.generator",
    "ups-1.charge",
];

/// One block of the live view: a line per shown sensor, read back from the store.
fn snapshot(config: &config::Config) -> anyhow::Result<String> {
    let store = Store::open_read_only(&config.store.path)?;
    let rows = status::gather(config, &store, now_ms())?;
    let total = store.count()?;
    let mut out = String::new();
    let clock = jiff::Timestamp::now().strftime("%H:%M:%S");
    let _ = writeln!(out, "{clock}  {total} readings stored");
    for r in rows.iter().filter(|r| SHOWN.contains(&r.sensor.as_str())) {
        let value = r.value.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  {:<18} {:>8} {:<10} {}", r.sensor, value, r.unit, r.state);
    }
    let open = store.alarms(true)?;
    for a in &open {
        let incident = a.incident.map(|i| format!(" (power incident {i})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  ALARM {:>3} {:<8} {:<13} {} on {}{incident}",
            a.id, a.severity, a.state, a.rule, a.sensor
        );
    }
    Ok(out)
}

fn banner(dir: &Path, config: &Path, store: &Path, modbus: &str, control: &str, duration: Option<Duration>) -> String {
    let cfg = config.display();
    let until = match duration {
        Some(d) => format!("for {}", humantime::format_duration(d)),
        None => "until Ctrl-C".to_string(),
    };
    let mut b = String::new();
    let _ = writeln!(
        b,
        "cryowatch demo: a simulated LN2 dewar, -80 °C freezer and UPS, polled over Modbus TCP"
    );
    let _ = writeln!(b, "  directory   {}", dir.display());
    let _ = writeln!(b, "  config      {cfg}");
    let _ = writeln!(
        b,
        "  store       {}  (SQLite; every reading lands here)",
        store.display()
    );
    let _ = writeln!(b, "  simulators  Modbus TCP {modbus}, control {control}");
    let _ = writeln!(b, "running {until}. The story:");
    for (at, _, _, what) in STORY {
        let _ = writeln!(b, "  after {at:>2} s  {what}");
    }
    let _ = writeln!(b, "In another terminal, while it runs or after:");
    let _ = writeln!(b, "  cryowatch status  -c {cfg}");
    let _ = writeln!(b, "  cryowatch history -c {cfg} --sensor dewar-1.temp --from -10m");
    let _ = writeln!(b, "  cryowatch alarms  -c {cfg} --active");
    let _ = writeln!(
        b,
        "  cryowatch ack     -c {cfg} ALARM_ID --by YOUR_NAME --comment \"what you did\""
    );
    let _ = writeln!(
        b,
        "  cryosim ctl --control {control} set freezer-7 lid-open    # open the freezer door"
    );
    let _ = writeln!(b);
    b
}
