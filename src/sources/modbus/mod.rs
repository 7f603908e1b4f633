//! The Modbus source. Each TCP device gets its own task and connection; the devices on
//! one serial line share one task (a serial port has one master), which polls each unit
//! on its own schedule so a dead unit costs its neighbours one timeout, nothing more.
//!
//! A poll that fails — refused connection, timeout, exception — still yields a reading
//! per affected sensor, with quality `comm_error`. Reconnects back off with jitter.

pub mod decode;
pub mod plan;
pub mod poll;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;
use tokio_util::sync::CancellationToken;

use self::plan::Block;
use self::poll::poll_device;
use super::backoff::Backoff;
use crate::config::{Config, Parity, SensorSource, Transport};
use crate::model::{Reading, now_ms};
use crate::store::{Batch, StoreHandle};
use crate::telemetry::{Device, Source, Telemetry};

/// One device with its read plan.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub id: String,
    pub unit: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub blocks: Vec<Block>,
    /// Where its poll latency and connection state are kept.
    pub telemetry: Arc<Device>,
}

impl DevicePlan {
    fn all_comm_errors(&self) -> Vec<Reading> {
        let t = now_ms();
        self.blocks.iter().flat_map(|b| poll::comm_errors(b, t)).collect()
    }
}

/// Starts one task per TCP device and one per serial line. Returns their handles.
pub fn spawn(
    config: &Config,
    store: &StoreHandle,
    shutdown: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut buses: Vec<(Transport, Vec<DevicePlan>)> = Vec::new();
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
        if points.is_empty() {
            tracing::warn!(device = %d.id, "modbus device has no sensors; not polled");
            continue;
        }
        let plan = DevicePlan {
            id: d.id.clone(),
            unit: d.unit,
            poll_interval: d.poll_interval,
            timeout: d.timeout,
            blocks: plan::plan(&points),
            telemetry: telemetry.modbus_device(i),
        };
        tracing::info!(device = %d.id, sensors = points.len(), requests = plan.blocks.len(), "modbus device planned");
        match &d.transport {
            Transport::Tcp { address } => {
                tasks.push(tokio::spawn(run_tcp(
                    address.clone(),
                    plan,
                    store.clone(),
                    shutdown.clone(),
                    telemetry.clone(),
                )));
            }
            Transport::Rtu { serial, .. } => match buses
                .iter_mut()
                .find(|(t, _)| matches!(t, Transport::Rtu { serial: s, .. } if s == serial))
            {
                Some((_, devices)) => devices.push(plan),
                None => buses.push((d.transport.clone(), vec![plan])),
            },
        }
    }
    for (transport, devices) in buses {
        tasks.push(tokio::spawn(run_rtu_bus(
            transport,
            devices,
            store.clone(),
            shutdown.clone(),
            telemetry.clone(),
        )));
    }
    tasks
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
async fn send(store: &StoreHandle, telemetry: &Telemetry, readings: Vec<Reading>) -> bool {
    telemetry.count_readings(Source::Modbus, &readings);
    store.send(Batch::new(readings)).await.is_ok()
}

async fn run_tcp(
    address: String,
    plan: DevicePlan,
    store: StoreHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let mut tick = tokio::time::interval(plan.poll_interval);
    // Skip: a late poll does not shift the schedule (Delay did, drifting ~0.5 %
    // under load); polls missed while a device timed out are not made up in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60).max(plan.poll_interval));
    let mut next_connect = Instant::now();
    let mut ctx: Option<Context> = None;
    let mut health = Health::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if ctx.is_none() && Instant::now() >= next_connect {
            match connect_tcp(&address, plan.unit, plan.timeout).await {
                Ok(c) => ctx = Some(c),
                Err(why) => {
                    health.failed(&plan.id, &why);
                    next_connect = Instant::now() + backoff.next_delay();
                }
            }
        }
        let readings = match ctx.as_mut() {
            None => plan.all_comm_errors(),
            Some(c) => {
                let started = Instant::now();
                let res = poll_device(c, &plan.blocks, plan.timeout).await;
                plan.telemetry.poll.observe(started.elapsed());
                match &res.broken {
                    Some(why) => {
                        health.failed(&plan.id, why);
                        ctx = None;
                        next_connect = Instant::now() + backoff.next_delay();
                    }
                    None if res.exceptions.is_empty() => {
                        health.ok(&plan.id);
                        backoff.reset();
                    }
                    None => {
                        // The device answered: the connection is fine even if some
                        // registers are refused.
                        health.exceptions(&plan.id, &res.exceptions);
                        backoff.reset();
                    }
                }
                res.readings
            }
        };
        // Connected: the connection is open and the device answered this poll.
        plan.telemetry.set_connected(ctx.is_some());
        if !send(&store, &telemetry, readings).await {
            break;
        }
    }
    plan.telemetry.set_connected(false);
    if let Some(mut c) = ctx {
        let _ = c.disconnect().await;
    }
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

async fn run_rtu_bus(
    transport: Transport,
    devices: Vec<DevicePlan>,
    store: StoreHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let bus = match &transport {
        Transport::Rtu { serial, .. } => serial.display().to_string(),
        Transport::Tcp { address } => address.clone(),
    };
    let start = Instant::now();
    let mut due: Vec<Instant> = devices.iter().map(|_| start).collect();
    let mut health: Vec<Health> = devices.iter().map(|_| Health::default()).collect();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut next_open = start;
    let mut ctx: Option<Context> = None;
    while let Some((i, when)) = due.iter().copied().enumerate().min_by_key(|(_, t)| *t) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(when) => {}
        }
        let dev = &devices[i];
        due[i] = (when + dev.poll_interval).max(Instant::now());
        if ctx.is_none() && Instant::now() >= next_open {
            match open_serial(&transport) {
                Ok(port) => ctx = Some(rtu::attach_slave(port, Slave(dev.unit))),
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
                let res = poll_device(c, &dev.blocks, dev.timeout).await;
                dev.telemetry.poll.observe(started.elapsed());
                // Connected: the line is open and this unit answered (exceptions too).
                dev.telemetry.set_connected(res.broken.is_none());
                match &res.broken {
                    Some(why) => {
                        health[i].failed(&dev.id, why);
                        // A late answer from this unit must not be taken for the next
                        // unit's: reopen the line. The other units keep their schedule.
                        ctx = None;
                        tracing::debug!(bus = %bus, device = %dev.id, "serial line reopened after a failed poll");
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
        if !send(&store, &telemetry, readings).await {
            break;
        }
    }
    for d in &devices {
        d.telemetry.set_connected(false);
    }
}
