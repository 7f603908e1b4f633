//! The InfluxDB v2 mirror. The embedded store stays the system of record; this copies
//! it, from the store's outbox (`store::mirror`), in insertion order and in batches. The
//! cursor moves only once InfluxDB confirmed a batch, so an outage of any length costs
//! only lag: the backlog waits on disk, not in memory, and is sent in order when InfluxDB
//! returns. A crash between a confirmed write and the cursor update sends that batch
//! once more; InfluxDB overwrites identical points.
//!
//! Answers are handled as Telegraf's v2 output handles them (`influx::classify`).

pub mod influx;
pub mod line;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, InfluxConfig};
use crate::model::{TimestampMs, now_ms};
use crate::store::mirror::{Span, Stream};
use crate::store::{Store, StoreError};
use influx::{Outcome, SensorTags};

/// Counters for benchmarks, logs and metrics.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Readings InfluxDB confirmed.
    pub readings: AtomicU64,
    /// Alarm transitions InfluxDB confirmed.
    pub alarm_events: AtomicU64,
    /// Successful write requests.
    pub writes: AtomicU64,
    /// Failed write attempts (to be retried).
    pub retries: AtomicU64,
    /// Points quarantined.
    pub quarantined: AtomicU64,
}

/// `/metrics` figures of the InfluxDB mirror.
#[derive(Debug)]
struct SinkMetrics(Arc<SinkStats>);

impl prometheus_client::collector::Collector for SinkMetrics {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use crate::telemetry::families;
        let s = &self.0;
        let mut m = families::family(
            &mut enc,
            "cryowatch_influx_written_points_total",
            prometheus_client::metrics::MetricType::Counter,
            "Points InfluxDB confirmed, by stream.",
        )?;
        families::counter_sample(&mut m, &[("stream", "readings")], s.readings.load(Ordering::Relaxed))?;
        families::counter_sample(
            &mut m,
            &[("stream", "alarm_events")],
            s.alarm_events.load(Ordering::Relaxed),
        )?;
        families::counter(
            &mut enc,
            "cryowatch_influx_write_retries_total",
            "Failed InfluxDB write attempts (retried).",
            s.retries.load(Ordering::Relaxed),
        )
    }
}

impl SinkStats {
    /// Registers the mirror's counters for `/metrics`.
    pub fn register(self: &Arc<Self>, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(SinkMetrics(self.clone())));
    }
}

/// An outbox row's id and its line (empty when the row makes no point).
type Row = (i64, Vec<u8>);

/// What the sink does next.
#[derive(Debug, PartialEq)]
enum Step {
    /// Sent something (or must resend at once): go on.
    Sent,
    /// Nothing to send in this stream.
    Idle,
    /// Wait this long before the next attempt.
    Wait(Duration),
}

pub struct Sink {
    cfg: InfluxConfig,
    config: Arc<Config>,
    store: Store,
    writer: influx::Writer,
    tags: HashMap<i64, SensorTags>,
    /// Points per write; halved when InfluxDB answers 413.
    limit: usize,
    /// A partial batch already waited one flush interval for more readings.
    waited: bool,
    /// Consecutive failed attempts.
    failures: u32,
    last_failure: Option<String>,
    last_log: Option<Instant>,
    /// The minute whose thresholds were last written.
    thresholds_at: Option<TimestampMs>,
    pub stats: Arc<SinkStats>,
}

impl Sink {
    /// A sink writing `config.influx` from the store at `config.store.path`.
    pub fn new(config: Arc<Config>) -> anyhow::Result<Sink> {
        let Some(cfg) = config.influx.clone() else {
            anyhow::bail!("no [influx] section in the configuration");
        };
        let store = Store::open(&config.store.path)?;
        let writer = influx::Writer::new(&cfg)?;
        let mut sink = Sink {
            limit: cfg.batch_size,
            cfg,
            config,
            store,
            writer,
            tags: HashMap::new(),
            waited: false,
            failures: 0,
            last_failure: None,
            last_log: None,
            thresholds_at: None,
            stats: Arc::new(SinkStats::default()),
        };
        sink.load_tags()?;
        Ok(sink)
    }

    fn load_tags(&mut self) -> Result<(), StoreError> {
        self.tags = self
            .store
            .sensors()?
            .into_iter()
            .map(|(name, (id, unit))| {
                let tags = SensorTags::of(&self.config, &name).unwrap_or_else(|| SensorTags {
                    site: self.config.site.name.clone(),
                    sensor: name,
                    unit,
                    ..SensorTags::default()
                });
                (id, tags)
            })
            .collect();
        Ok(())
    }

