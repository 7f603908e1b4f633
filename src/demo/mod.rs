//! `cryowatch demo`: the device simulators and the daemon in one process, with an
//! embedded store in a temporary (or given) directory. Needs no broker and no setup.
//!
//! The simulated lab is `config/demo.toml`: an LN2 dewar controller, a -80 °C freezer
//! and a UPS with generator transfer, all over Modbus TCP on a free loopback port. The
//! demo writes that configuration (pointed at the simulator's port, the dashboard's port
//! and its own mail sink) into the demo directory, so every other command works on the
//! same data while the demo runs and after it stops.
//!
//! - [`mail_sink`]: the SMTP server the demo's email channel delivers to; every page is
//!   printed and kept as an `.eml` file in `mail/`.
//! - [`story`]: tells, from the store, when an alarm opens, a page goes out, a person
//!   acknowledges it and the escalation stops.

pub mod mail_sink;
pub mod story;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use cryosim::{Scenario, Sim, SimConfig, SimHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::daemon::Daemon;
use crate::model::now_ms;
use crate::report::status;
use crate::store::Store;

/// The demo lab's configuration, as shipped in `config/demo.toml`.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
/// The Modbus address written in `config/demo.toml`, replaced by the simulator's.
const DEMO_ADDRESS: &str = "127.0.0.1:15020";
/// The dashboard's address written in `config/demo.toml`: the demo serves there when the
/// port is free, else on a free port.
const DEMO_API: &str = "127.0.0.1:8470";
/// The SMTP port written in `config/demo.toml`, replaced by the mail sink's.
const DEMO_SMTP_PORT: &str = "port = 2525";
/// The dashboard user the demo creates, with a new random password each time.
pub const DEMO_USER: &str = "demo";

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

    let sink_shutdown = CancellationToken::new();
    let sink = mail_sink::bind().await.context("opening the demo's mail sink")?;
    let smtp = sink.local_addr().context("the mail sink's address")?;
    let (mail_tx, mail_rx) = mpsc::channel(64);
    let sink_task = tokio::spawn(mail_sink::serve(sink, mail_tx, sink_shutdown.clone()));
    let api = dashboard_address().context("finding a port for the dashboard")?;

    let config_path = dir.join("cryowatch.toml");
    let text = DEMO_CONFIG
        .replace(DEMO_ADDRESS, &modbus.to_string())
        .replace(DEMO_API, &api.to_string())
        .replace(DEMO_SMTP_PORT, &format!("port = {}", smtp.port()));
    std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
    let config = config::load(&config_path).map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?;

    let password = crate::random::token::<12>().context("making the demo user's password")?;
    crate::commands::user::set(&config, DEMO_USER, config::Role::Operator, &password)
        .map_err(|e| anyhow::anyhow!("adding the demo user: {e}"))?;

    let daemon = Daemon::start(&config)?;
    print!(
        "{}",
        banner(&Banner {
            dir: &dir,
            config: &config_path,
            store: &config.store.path,
            modbus: &modbus.to_string(),
            control: &control.to_string(),
            smtp,
            api,
            password: &password,
            duration,
        })
    );

    let outcome = drive(&sim, &config, &dir.join("mail"), mail_rx, duration).await;

    daemon.stop().await;
    sink_shutdown.cancel();
    let _ = sink_task.await;
    sim.shutdown().await;
    let stored = Store::open_read_only(&config.store.path)
        .and_then(|s| s.count())
        .unwrap_or(0);
    let cfg = config_path.display();
    println!();
    println!("demo stopped: {stored} readings in {}", config.store.path.display());
    println!("the pages it sent are in {}", dir.join("mail").display());
    println!("look at them with:");
    println!("  cryowatch status  -c {cfg}");
    println!("  cryowatch history -c {cfg} --sensor dewar-1.temp --from -1h");
    println!("  cryowatch alarms  -c {cfg}");
    outcome
}

/// The dashboard's address: `config/demo.toml`'s port when it is free, else a free one.
fn dashboard_address() -> std::io::Result<SocketAddr> {
    let wanted: SocketAddr = DEMO_API
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{DEMO_API}: {e}")))?;
    match std::net::TcpListener::bind(wanted) {
        Ok(l) => l.local_addr(),
        Err(_) => std::net::TcpListener::bind((wanted.ip(), 0))?.local_addr(),
    }
}

