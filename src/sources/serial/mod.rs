//! The serial line source: devices speaking a line-based text protocol on RS-232 or
//! RS-485 (LN2 freezer controllers: `004 TEMPA?\r` answered by `-197.10\r`). One task
//! per `[[serial.device]]` owns its port. Every poll interval it sends each polled
//! sensor's query in turn, one request at a time on the shared line, and reads one
//! answer line within the device's timeout ([`parse`] turns it into a reading): a
//! silent or garbled unit gives its own sensor `comm_error` and costs the others at most
//! its timeout. Lines nobody asked for — between answers or while idle — are matched
//! against the device's `[[serial.event]]` patterns and become readings of their
//! sensors, stamped on arrival.
//!
//! A port that cannot be opened, or that fails, gives every polled sensor of the device
//! `comm_error` each poll and is reopened with backoff and jitter.

pub mod parse;
mod port;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Query, SensorSource, SerialDevice, SerialEvent};
use crate::model::Reading;
use crate::pipeline::{Batch, CommitHandle};
use crate::telemetry::{Device, Source, Telemetry};

/// One device with what is read from it.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub device: SerialDevice,
    /// Polled sensors (index in `config.sensors`) and their queries, in config order.
    pub polled: Vec<(usize, Query)>,
    /// The device's `[[serial.event]]`s, in config order.
    pub events: Vec<SerialEvent>,
    /// Every sensor's id, by index in `config.sensors` (for the log).
    pub sensor_ids: Arc<Vec<String>>,
    pub telemetry: Arc<Device>,
}

impl DevicePlan {
    fn sensor_id(&self, i: usize) -> &str {
        self.sensor_ids.get(i).map_or("?", String::as_str)
    }

    fn all_comm_errors(&self, time: crate::model::TimestampMs) -> Vec<Reading> {
        self.polled
            .iter()
            .map(|(s, _)| Reading::bad(*s, time, crate::model::Quality::CommError))
            .collect()
    }
}

/// Starts one task per serial device that has sensors; returns their handles.
pub fn spawn(
    config: &Config,
    store: &CommitHandle,
    shutdown: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let sensor_ids: Arc<Vec<String>> = Arc::new(config.sensors.iter().map(|s| s.id.clone()).collect());
    for (i, d) in config.serial_devices.iter().enumerate() {
        let polled: Vec<(usize, Query)> = (config.sensors.iter().enumerate())
            .filter_map(|(s, sensor)| match &sensor.source {
                SensorSource::Serial(p) if p.device == i => p.query.clone().map(|q| (s, q)),
                _ => None,
            })
            .collect();
        let events: Vec<SerialEvent> = config.serial_events.iter().filter(|e| e.device == i).cloned().collect();
        if polled.is_empty() && events.is_empty() {
            tracing::warn!(device = %d.id, "serial device has no sensors and no events; port not opened");
            continue;
        }
        tracing::info!(device = %d.id, port = %d.port.display(), polled = polled.len(), events = events.len(), "serial device planned");
        let plan = DevicePlan {
            device: d.clone(),
            polled,
            events,
            sensor_ids: sensor_ids.clone(),
            telemetry: telemetry.serial_device(i),
        };
        tasks.push(tokio::spawn(supervise(
            plan,
            store.clone(),
            shutdown.clone(),
            telemetry.clone(),
        )));
    }
    tasks
}

/// Runs a device's loop again when it panics, so its sensors are never silent for
/// good: the panic is logged, every polled sensor reads `comm_error`, and the port is
/// reopened a second later.
async fn supervise(plan: DevicePlan, store: CommitHandle, shutdown: CancellationToken, telemetry: Arc<Telemetry>) {
    loop {
        let run = tokio::spawn(port::run(
            plan.clone(),
            store.clone(),
            shutdown.clone(),
            telemetry.clone(),
        ));
        match run.await {
            Err(e) if e.is_panic() && !shutdown.is_cancelled() => {
                tracing::error!(device = %plan.device.id, "the serial poller of this device panicked; polling again in 1 s");
                let readings = plan.all_comm_errors(crate::model::now_ms());
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

/// Hands readings to the store writer and counts them.
async fn send(store: &CommitHandle, telemetry: &Telemetry, readings: Vec<Reading>) -> bool {
    if readings.is_empty() {
        return true;
    }
    telemetry.count_readings(Source::Serial, &readings);
    store.send(Batch::new(readings)).await.is_ok()
}