    /// Mirrors until `shutdown`. A write in flight at shutdown is abandoned: its batch
    /// is still in the outbox and is sent again at the next start.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let lag = self.store.mirror_lag().unwrap_or_default();
        tracing::info!(
            url = %self.cfg.url,
            bucket = %self.cfg.bucket,
            waiting = lag.readings,
            "InfluxDB mirror started"
        );
        loop {
            let wait = tokio::select! {
                _ = shutdown.cancelled() => break,
                wait = self.pass() => wait,
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracing::info!(
            readings = self.stats.readings.load(Ordering::Relaxed),
            "InfluxDB mirror stopped"
        );
    }

    /// One round: alarm transitions first (few, and what dashboards annotate), then
    /// readings, then the thresholds of the minute. Returns how long to wait before the
    /// next round (`None`: go on at once).
    async fn pass(&mut self) -> Option<Duration> {
        let events = match self.send_events().await {
            Step::Sent => return None,
            Step::Wait(d) => return Some(d),
            Step::Idle => Step::Idle,
        };
        let readings = match self.send_readings().await {
            Step::Sent => return None,
            step => step,
        };
        self.send_thresholds().await;
        match (events, readings) {
            (_, Step::Wait(d)) => Some(d),
            _ => Some(self.cfg.flush_interval),
        }
    }

    async fn send_readings(&mut self) -> Step {
        let limit = self.limit;
        let batch = match self.store.mirror_next_readings(limit) {
            Ok(b) => b,
            Err(e) => return self.store_failed("reading the mirror's outbox", &e),
        };
        if batch.is_empty() {
            self.waited = false;
            return Step::Idle;
        }
        if batch.len() < limit && !self.waited {
            // Give a partial batch one flush interval to fill up.
            self.waited = true;
            return Step::Wait(self.cfg.flush_interval);
        }
        self.waited = false;
        if batch.iter().any(|r| !self.tags.contains_key(&r.sensor))
            && let Err(e) = self.load_tags()
        {
            return self.store_failed("reading the sensor names", &e);
        }
        let precision = self.cfg.precision;
        let rows: Vec<Row> = batch
            .iter()
            .map(|r| {
                let mut line = Vec::new();
                // A reading of a sensor no longer known has no point; it is confirmed
                // with its neighbours.
                if let Some(tags) = self.tags.get(&r.sensor) {
                    influx::reading_point(tags, r, precision).write_to(&mut line);
                }
                (r.id, line)
            })
            .collect();
        self.send_isolating(Stream::Readings, &rows).await
    }

    async fn send_events(&mut self) -> Step {
        let limit = self.limit;
        let batch = match self.store.mirror_next_events(limit) {
            Ok(b) => b,
            Err(e) => return self.store_failed("reading the alarm transitions", &e),
        };
        if batch.is_empty() {
            return Step::Idle;
        }
        let precision = self.cfg.precision;
        let site = self.config.site.name.clone();
        let rows: Vec<Row> = batch
            .iter()
            .map(|e| {
                let tags = e.event.sensor.as_deref().and_then(|s| SensorTags::of(&self.config, s));
                let (asset, unit) = tags.map(|t| (t.asset, t.unit)).unwrap_or_default();
                let mut line = Vec::new();
                influx::alarm_point(&site, &asset, &unit, e, precision).write_to(&mut line);
                (e.id, line)
            })
            .collect();
        self.send_isolating(Stream::AlarmEvents, &rows).await
    }

    /// Writes `rows` (outbox ids in order, each with its encoded line) of `stream`. When
    /// InfluxDB refuses a part for its content, the part is split in halves, sent in
    /// order, until each offending point is alone: it alone is quarantined and its
    /// neighbours land. The cursor moves past a part only once it is confirmed (or its
    /// single point quarantined), so a failure on the way leaves the rest in the outbox.
    async fn send_isolating(&mut self, stream: Stream, rows: &[Row]) -> Step {
        // Parts still to send, the next one last.
        let mut todo: Vec<std::ops::Range<usize>> = Vec::new();
        todo.push(0..rows.len());
        while let Some(range) = todo.pop() {
            let part = &rows[range.clone()];
            let (Some((first, _)), Some((last, _))) = (part.first(), part.last()) else {
                continue;
            };
            let span = Span {
                stream,
                first: *first,
                last: *last,
                points: part.len(),
            };
            let body: Vec<u8> = part.iter().flat_map(|(_, line)| line.iter().copied()).collect();
            let outcome = if body.is_empty() {
                Outcome::Written
            } else {
                self.writer.write(body).await
            };
            match outcome {
                Outcome::Rejected { status, reason } if part.len() > 1 => {
                    tracing::warn!(
                        stream = stream.as_str(),
                        points = part.len(),
                        first = span.first,
                        last = span.last,
                        status,
                        %reason,
                        "InfluxDB refused a batch for its content; sending it in halves to set the refused points apart"
                    );
                    let mid = range.start + part.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
                outcome @ (Outcome::Written | Outcome::Rejected { .. }) => {
                    let step = self.settle(span, outcome);
                    if step != Step::Sent {
                        return step;
                    }
                }
                outcome => return self.settle(span, outcome),
            }
        }
        Step::Sent
    }

    /// Once a minute, while InfluxDB answers, the thresholds in force (for dashboards).
    async fn send_thresholds(&mut self) {
        let minute = now_ms() / 60_000 * 60_000;
        if self.failures > 0 || self.thresholds_at.is_some_and(|t| t >= minute) {
            return;
        }
        let points = influx::threshold_points(&self.config, minute, self.cfg.precision);
        if points.is_empty() {
            self.thresholds_at = Some(minute);
            return;
        }
        let mut body = Vec::new();
        line::encode(&points, &mut body);
        match self.writer.write(body).await {
            Outcome::Written => self.thresholds_at = Some(minute),
            other => tracing::debug!(outcome = ?other, "thresholds not written; trying again"),
        }
    }

    /// Applies a write's outcome to the outbox.
    fn settle(&mut self, span: Span, outcome: Outcome) -> Step {
        let now = now_ms();
        let Span {
            stream,
            last,
            points: n,
            ..
        } = span;
        match outcome {
            Outcome::Written => {
                if let Err(e) = self.store.mirror_confirm(stream, last, now) {
                    // InfluxDB has the batch; it goes again (identical points overwrite).
                    return self.store_failed("moving the mirror's cursor", &e);
                }
                if self.failures > 0 {
                    let lag = self.store.mirror_lag().unwrap_or_default();
                    tracing::info!(
                        failed_attempts = self.failures,
                        waiting = lag.readings,
                        "InfluxDB accepts writes again; sending what waited"
                    );
                }
                self.failures = 0;
                self.last_failure = None;
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                let counter = match stream {
                    Stream::Readings => &self.stats.readings,
                    Stream::AlarmEvents => &self.stats.alarm_events,
                };
                counter.fetch_add(n as u64, Ordering::Relaxed);
                Step::Sent
            }
            Outcome::TooLarge { reason } if n > 1 => {
                self.limit = (n / 2).max(1);
                tracing::warn!(points = n, now_sending = self.limit, %reason, "InfluxDB refused a batch as too large; sending smaller ones");
                Step::Sent
            }
            Outcome::TooLarge { reason } => self.quarantine(span, Some(413), &reason),
            Outcome::Rejected { status, reason } => self.quarantine(span, Some(status), &reason),
            Outcome::Retry { after, reason } => {
                let wait = after.unwrap_or_else(|| self.backoff());
                self.failed(&reason, false, wait);
                Step::Wait(wait)
            }
            Outcome::Refused { status, reason } => {
                let wait = self.backoff();
                let reason = format!(
                    "{reason} — InfluxDB refuses the token, org or bucket (HTTP {status}); readings are kept and sent once [influx] is corrected"
                );
                self.failed(&reason, true, wait);
                Step::Wait(wait)
            }
        }
    }

    fn quarantine(&mut self, span: Span, status: Option<u16>, reason: &str) -> Step {
        let now = now_ms();
        match self.store.mirror_quarantine(span, status, reason, now) {
            Ok(id) => {
                self.stats.quarantined.fetch_add(span.points as u64, Ordering::Relaxed);
                tracing::error!(
                    quarantine = id,
                    stream = span.stream.as_str(),
                    points = span.points,
                    first = span.first,
                    last = span.last,
                    %reason,
                    "InfluxDB refused a batch for its content; it is quarantined (kept in the store; `cryowatch influx requeue` sends it again)"
                );
                Step::Sent
            }
            Err(e) => self.store_failed("quarantining a refused batch", &e),
        }
    }

    /// Exponential backoff from 1 s to `max_retry_interval`, with ±20 % jitter.
    fn backoff(&self) -> Duration {
        let base = Duration::from_secs(1u64 << self.failures.min(16)).min(self.cfg.max_retry_interval);
        base.mul_f64(0.8 + fastrand::f64() * 0.4)
    }

    /// Records a failed attempt: logged when it starts, when its reason changes and once
    /// a minute while it lasts.
    fn failed(&mut self, reason: &str, refused: bool, wait: Duration) {
        self.failures += 1;
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        if let Err(e) = self.store.mirror_failing(reason, refused, now) {
            tracing::error!(error = %e, "cannot record the mirror's failure in the store");
        }
        let changed = self.last_failure.as_deref() != Some(reason);
        let due = self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if changed || due {
            let lag = self.store.mirror_lag().unwrap_or_default();
            if refused {
                tracing::error!(attempts = self.failures, waiting = lag.readings, retry_in = ?wait, %reason, "InfluxDB mirror refused");
            } else {
                tracing::warn!(attempts = self.failures, waiting = lag.readings, retry_in = ?wait, %reason, "InfluxDB mirror cannot write; retrying");
            }
            self.last_log = Some(Instant::now());
            self.last_failure = Some(reason.to_string());
        }
    }

    fn store_failed(&mut self, what: &str, e: &StoreError) -> Step {
        tracing::error!(error = %e, "InfluxDB mirror: {what} failed; trying again");
        Step::Wait(Duration::from_secs(1))
    }
}

/// Starts the sink on its own thread. Returns `None` when no `[influx]` is configured.
pub fn spawn(
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<(std::thread::JoinHandle<()>, Arc<SinkStats>)>> {
    if config.influx.is_none() {
        return Ok(None);
    }
    let sink = Sink::new(config)?;
    let stats = sink.stats.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = std::thread::Builder::new()
        .name("influx-sink".into())
        .spawn(move || runtime.block_on(sink.run(shutdown)))?;
    Ok(Some((handle, stats)))
}
