//! The Modbus source. Devices are polled over links, one task per link: the devices on
//! one serial line share it (a serial port has one master), and the devices at one TCP
//! address (`host:port`, compared without resolving it) share one connection — an
//! RS-485-to-TCP gateway often serves one client at a time — or are spread over at most
//! `max_connections` of them. A link sends one request at a time and polls each unit on
//! its own schedule, so a dead unit costs its neighbours its timeout, nothing more: after
//! a timeout the link is reopened at once (a late answer must not be taken for the next
//! request's) and the other units keep their schedule.
//!
//! A poll that fails — refused connection, timeout, exception — still yields a reading
//! per affected sensor, with quality `comm_error`. A link that cannot be opened is
//! retried with backoff and jitter; meanwhile every unit on it reads `comm_error`.
//! Poll latency and connection state stay per device.
//!
//! After each poll of a device, its local alarm outputs (`[[output]]`) are written
//! through the same connection ([`write`]); a device with outputs and no sensors is
//! polled for them alone.

pub mod decode;
pub mod plan;
pub mod poll;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;
use tokio_util::sync::CancellationToken;

use self::plan::Block;
use self::poll::poll_device;
use self::write::{OutputPlan, WriteHealth, write_outputs};
use super::backoff::Backoff;
use crate::config::{Config, Parity, SensorSource, Transport, gateway_key};
use crate::model::{Reading, now_ms};
use crate::output::Desired;
use crate::pipeline::{Batch, CommitHandle};
use crate::telemetry::{Device, Source, Telemetry};

/// One device with its read plan.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub id: String,
    pub unit: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub blocks: Vec<Block>,
    /// The local alarm outputs written after each poll.
    pub outputs: Vec<OutputPlan>,
    /// Where its poll latency and connection state are kept.
    pub telemetry: Arc<Device>,
}

impl DevicePlan {
    fn all_comm_errors(&self) -> Vec<Reading> {
        let t = now_ms();
        self.blocks.iter().flat_map(|b| poll::comm_errors(b, t)).collect()
    }
}

/// Starts one task per link: per serial line, and per connection to a TCP address (at
/// most `max_connections` of them, the address's devices spread over them in turn).
/// Returns their handles. `desired` holds the values of the local alarm outputs.
pub fn spawn(
    config: &Config,
    store: &CommitHandle,
    shutdown: &CancellationToken,
    telemetry: &Arc<Telemetry>,
    desired: &Desired,
) -> Vec<tokio::task::JoinHandle<()>> {
    // Devices grouped by where they are reached, in config order.
    let mut groups: Vec<(LinkKey, &Transport, usize, Vec<DevicePlan>)> = Vec::new();
    for (i, d) in config.devices.iter().enumerate() {
        let points: Vec<_> = config
            .sensors
            .iter()
            .enumerate()
            .filter_map(|(s, sensor)| match &sensor.source {
                SensorSource::Modbus(p) if p.device == i => Some((s, p.clone())),
                _ => None,
            })
            .collect();
        let outputs: Vec<OutputPlan> = (config.outputs.iter().enumerate())
            .filter(|(_, o)| o.device == i)
            .map(|(index, o)| OutputPlan {
                index,
                id: o.id.clone(),
                target: o.target,
            })
            .collect();
        if points.is_empty() && outputs.is_empty() {
            tracing::warn!(device = %d.id, "modbus device has no sensors and no outputs; not polled");
            continue;
        }
        let plan = DevicePlan {
            id: d.id.clone(),
            unit: d.unit,
            poll_interval: d.poll_interval,
            timeout: d.timeout,
            blocks: plan::plan(&points),
            outputs,
            telemetry: telemetry.modbus_device(i),
        };
        tracing::info!(device = %d.id, sensors = points.len(), outputs = plan.outputs.len(), requests = plan.blocks.len(), "modbus device planned");
        let key = match &d.transport {
            Transport::Tcp { address } => LinkKey::Tcp(gateway_key(address)),
            Transport::Rtu { serial, .. } => LinkKey::Serial(serial.clone()),
        };
        match groups.iter_mut().find(|(k, ..)| *k == key) {
            Some((.., devices)) => devices.push(plan),
            None => groups.push((key, &d.transport, d.max_connections, vec![plan])),
        }
    }
    let mut tasks = Vec::new();
    for (key, transport, max_connections, devices) in groups {
        let links = match key {
            LinkKey::Serial(_) => vec![(Link::Serial(transport.clone()), devices)],
            LinkKey::Tcp(address) => {
                let n = max_connections.clamp(1, devices.len());
                let mut shares: Vec<Vec<DevicePlan>> = (0..n).map(|_| Vec::new()).collect();
                for (k, d) in devices.into_iter().enumerate() {
                    shares[k % n].push(d);
                }
                shares
                    .into_iter()
                    .enumerate()
                    .map(|(k, share)| {
                        let link = Link::Tcp {
                            address: address.clone(),
                            connection: k + 1,
                            of: n,
                        };
                        (link, share)
                    })
                    .collect()
            }
        };
        for (link, devices) in links {
            tasks.push(tokio::spawn(supervise(
                link,
                devices,
                store.clone(),
                shutdown.clone(),
                telemetry.clone(),
                desired.clone(),
            )));
        }
    }
    tasks
}

