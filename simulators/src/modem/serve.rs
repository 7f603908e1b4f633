//! Serving the fake modem: the serial line, the record file and the control port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_serial::SerialStream;

use super::{Call, Fed, Modem, SentSms};

/// Where to serve the modem.
#[derive(Debug, Clone)]
pub struct ModemConfig {
    /// The serial line (one end of a pty pair).
    pub serial: PathBuf,
    pub baud: u32,
    /// File that gets one JSON line per submitted message and per ended call (appended).
    pub record: Option<PathBuf>,
    /// Control port listen address (port 0: pick a free port).
    pub control: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default)]
struct Shared {
    modem: Arc<Mutex<Modem>>,
    wake: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Modem> {
        self.modem.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake modem. Dropping it stops it.
#[derive(Debug)]
pub struct ModemSim {
    shared: Shared,
    serial: PathBuf,
    control: Option<SocketAddr>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl ModemSim {
    /// Opens the serial line, binds the control port and starts serving.
    pub async fn start(cfg: ModemConfig) -> anyhow::Result<ModemSim> {
        let shared = Shared::default();
        let mut tasks = JoinSet::new();
        let record = match &cfg.record {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the record file {}", path.display()))?,
            ),
            None => None,
        };
        let mut control = None;
        if let Some(addr) = cfg.control {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for control on {addr}"))?;
            control = Some(listener.local_addr()?);
            tasks.spawn(serve_control(listener, shared.clone()));
        }
        let port = open(&cfg.serial, cfg.baud)?;
        tasks.spawn(serve_serial(cfg.serial.clone(), cfg.baud, port, shared.clone(), record));
        Ok(ModemSim {
            shared,
            serial: cfg.serial,
            control,
            tasks,
        })
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// `ready modem=PATH control=ADDR` (control only when configured).
    pub fn ready_line(&self) -> String {
        let mut line = format!("ready modem={}", self.serial.display());
        if let Some(a) = self.control {
            line += &format!(" control={a}");
        }
        line
    }

    /// A control command, exactly as over the control port.
    pub fn execute(&self, line: &str) -> String {
        let answer = self.shared.lock().control(line);
        self.shared.wake.notify_one();
        answer
    }

    /// Every message submitted so far.
    pub fn sent(&self) -> Vec<SentSms> {
        self.shared.lock().sent.clone()
    }

    /// Every call dialled so far (the last one may still ring).
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Resolves only if a task stops on its own.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            None => std::future::pending().await,
            Some(Ok(Ok(()))) => anyhow::anyhow!("a modem task stopped"),
            Some(Ok(Err(err))) => err,
            Some(Err(err)) => anyhow::Error::new(err).context("a modem task failed"),
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

async fn serve_serial(
    path: PathBuf,
    baud: u32,
    first: SerialStream,
    shared: Shared,
    mut record: Option<std::fs::File>,
) -> anyhow::Result<()> {
    let mut port = Some(first);
    let mut buf = vec![0u8; 1024];
    loop {
        let mut serial = match port.take() {
            Some(p) => p,
            None => match open(&path, baud) {
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
                // A call that ends by itself: wake up then.
                let due = shared.lock().next_event().map(|at| {
                    let wait = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                    tokio::time::Instant::now() + wait
                });
                let output = tokio::select! {
                    n = serial.read(&mut buf) => {
                        let n = n?;
                        if n == 0 {
                            return Ok(());
                        }
                        let fed = shared.lock().feed(&buf[..n]);
                        record_fed(record.as_mut(), &fed)?;
                        fed.output
                    }
                    () = shared.wake.notified() => shared.lock().take_urcs(),
                    () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                        let fed = shared.lock().tick(SystemTime::now());
                        record_fed(record.as_mut(), &fed)?;
                        fed.output
                    }
                };
                if !output.is_empty() {
                    serial.write_all(&output).await?;
                    serial.flush().await?;
                }
            }
        }
        .await;
        tracing::warn!(path = %path.display(), "modem serial line ended: {ended:?}; reopening");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends the messages and ended calls of `fed` to the record file, if there is one.
fn record_fed(file: Option<&mut std::fs::File>, fed: &Fed) -> std::io::Result<()> {
    use std::io::Write;
    let Some(file) = file else { return Ok(()) };
    for line in fed
        .sent
        .iter()
        .map(SentSms::json)
        .chain(fed.calls.iter().map(Call::json))
    {
        writeln!(file, "{line}")?;
    }
    file.flush()
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
                    tracing::warn!("modem control accept failed: {err}");
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
