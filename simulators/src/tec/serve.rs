//! Serving the controller bus: the serial line and the control port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_serial::SerialStream;

use super::{Answer, Bus, Mode};

/// Where and how to serve the bus.
#[derive(Debug, Clone)]
pub struct TecConfig {
    /// The serial line (one end of a pty pair).
    pub serial: PathBuf,
    pub baud: u32,
    /// Control port listen address (port 0: pick a free port).
    pub control: Option<SocketAddr>,
    /// How long a unit in mode `late` takes to answer.
    pub late: Duration,
    /// Units' modes to start with.
    pub modes: Vec<(String, Mode)>,
}

#[derive(Debug, Clone)]
struct Shared {
    bus: Arc<Mutex<Bus>>,
    wake: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Bus> {
        self.bus.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running controller bus. Dropping it stops it.
#[derive(Debug)]
pub struct TecSim {
    serial: PathBuf,
    control: Option<SocketAddr>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl TecSim {
    /// Opens the serial line, binds the control port and starts serving.
    pub async fn start(cfg: TecConfig) -> anyhow::Result<TecSim> {
        let mut bus = Bus::standard();
        for (address, mode) in &cfg.modes {
            match bus.units.get_mut(address) {
                Some(unit) => unit.mode = *mode,
                None => anyhow::bail!("no unit {address} on the bus (units: 001, 002, 004)"),
            }
        }
        let shared = Shared {
            bus: Arc::new(Mutex::new(bus)),
            wake: Arc::new(Notify::new()),
        };
        let mut tasks = JoinSet::new();
        let mut control = None;
        if let Some(addr) = cfg.control {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for control on {addr}"))?;
            control = Some(listener.local_addr()?);
            tasks.spawn(serve_control(listener, shared.clone()));
        }
        let port = open(&cfg.serial, cfg.baud)?;
        tasks.spawn(serve_serial(cfg.clone(), port, shared));
        Ok(TecSim {
            serial: cfg.serial,
            control,
            tasks,
        })
    }

    /// `ready tec=PATH control=ADDR` (control only when configured).
    pub fn ready_line(&self) -> String {
        let mut line = format!("ready tec={}", self.serial.display());
        if let Some(a) = self.control {
            line += &format!(" control={a}");
        }
        line
    }

    /// Resolves only if a task stops on its own.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            None => std::future::pending().await,
            Some(Ok(Ok(()))) => anyhow::anyhow!("a controller bus task stopped"),
            Some(Ok(Err(err))) => err,
            Some(Err(err)) => anyhow::Error::new(err).context("a controller bus task failed"),
        }
    }

    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }
}

fn open(path: &std::path::Path, baud: u32) -> anyhow::Result<SerialStream> {
    SerialStream::open(&tokio_serial::new(path.to_string_lossy(), baud))
        .map_err(|e| anyhow::anyhow!("cannot open serial line {}: {e}", path.display()))
}

async fn serve_serial(cfg: TecConfig, first: SerialStream, shared: Shared) -> anyhow::Result<()> {
    let mut port = Some(first);
    let (late_tx, mut late_rx) = mpsc::unbounded_channel::<String>();
    let mut buf = vec![0u8; 1024];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let mut serial = match port.take() {
            Some(p) => p,
            None => match open(&cfg.serial, cfg.baud) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!("{err:#}; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let ended: std::io::Result<()> = async {
            loop {
                let mut out: Vec<String> = Vec::new();
                tokio::select! {
                    n = serial.read(&mut buf) => {
                        let n = n?;
                        if n == 0 {
                            return Ok(());
                        }
                        for b in buf.iter().take(n) {
                            if *b != b'\r' && *b != b'\n' {
                                line.push(*b);
                                continue;
                            }
                            if line.is_empty() {
                                continue;
                            }
                            let request = String::from_utf8_lossy(&line).to_string();
                            line.clear();
                            match shared.lock().request(&request) {
                                Some(Answer::Now(text)) => out.push(text),
                                Some(Answer::Late(text)) => {
                                    let tx = late_tx.clone();
                                    let late = cfg.late;
                                    tokio::spawn(async move {
                                        tokio::time::sleep(late).await;
                                        let _ = tx.send(text);
                                    });
                                }
                                None => {}
                            }
                        }
                    }
                    () = shared.wake.notified() => out.append(&mut shared.lock().pending),
                    Some(text) = late_rx.recv() => out.push(text),
                }
                for text in out {
                    serial.write_all(format!("{text}\r").as_bytes()).await?;
                }
                serial.flush().await?;
            }
        }
        .await;
        tracing::warn!(path = %cfg.serial.display(), "controller bus serial line ended: {ended:?}; reopening");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve_control(listener: TcpListener, shared: Shared) -> anyhow::Result<()> {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(control_connection(stream, shared.clone()));
                }
                Err(err) => {
                    tracing::warn!("controller bus control accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn control_connection(stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(1 << 20)).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let mut answer = shared.lock().control(&line);
        shared.wake.notify_one();
        answer.push('\n');
        write.write_all(answer.as_bytes()).await?;
    }
    Ok(())
}
