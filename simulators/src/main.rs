//! `cryosim`: run the device simulators, or talk to a running one's control port.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cryosim::{Scenario, SimConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(
    name = "cryosim",
    version,
    about = "Simulated cryostorage devices over Modbus TCP/RTU and MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the simulators until SIGINT or SIGTERM. Prints one `ready key=value ...` line
    /// on stdout once every endpoint is bound.
    Run(RunArgs),
    /// Run a fake GSM modem answering AT commands on a serial line. Prints
    /// `ready modem=PATH [control=ADDR]` once serving.
    ///
    /// The control port takes one command per line: `sms FROM TEXT`, `fail COUNT CODE`,
    /// `silent on|off`, `network home|roaming|searching|denied|none`, `signal RSSI`,
    /// `sent`, `inbox`, `help`.
    Modem(ModemArgs),
    /// Run a bus of TEC 3000-style LN2 freezer controllers (units 001, 002, 004) on a
    /// serial line. Prints `ready tec=PATH [control=ADDR]` once serving.
    ///
    /// The control port takes one command per line: `set NNN temp|level V`,
    /// `mode NNN normal|dead|garbled|late|fault`, `event NNN TEXT...`, `queries`, `help`.
    Tec(TecArgs),
    /// Send one command to a running simulator's control port and print the answer.
    Ctl {
        /// Control port of the running simulator.
        #[arg(long, default_value = "127.0.0.1:5030")]
        control: SocketAddr,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Serve Modbus TCP (all units) on this address; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    modbus_tcp: Option<SocketAddr>,
    /// Serve Modbus RTU on this serial line (e.g. one end of a socat pty pair).
    #[arg(long, value_name = "PATH")]
    modbus_rtu: Option<PathBuf>,
    /// Baud rate of the RTU line (8 data bits, no parity, 1 stop bit).
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Publish MQTT telemetry to this broker: mqtt://[user[:pass]@]host[:port].
    #[arg(long, value_name = "URL", value_parser = parse_mqtt_url)]
    mqtt: Option<String>,
    /// How often each MQTT device publishes.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    mqtt_interval: Duration,
    /// Control port address (line protocol, see README.md); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// Initial scenario of a device, DEVICE=SCENARIO (repeatable; DEVICE may be `all`).
    #[arg(long, value_name = "DEVICE=SCENARIO", value_parser = parse_scenario_arg)]
    scenario: Vec<(String, Scenario)>,
    /// Add ±0.05 variations to temperatures and levels (off: exact constants).
    #[arg(long)]
    noise: bool,
}

#[derive(Debug, clap::Args)]
struct ModemArgs {
    /// Serial line to answer AT commands on (e.g. one end of a socat pty pair).
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Append every submitted SMS to this file as a JSON line {"to","text","ref"}.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Control port address; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
struct TecArgs {
    /// Serial line to answer on (e.g. one end of a socat pty pair).
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Control port address; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// A unit's mode to start with, NNN=normal|dead|garbled|late|fault (repeatable).
    #[arg(long, value_name = "NNN=MODE", value_parser = parse_mode_arg)]
    mode: Vec<(String, cryosim::tec::Mode)>,
    /// How long a unit in mode `late` takes to answer.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    late: Duration,
}

fn parse_mode_arg(s: &str) -> Result<(String, cryosim::tec::Mode), String> {
    let (unit, mode) = s.split_once('=').ok_or_else(|| format!("{s:?}: want NNN=MODE"))?;
    Ok((unit.trim().to_string(), mode.trim().parse()?))
}

#[derive(Debug, Subcommand)]
enum CtlAction {
    /// Switch DEVICE (or `all`) to SCENARIO.
    Set { device: String, scenario: String },
    /// Print the values DEVICE currently serves, as JSON.
    Get { device: String },
    /// Print the devices and scenarios, as JSON.
    List,
}

fn parse_mqtt_url(s: &str) -> Result<String, String> {
    cryosim::mqtt::validate_url(s).map(|()| s.to_string())
}

fn parse_scenario_arg(s: &str) -> Result<(String, Scenario), String> {
    let (device, scenario) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: want DEVICE=SCENARIO"))?;
    let device = device.trim();
    if device != "all" && cryosim::devices::find(device).is_none() {
        let known: Vec<&str> = cryosim::DEVICES.iter().map(|d| d.name).collect();
        return Err(format!("unknown device {device:?} (known: {}, all)", known.join(", ")));
    }
    Ok((device.to_string(), scenario.parse()?))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cryosim: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Modem(args) => modem(args).await,
            Command::Tec(args) => tec(args).await,
            Command::Ctl { control, action } => ctl(control, action).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cryosim: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig {
        modbus_tcp: args.modbus_tcp,
        modbus_rtu: args.modbus_rtu,
        rtu_baud: args.baud,
        mqtt_url: args.mqtt,
        mqtt_interval: args.mqtt_interval,
        control: args.control,
        scenario: args.scenario,
        noise: args.noise,
    };
    // Install the signal handlers before announcing readiness.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut sim = cryosim::Sim::start(cfg).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sim.ready_line())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        err = sim.failed() => Err(err),
    };
    sim.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn modem(args: ModemArgs) -> anyhow::Result<ExitCode> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut sim = cryosim::modem::ModemSim::start(cryosim::modem::ModemConfig {
        serial: args.port,
        baud: args.baud,
        record: args.record,
        control: args.control,
    })
    .await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sim.ready_line())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        err = sim.failed() => Err(err),
    };
    sim.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn tec(args: TecArgs) -> anyhow::Result<ExitCode> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut sim = cryosim::tec::TecSim::start(cryosim::tec::TecConfig {
        serial: args.port,
        baud: args.baud,
        control: args.control,
        late: args.late,
        modes: args.mode,
    })
    .await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", sim.ready_line())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        err = sim.failed() => Err(err),
    };
    sim.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn ctl(control: SocketAddr, action: CtlAction) -> anyhow::Result<ExitCode> {
    let line = match &action {
        CtlAction::Set { device, scenario } => format!("set {device} {scenario}\n"),
        CtlAction::Get { device } => format!("get {device}\n"),
        CtlAction::List => "list\n".to_string(),
    };
    let exchange = async {
        let mut stream = TcpStream::connect(control).await?;
        stream.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("no answer from the control port {control} within 5s"))?
        .with_context(|| format!("control port {control}"))?;
    let answer = answer.trim_end();
    if answer.is_empty() {
        anyhow::bail!("control port {control} closed the connection without answering");
    }
    if let Some(reason) = answer.strip_prefix("err") {
        eprintln!("cryosim: {}", reason.trim_start());
        return Ok(ExitCode::from(2));
    }
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}