/// Runs a link's poller again when it panics (a peer's answer tripping a bug), so its
/// units are never silent for good: the panic is logged as an error, every sensor of the
/// link reads `comm_error`, and polling resumes a second later with a fresh connection.
async fn supervise(
    link: Link,
    devices: Vec<DevicePlan>,
    store: CommitHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
    desired: Desired,
) {
    loop {
        let run = tokio::spawn(run_link(
            link.clone(),
            devices.clone(),
            store.clone(),
            shutdown.clone(),
            telemetry.clone(),
            desired.clone(),
        ));
        match run.await {
            Err(e) if e.is_panic() && !shutdown.is_cancelled() => {
                tracing::error!(link = %link.describe(), "the Modbus poller of this link panicked; polling again in 1 s");
                // The poll that panicked is a failed poll: a reading with a bad quality
                // per sensor, never silence.
                let readings = devices.iter().flat_map(DevicePlan::all_comm_errors).collect();
                if !send(&store, &telemetry, readings).await {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            _ => return,
        }
    }
}

/// Where a group of devices is reached: one serial port, or one TCP address
/// ([`gateway_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkKey {
    Serial(std::path::PathBuf),
    Tcp(String),
}

/// What one task polls its devices over: a serial line (one master, so one task for all
/// its units) or one connection to a TCP address (a gateway in front of a bus, or one
/// device).
#[derive(Debug, Clone)]
enum Link {
    Serial(Transport),
    Tcp {
        address: String,
        /// Which of the address's `of` connections this is (1-based).
        connection: usize,
        of: usize,
    },
}

impl Link {
    /// Opens the link addressed to `unit` (the loop switches units with `set_slave`).
    async fn open(&self, unit: u8, timeout: Duration) -> Result<Context, String> {
        match self {
            Link::Serial(transport) => open_serial(transport).map(|port| rtu::attach_slave(port, Slave(unit))),
            Link::Tcp { address, .. } => connect_tcp(address, unit, timeout).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Link::Serial(Transport::Rtu { serial, .. }) => format!("serial {}", serial.display()),
            Link::Serial(Transport::Tcp { address }) | Link::Tcp { address, of: 1, .. } => format!("tcp {address}"),
            Link::Tcp {
                address,
                connection,
                of,
            } => format!("tcp {address} (connection {connection} of {of})"),
        }
    }
}

/// When a device polled at `when` is due next: one interval later, or — when the poll
/// ran so late that this has passed — the first tick of its schedule after `now`. Missed
/// polls are not made up in a burst, and a late poll does not shift the schedule.
fn next_due(when: Instant, interval: Duration, now: Instant) -> Instant {
    let next = when + interval;
    if next > now || interval.is_zero() {
        return next;
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos() + 1;
    next + interval * u32::try_from(behind).unwrap_or(u32::MAX)
}

/// Logs a device's health only when it changes, so a dead device does not flood the
/// journal every poll.
#[derive(Default)]
struct Health {
    failing: Option<String>,
}

impl Health {
    fn failed(&mut self, device: &str, why: &str) {
        if self.failing.as_deref() != Some(why) {
            tracing::warn!(
                device,
                reason = why,
                "modbus device not answering; its sensors read comm_error"
            );
            self.failing = Some(why.to_string());
        }
    }

    fn ok(&mut self, device: &str) {
        if self.failing.take().is_some() {
            tracing::info!(device, "modbus device answering again");
        }
    }

    fn exceptions(&mut self, device: &str, exceptions: &[(crate::config::RegisterKind, u16, u16, ExceptionCode)]) {
        if exceptions.is_empty() {
            return;
        }
        let why = exceptions
            .iter()
            .map(|(k, start, count, code)| format!("{} {start}+{count}: {code:?}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        self.failed(device, &format!("exception response ({why})"));
    }
}

/// Hands a poll's readings to the store writer and counts them.
async fn send(store: &CommitHandle, telemetry: &Telemetry, readings: Vec<Reading>) -> bool {
    telemetry.count_readings(Source::Modbus, &readings);
    store.send(Batch::new(readings)).await.is_ok()
}

async fn connect_tcp(address: &str, unit: u8, timeout: Duration) -> Result<Context, String> {
    let attempt = async {
        let addr = tokio::net::lookup_host(address)
            .await
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        tcp::connect_slave(addr, Slave(unit))
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))
    };
    match tokio::time::timeout(timeout.max(Duration::from_secs(1)), attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("connecting to {address} timed out")),
    }
}

fn open_serial(transport: &Transport) -> Result<tokio_serial::SerialStream, String> {
    let Transport::Rtu {
        serial,
        baud,
        parity,
        data_bits,
        stop_bits,
    } = transport
    else {
        return Err("not a serial transport".into());
    };
    let builder = tokio_serial::new(serial.to_string_lossy(), *baud)
        .parity(match parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .data_bits(match data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .stop_bits(if *stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        });
    tokio_serial::SerialStream::open(&builder).map_err(|e| format!("cannot open {}: {e}", serial.display()))
}

/// Polls the devices of one link, each on its own schedule, one request at a time. A
/// timeout or broken answer reopens the link before the next poll (a late answer must
/// not be taken for the next unit's) without delaying the other units; only a link that
/// cannot be opened backs off, and meanwhile every unit on it reads `comm_error`.
async fn run_link(
    link: Link,
    devices: Vec<DevicePlan>,
    store: CommitHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
    desired: Desired,
) {
    let name = link.describe();
    let start = Instant::now();
    let mut due: Vec<Instant> = devices.iter().map(|_| start).collect();
    let mut health: Vec<Health> = devices.iter().map(|_| Health::default()).collect();
    let mut writes: Vec<WriteHealth> = devices.iter().map(|_| WriteHealth::default()).collect();
    let slowest = devices.iter().map(|d| d.poll_interval).max().unwrap_or_default();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60).max(slowest));
    let mut next_open = start;
    let mut ctx: Option<Context> = None;
    while let Some((i, when)) = due.iter().copied().enumerate().min_by_key(|(_, t)| *t) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(when) => {}
        }
        let dev = &devices[i];
        if ctx.is_none() && Instant::now() >= next_open {
            match link.open(dev.unit, dev.timeout).await {
                Ok(c) => ctx = Some(c),
                Err(why) => {
                    for (d, h) in devices.iter().zip(health.iter_mut()) {
                        h.failed(&d.id, &why);
                    }
                    next_open = Instant::now() + backoff.next_delay();
                }
            }
        }
        let readings = match ctx.as_mut() {
            None => {
                dev.telemetry.set_connected(false);
                dev.all_comm_errors()
            }
            Some(c) => {
                c.set_slave(Slave(dev.unit));
                let started = Instant::now();
                let mut res = poll_device(c, &dev.blocks, dev.timeout).await;
                dev.telemetry.poll.observe(started.elapsed());
                if res.broken.is_none() {
                    res.broken = write_outputs(c, &dev.id, &dev.outputs, &desired, dev.timeout, &mut writes[i]).await;
                }
                // Connected: the link is open and this unit answered (exceptions too).
                dev.telemetry.set_connected(res.broken.is_none());
                match &res.broken {
                    Some(why) => {
                        health[i].failed(&dev.id, why);
                        // Reopened at the next poll, whichever unit it is for; the
                        // other units keep their schedule.
                        if let Some(mut c) = ctx.take() {
                            let _ = c.disconnect().await;
                        }
                        tracing::debug!(link = %name, device = %dev.id, "link reopened after a failed poll");
                    }
                    None if res.exceptions.is_empty() => {
                        health[i].ok(&dev.id);
                        backoff.reset();
                    }
                    None => {
                        // The device answered: the connection is fine even if some
                        // registers are refused.
                        health[i].exceptions(&dev.id, &res.exceptions);
                        backoff.reset();
                    }
                }
                res.readings
            }
        };
        due[i] = next_due(when, dev.poll_interval, Instant::now());
        // A device polled for its outputs alone has no readings.
        if !readings.is_empty() && !send(&store, &telemetry, readings).await {
            break;
        }
    }
    for d in &devices {
        d.telemetry.set_connected(false);
    }
    if let Some(mut c) = ctx {
        let _ = c.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_on_time_is_due_one_interval_later() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_due(t, s, t + Duration::from_millis(200)), t + s);
    }

    #[test]
    fn a_late_poll_skips_the_missed_ticks_without_shifting_the_schedule() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_due(t, s, t + Duration::from_millis(1000)), t + 2 * s);
        assert_eq!(next_due(t, s, t + Duration::from_millis(3500)), t + 4 * s);
    }
}
