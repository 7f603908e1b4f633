//! What the running pipeline counts about itself, and how each stage shows it on
//! `/metrics` ([`crate::api::metrics`]).
//!
//! One [`Telemetry`] is made in [`crate::daemon::Daemon::start`] and shared through an
//! `Arc` with the sources: readings handed to the store by source and quality, each
//! Modbus device's and UPS's poll latency and connection state. The other stages keep
//! their own counters ([`WriterStats`] with the store's commit latency, [`MqttStats`],
//! [`DispatchStats`] with results by channel, the mirror's `SinkStats`), defined in
//! [`stats`] so that no stage and telemetry import each other.
//!
//! At start each stage registers a prometheus-client collector for its counters into the
//! registry the daemon hands it (`register`); a scrape reads the atomics through them,
//! nothing is copied. [`families`] has the helpers they share. What the store knows
//! (open alarms, outbox lag, audit head) is read at scrape time by the API.
//!
//! Everything here is atomics in fixed slots, so counting on a hot path is an atomic
//! add: readings are tallied per batch into a `[source][quality]` array, and each
//! device's slot is handed to its poller once at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::{Config, SensorSource};
use crate::model::{Quality, Reading, TimestampMs, now_ms};

pub mod families;
pub mod stats;
pub use stats::{DispatchStats, MqttStats, WriterStats};

/// A view of the commit stage's queue: (messages waiting, capacity), `None` once it
/// has stopped.
pub type QueueDepth = Arc<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

/// Upper bounds (seconds, inclusive) of the latency histograms' buckets: from a
/// sub-millisecond local commit to a Modbus timeout.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the fixed [`BUCKETS`] (and `+Inf`). Observing is two
/// atomic adds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram read at one moment: cumulative counts, as the exposition wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations `<=` each of [`BUCKETS`], then the total (`+Inf`).
    pub cumulative: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.cumulative[BUCKETS.len()]
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| s <= *b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; BUCKETS.len() + 1];
        let mut total = 0;
        for (c, n) in cumulative.iter_mut().zip(&self.counts) {
            total += n.load(Ordering::Relaxed);
            *c = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Where readings enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Modbus,
    Mqtt,
    Ups,
    Serial,
    /// The monitor's own state (its record-integrity sensor).
    Monitor,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Modbus,
        Source::Mqtt,
        Source::Ups,
        Source::Serial,
        Source::Monitor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Modbus => "modbus",
            Source::Mqtt => "mqtt",
            Source::Ups => "ups",
            Source::Serial => "serial",
            Source::Monitor => "monitor",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn of(sensor: &SensorSource) -> Source {
        match sensor {
            SensorSource::Modbus(_) => Source::Modbus,
            SensorSource::Mqtt(_) => Source::Mqtt,
            SensorSource::Ups(_) => Source::Ups,
            SensorSource::Serial(_) => Source::Serial,
            SensorSource::Monitor | SensorSource::Security | SensorSource::Calibration(_) => Source::Monitor,
        }
    }
}

fn quality_slot(q: Quality) -> usize {
    match q {
        Quality::Good => 0,
        Quality::CommError => 1,
        Quality::SensorFault => 2,
        Quality::Stale => 3,
    }
}

/// One polled device (a Modbus device or a UPS behind upsd): its poller writes here.
#[derive(Debug)]
pub struct Device {
    pub source: Source,
    pub id: String,
    /// It has sensors, so it is polled.
    polled: bool,
    /// The device answered its last poll.
    connected: AtomicBool,
    /// Duration of each poll that reached the device (sent requests), answered or not.
    pub poll: Histogram,
}