/// Prints the newest readings every few seconds, what happens to alarms and pages, and
/// every mail the sink receives; plays the story until Ctrl-C, SIGTERM or the end of
/// `--for`.
async fn drive(
    sim: &SimHandle,
    config: &config::Config,
    mail_dir: &Path,
    mut mail: mpsc::Receiver<mail_sink::Mail>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let start = tokio::time::Instant::now();
    let end = duration.and_then(|d| start.checked_add(d));
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(3), SHOW_EVERY);
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    let mut narrator = story::Narrator::default();
    let mut received = 0usize;
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
            Some(m) = mail.recv() => {
                received += 1;
                println!("{}", keep_mail(mail_dir, received, &m));
            }
            _ = watch.tick() => {
                let told = Store::open_read_only(&config.store.path)
                    .and_then(|store| narrator.tell(config, &store, now_ms()));
                // Before the first commit there is no store to read yet.
                for line in told.unwrap_or_default() {
                    println!("{line}");
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

/// Writes mail number `n` as `mail/NNNN.eml`; the line telling it arrived.
fn keep_mail(dir: &Path, n: usize, m: &mail_sink::Mail) -> String {
    let file = dir.join(format!("{n:04}.eml"));
    let kept = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&file, &m.data))
        .map_or_else(|e| format!("not kept: {e}"), |()| format!("kept in {}", file.display()));
    format!(
        ">>> MAIL received by the demo's mail sink, to {}: {} ({kept})",
        crate::escape::control(&m.to.join(", ")),
        crate::escape::control(&m.subject())
    )
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

/// One block of the live view: a line per shown sensor, read back from the store; a
/// discrete sensor shows its state by name.
fn snapshot(config: &config::Config) -> anyhow::Result<String> {
    let store = Store::open_read_only(&config.store.path)?;
    let rows = status::gather(config, &store, now_ms())?;
    let total = store.count()?;
    let mut out = String::new();
    let clock = jiff::Timestamp::now().strftime("%H:%M:%S");
    let _ = writeln!(out, "{clock}  {total} readings stored");
    for r in rows.iter().filter(|r| SHOWN.contains(&r.sensor.as_str())) {
        let (value, unit) = match (&r.value_name, r.value) {
            (Some(name), _) => (name.clone(), ""),
            (None, Some(v)) => (format!("{v:.1}"), r.unit.as_str()),
            (None, None) => ("-".to_string(), r.unit.as_str()),
        };
        let _ = writeln!(out, "  {:<18} {:>10} {:<8} {}", r.sensor, value, unit, r.state);
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

/// What the banner names.
struct Banner<'a> {
    dir: &'a Path,
    config: &'a Path,
    store: &'a Path,
    modbus: &'a str,
    control: &'a str,
    smtp: SocketAddr,
    api: SocketAddr,
    password: &'a str,
    duration: Option<Duration>,
}

fn banner(b: &Banner) -> String {
    let cfg = b.config.display();
    let control = b.control;
    let until = match b.duration {
        Some(d) => format!("for {}", humantime::format_duration(d)),
        None => "until Ctrl-C".to_string(),
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "cryowatch demo: a simulated LN2 dewar, -80 °C freezer and UPS, polled over Modbus TCP"
    );
    let _ = writeln!(t, "  directory   {}", b.dir.display());
    let _ = writeln!(t, "  config      {cfg}");
    let _ = writeln!(
        t,
        "  store       {}  (SQLite; every reading lands here)",
        b.store.display()
    );
    let _ = writeln!(t, "  simulators  Modbus TCP {}, control {control}", b.modbus);
    let _ = writeln!(
        t,
        "  mail sink   SMTP {} (pages by email arrive here, are printed and kept in {})",
        b.smtp,
        b.dir.join("mail").display()
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "  dashboard: http://{}/  user: {DEMO_USER}  password: {}",
        b.api, b.password
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "running {until}. The story:");
    for (at, _, _, what) in STORY {
        let _ = writeln!(t, "  after {at:>2} s  {what}");
    }
    let _ = writeln!(
        t,
        "  each alarm pages alice (on call) by email at once, and sam (supervisor) 1 minute later"
    );
    let _ = writeln!(
        t,
        "  unless it is acknowledged first: sign in to the dashboard and acknowledge it there."
    );
    let _ = writeln!(t, "In another terminal, while it runs or after:");
    let _ = writeln!(t, "  cryowatch status  -c {cfg}");
    let _ = writeln!(t, "  cryowatch history -c {cfg} --sensor dewar-1.temp --from -10m");
    let _ = writeln!(t, "  cryowatch alarms  -c {cfg} --active");
    let _ = writeln!(
        t,
        "  cryowatch ack     -c {cfg} ALARM_ID --by YOUR_NAME --comment \"what you did\""
    );
    let _ = writeln!(
        t,
        "  cryosim ctl --control {control} set freezer-7 lid-open    # open the freezer door"
    );
    let _ = writeln!(t);
    t
}