impl Device {
    fn new(source: Source, id: &str, polled: bool) -> Device {
        Device {
            source,
            id: id.to_string(),
            polled,
            connected: AtomicBool::new(false),
            poll: Histogram::default(),
        }
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// The daemon's counters and gauges. See the module docs.
pub struct Telemetry {
    pub started: TimestampMs,
    /// Sources with at least one configured sensor (the others are not exposed).
    sources: [bool; Source::ALL.len()],
    readings: [[AtomicU64; Quality::ALL.len()]; Source::ALL.len()],
    /// Indexed like `config.devices`.
    modbus: Vec<Arc<Device>>,
    /// Indexed like `config.ups`.
    ups: Vec<Arc<Device>>,
    /// Indexed like `config.serial_devices`.
    serial: Vec<Arc<Device>>,
    /// The MQTT broker (`host:port`), when MQTT sensors are configured.
    pub mqtt_broker: Option<String>,
    pub mqtt: Arc<MqttStats>,
    pub writer: Arc<WriterStats>,
}

impl Telemetry {
    /// Slots for every device and source of `config`, every counter at zero, and fresh
    /// stage counters; the `with_*` methods put in the stages' own.
    pub fn new(config: &Config) -> Telemetry {
        let mut sources = [false; Source::ALL.len()];
        for s in &config.sensors {
            sources[Source::of(&s.source).slot()] = true;
        }
        // Devices without sensors are not polled and not shown.
        let polled_modbus = |i: usize| {
            config
                .sensors
                .iter()
                .any(|s| matches!(&s.source, SensorSource::Modbus(p) if p.device == i))
        };
        let polled_ups = |id: &str| {
            config
                .sensors
                .iter()
                .any(|s| matches!(&s.source, SensorSource::Ups(p) if p.ups == id))
        };
        let polled_serial = |i: usize| {
            config
                .sensors
                .iter()
                .any(|s| matches!(&s.source, SensorSource::Serial(p) if p.device == i && p.query.is_some()))
        };
        Telemetry {
            started: now_ms(),
            sources,
            readings: Default::default(),
            modbus: config
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| Arc::new(Device::new(Source::Modbus, &d.id, polled_modbus(i))))
                .collect(),
            ups: config
                .ups
                .iter()
                .map(|u| Arc::new(Device::new(Source::Ups, &u.id, polled_ups(&u.id))))
                .collect(),
            serial: config
                .serial_devices
                .iter()
                .enumerate()
                .map(|(i, d)| Arc::new(Device::new(Source::Serial, &d.id, polled_serial(i))))
                .collect(),
            mqtt_broker: config
                .mqtt
                .as_ref()
                .filter(|_| sources[Source::Mqtt.slot()])
                .map(|m| format!("{}:{}", m.host, m.port)),
            mqtt: Arc::default(),
            writer: Arc::default(),
        }
    }

    /// The commit stage's counters (its state answers readiness).
    pub fn with_writer(mut self, stats: Arc<WriterStats>) -> Telemetry {
        self.writer = stats;
        self
    }

    /// Counts readings handed to the store writer: at most one atomic add per quality
    /// present in the batch.
    pub fn count_readings(&self, source: Source, readings: &[Reading]) {
        let mut tally = [0u64; Quality::ALL.len()];
        for r in readings {
            tally[quality_slot(r.quality)] += 1;
        }
        for (slot, n) in self.readings[source.slot()].iter().zip(tally) {
            if n > 0 {
                slot.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Readings counted for `source` with `quality`.
    pub fn readings(&self, source: Source, quality: Quality) -> u64 {
        self.readings[source.slot()][quality_slot(quality)].load(Ordering::Relaxed)
    }

    /// Whether `source` has configured sensors.
    pub fn has_source(&self, source: Source) -> bool {
        self.sources[source.slot()]
    }

    /// The slot of Modbus device `i` (index in `config.devices`).
    pub fn modbus_device(&self, i: usize) -> Arc<Device> {
        self.modbus
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::new(Device::new(Source::Modbus, "", false)))
    }

    /// The slot of UPS `i` (index in `config.ups`).
    pub fn ups_device(&self, i: usize) -> Arc<Device> {
        self.ups
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::new(Device::new(Source::Ups, "", false)))
    }

    /// The slot of serial device `i` (index in `config.serial_devices`).
    pub fn serial_device(&self, i: usize) -> Arc<Device> {
        self.serial
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::new(Device::new(Source::Serial, "", false)))
    }

    /// Every polled device, Modbus first.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.modbus
            .iter()
            .chain(&self.ups)
            .chain(&self.serial)
            .map(|d| d.as_ref())
            .filter(|d| d.polled)
    }
}

/// The sources' figures on `/metrics`: readings by source and quality, whether each
/// device (and the MQTT broker) is connected, poll latency, and when the daemon started.
struct SourceMetrics(Arc<Telemetry>);

impl std::fmt::Debug for SourceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceMetrics")
    }
}

impl Collector for SourceMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let t = &self.0;
        families::gauge(
            &mut enc,
            "cryowatch_start_time_seconds",
            "When the daemon started (Unix time).",
            t.started as f64 / 1000.0,
        )?;
        let mut m = families::family(
            &mut enc,
            "cryowatch_readings_total",
            MetricType::Counter,
            "Readings handed to the store writer, by source and quality.",
        )?;
        for source in Source::ALL.into_iter().filter(|s| t.has_source(*s)) {
            for q in Quality::ALL {
                families::counter_sample(
                    &mut m,
                    &[("source", source.as_str()), ("quality", q.as_str())],
                    t.readings(source, q),
                )?;
            }
        }
        let mut m = families::family(
            &mut enc,
            "cryowatch_source_connected",
            MetricType::Gauge,
            "1 when the device answered its last poll (modbus: connection open and an answer, exception responses included; ups: upsd returned the UPS's variables; serial: the port is open and at least one unit answered) or the MQTT broker connection is up; 0 otherwise.",
        )?;
        for d in t.devices() {
            families::gauge_sample(
                &mut m,
                &[("source", d.source.as_str()), ("device", &d.id)],
                u64::from(d.connected()),
            )?;
        }
        if let Some(broker) = &t.mqtt_broker {
            let up = t.mqtt.connected.load(Ordering::Relaxed);
            families::gauge_sample(&mut m, &[("source", "mqtt"), ("device", broker)], u64::from(up))?;
        }
        let mut m = families::family(
            &mut enc,
            "cryowatch_poll_duration_seconds",
            MetricType::Histogram,
            "Duration of each poll that sent requests to a device, answered or not.",
        )?;
        for d in t.devices() {
            families::histogram_sample(&mut m, &[("source", d.source.as_str()), ("device", &d.id)], &d.poll)?;
        }
        Ok(())
    }
}

impl Telemetry {
    /// Registers the sources' figures (and the MQTT source's counters, when MQTT
    /// sensors are configured) for `/metrics`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(SourceMetrics(self.clone())));
        if self.mqtt_broker.is_some() {
            self.mqtt.register(registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1, "0.3 ms <= 0.5 ms");
        assert_eq!(s.cumulative[1], 2, "1 ms <= 1 ms (inclusive)");
        assert_eq!(s.cumulative[5], 2, "nothing up to 25 ms");
        assert_eq!(s.cumulative[6], 3, "30 ms <= 50 ms");
        assert_eq!(s.cumulative[BUCKETS.len() - 1], 3, "60 s is above every bound");
        assert_eq!(s.count(), 4);
        assert!((s.sum_seconds - 60.0313).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn readings_are_counted_by_source_and_quality() {
        let t = Telemetry {
            started: 0,
            sources: [true, false, false, false, false],
            readings: Default::default(),
            modbus: Vec::new(),
            ups: Vec::new(),
            serial: Vec::new(),
            mqtt_broker: None,
            mqtt: Arc::default(),
            writer: Arc::default(),
        };
        let batch = [
            Reading::good(0, 1, 1.0),
            Reading::bad(1, 1, Quality::CommError),
            Reading::good(2, 1, 2.0),
        ];
        t.count_readings(Source::Modbus, &batch);
        t.count_readings(Source::Modbus, &batch[1..2]);
        assert_eq!(t.readings(Source::Modbus, Quality::Good), 2);
        assert_eq!(t.readings(Source::Modbus, Quality::CommError), 2);
        assert_eq!(t.readings(Source::Modbus, Quality::Stale), 0);
        assert_eq!(t.readings(Source::Ups, Quality::Good), 0);
        assert!(t.has_source(Source::Modbus) && !t.has_source(Source::Mqtt));
    }
}
