//! The commit thread: it owns the store's writer connection and commits readings in
//! batches, so no source ever waits on the disk. Whatever is queued when a batch starts
//! goes into one transaction; callers learn of the commit through `on_commit` (the MQTT
//! source acknowledges to the broker only then).
//!
//! The alarm engine runs here too: the readings of a batch are evaluated and the alarm
//! changes they cause are written in the same transaction, so a crash can never keep a
//! reading without its alarm or an alarm without its reading. Clock ticks (stale
//! sensors, delays, suppression) and queued requests (acknowledge, shelve) arrive on
//! the same queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::alarm::engine::Engine;
use crate::model::changes::{AlarmRow, Changes, EventRow};
use crate::model::{Quality, Reading, TimestampMs, now_ms};
use crate::store::{Row, Store};
pub use crate::telemetry::stats::WriterStats;

/// Readings to store, and what to do once they are durable.
pub struct Batch {
    pub readings: Vec<Reading>,
    pub on_commit: Option<Box<dyn FnOnce() + Send>>,
}

impl Batch {
    pub fn new(readings: Vec<Reading>) -> Batch {
        Batch {
            readings,
            on_commit: None,
        }
    }
}

enum Msg {
    Batch(Batch),
    /// Evaluate what time decides and answer queued requests.
    Tick,
}

/// An alarm transition, committed, with the alarm as it is afterwards.
#[derive(Debug, Clone)]
pub struct AlarmEvent {
    pub event: EventRow,
    pub alarm: Option<AlarmRow>,
}

/// A view of the writer's queue that does not keep the writer running.
#[derive(Debug)]
pub struct QueueProbe(mpsc::WeakSender<Msg>);

impl QueueProbe {
    /// (messages waiting, capacity): each message is one source's batch of readings or
    /// a clock tick. `None` once the writer has stopped.
    pub fn depth(&self) -> Option<(usize, usize)> {
        let tx = self.0.upgrade()?;
        let max = tx.max_capacity();
        Some((max.saturating_sub(tx.capacity()), max))
    }
}

/// The cloneable sending side. When every handle is dropped, the writer commits what is
/// queued and stops.
#[derive(Clone)]
pub struct CommitHandle {
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<WriterStats>,
    /// Committed alarm transitions, for the paging stage and for tests.
    pub events: broadcast::Sender<AlarmEvent>,
}

#[derive(Debug, thiserror::Error)]
#[error("the store writer has stopped")]
pub struct WriterStopped;

impl CommitHandle {
    pub async fn send(&self, batch: Batch) -> Result<(), WriterStopped> {
        self.tx.send(Msg::Batch(batch)).await.map_err(|_| WriterStopped)
    }

    /// [`CommitHandle::send`] from a thread outside the runtime (waits while the queue is full).
    pub fn send_blocking(&self, batch: Batch) -> Result<(), WriterStopped> {
        self.tx.blocking_send(Msg::Batch(batch)).map_err(|_| WriterStopped)
    }

    /// Asks for a clock tick unless the queue is full (a busy writer evaluates the
    /// clock with the next tick).
    pub fn tick(&self) -> Result<(), WriterStopped> {
        match self.tx.try_send(Msg::Tick) {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriterStopped),
            _ => Ok(()),
        }
    }

    /// A view of the queue's depth for `/metrics`.
    pub fn queue_probe(&self) -> QueueProbe {
        QueueProbe(self.tx.downgrade())
    }
}

/// Joins the writer thread; returns once every queued reading is committed.
pub struct WriterJoin(JoinHandle<()>);

impl WriterJoin {
    pub async fn join(self) {
        let _ = tokio::task::spawn_blocking(move || self.0.join()).await;
    }
}

/// Starts the writer. `sensor_ids[i]` is the store id of configured sensor `i`.
/// Housekeeping the writer does on its clock ticks, between batches.
#[derive(Debug, Clone, Default)]
pub struct Housekeeping {
    /// Seal blocks of readings into the audit trail: (block length, grace).
    pub seal: Option<(Duration, Duration)>,
    /// Apply the retention policy (checked hourly).
    pub retention: Option<crate::store::retention::Policy>,
}

/// `ranges[i]`: sensor `i`'s id and the values it can plausibly read
/// ([`crate::config::Sensor::valid_range`]).
pub fn spawn(
    store: Store,
    sensor_ids: Vec<i64>,
    ranges: Vec<(String, Option<(f64, f64)>)>,
    queue: usize,
    batch_size: usize,
    engine: Option<Engine>,
    housekeeping: Housekeeping,
) -> std::io::Result<(CommitHandle, WriterJoin)> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let stats = Arc::new(WriterStats::default());
    let (events, _) = broadcast::channel(4096);
    let thread_stats = stats.clone();
    let thread_events = events.clone();
    let mut state = Writer {
        clock: ClockWatch::default(),
        store,
        ids: sensor_ids,
        ranges,
        implausible: std::collections::HashSet::new(),
        engine,
        events: thread_events,
        housekeeping,
        next_seal: 0,
        next_retention: 0,
    };
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || state.run(rx, batch_size, &thread_stats))?;
    Ok((CommitHandle { tx, stats, events }, WriterJoin(handle)))
}

/// Longest wait between two attempts at a commit the store refused: short, so readings
/// flow again within a second of the disk getting space back.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A wall-clock step larger than this between two commits is a clock jump, not drift.
const CLOCK_STEP_MS: i64 = 2_000;

/// Notices steps of the wall clock by comparing it with the monotonic clock.
#[derive(Debug, Default)]
struct ClockWatch {
    last: Option<(Instant, TimestampMs)>,
}

impl ClockWatch {
    /// The step (ms) the wall clock made since the last look, if it made one.
    fn step(&mut self, mono: Instant, wall: TimestampMs) -> Option<i64> {
        let jump = self.last.and_then(|(at, was)| {
            let expected = crate::model::later(was, mono.saturating_duration_since(at));
            let delta = wall.saturating_sub(expected);
            (delta.abs() > CLOCK_STEP_MS).then_some(delta)
        });
        self.last = Some((mono, wall));
        jump
    }
}

struct Writer {
    clock: ClockWatch,
    store: Store,
    ids: Vec<i64>,
    ranges: Vec<(String, Option<(f64, f64)>)>,
    /// Sensors whose last good-looking value was outside their range (logged once).
    implausible: std::collections::HashSet<usize>,
    engine: Option<Engine>,
    events: broadcast::Sender<AlarmEvent>,
    housekeeping: Housekeeping,
    next_seal: TimestampMs,
    next_retention: TimestampMs,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, batch_size: usize, stats: &WriterStats) {
        let mut rows = Vec::with_capacity(batch_size);
        let mut readings = Vec::with_capacity(batch_size);
        let mut callbacks: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut tick = false;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Tick => tick = true,
                    Msg::Batch(batch) => {
                        for mut r in batch.readings {
                            self.plausible(&mut r);
                            if let Some(&id) = self.ids.get(r.sensor) {
                                rows.push(Row {
                                    sensor: id,
                                    time: r.time,
                                    value: r.value,
                                    quality: r.quality,
                                    source_time: r.source_time,
                                });
                                readings.push(r);
                            }
                        }
                        callbacks.extend(batch.on_commit);
                    }
                }
                if rows.len() < batch_size {
                    next = rx.try_recv().ok();
                }
            }
            match self.commit(&rows, &readings, tick, &rx, stats) {
                Some(changes) => {
                    for cb in callbacks.drain(..) {
                        cb();
                    }
                    self.announce(changes);
                }
                None => {
                    // Not stored: the sources must not confirm these readings to their senders.
                    callbacks.clear();
                }
            }
            rows.clear();
            readings.clear();
            if tick {
                self.housekeep();
            }
        }
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!(error = %e, "store checkpoint at shutdown failed");
        }
        tracing::info!(
            committed = stats.committed.load(Ordering::Relaxed),
            failures = stats.failures.load(Ordering::Relaxed),
            "store writer stopped"
        );
    }

    /// A good reading outside its sensor's valid range (JSON `1e308` for a temperature,
    /// a charge of 250 %) is stored as `sensor_fault`, value kept: the probe or its sender
    /// is wrong, and the fault rule speaks for it. Logged once per excursion.
    fn plausible(&mut self, r: &mut Reading) {
        let Some((name, Some((lo, hi)))) = self.ranges.get(r.sensor) else {
            return;
        };
        let Some(v) = r.value.filter(|_| r.quality == Quality::Good) else {
            return;
        };
        if (*lo..=*hi).contains(&v) {
            self.implausible.remove(&r.sensor);
            return;
        }
        r.quality = Quality::SensorFault;
        if self.implausible.insert(r.sensor) {
            tracing::warn!(
                sensor = %name,
                value = v,
                low = lo,
                high = hi,
                "a value outside the sensor's valid_range is stored as sensor_fault"
            );
        }
    }

    /// Seals finished blocks of readings and applies retention, when due. A failure is
    /// logged and tried again later; it never holds up readings.
    fn housekeep(&mut self) {
        let now = now_ms();
        if let Some((interval, grace)) = self.housekeeping.seal
            && now >= self.next_seal
        {
            let interval = crate::model::millis(interval);
            match self.store.seal_due(now, interval, crate::model::millis(grace)) {
                Ok(Some(s)) => {
                    if let Some(problem) = &s.found_changed {
                        tracing::error!(
                            problem = %problem,
                            "readings committed since the last seal were changed outside cryowatch; the seal records it"
                        );
                    }
                    let head = self.store.audit_head().ok().flatten();
                    if s.count == 0 {
                        // After a stop, every hour it lasted is sealed empty, one a tick:
                        // worth a record, not a line each in the journal.
                        tracing::debug!(
                            from = %crate::model::format_rfc3339(s.from),
                            to = %crate::model::format_rfc3339(s.to),
                            audit_seq = head.as_ref().map(|h| h.0),
                            "an empty block sealed into the audit trail"
                        );
                    } else {
                        tracing::info!(
                            from = %crate::model::format_rfc3339(s.from),
                            to = %crate::model::format_rfc3339(s.to),
                            readings = s.count,
                            audit_seq = head.as_ref().map(|h| h.0),
                            audit_head = head.as_ref().map(|h| h.1.as_str()),
                            "readings sealed into the audit trail"
                        );
                    }
                    self.next_seal = if s.more { now } else { now + 1000 };
                }
                Ok(None) => self.next_seal = now + 1000,
                Err(e) => {
                    tracing::error!(error = %e, "sealing readings into the audit trail failed; trying again in a minute");
                    self.next_seal = now + 60_000;
                }
            }
        }
        if let Some(policy) = &self.housekeeping.retention
            && now >= self.next_retention
        {
            match crate::store::retention::apply(&mut self.store, policy, now) {
                Ok(done) => {
                    // More to do: continue on the next tick, a slice at a time.
                    self.next_retention = if done.more { now } else { now + 3_600_000 };
                }
                Err(e) => {
                    tracing::error!(error = %e, "applying the retention policy failed; trying again in an hour");
                    self.next_retention = now + 3_600_000;
                }
            }
        }
    }

    /// Tells listeners (paging, tests) about committed alarm transitions.
    fn announce(&self, changes: Changes) {
        if changes.events.is_empty() || self.events.receiver_count() == 0 {
            return;
        }
        for event in changes.events {
            let alarm = event
                .alarm
                .and_then(|id| changes.alarms.iter().find(|a| a.id == id).cloned());
            let _ = self.events.send(AlarmEvent { event, alarm });
        }
    }

    /// Commits the readings and the alarm changes they cause, retrying with backoff while
    /// the disk refuses. The engine evaluates once; a retry writes the same changes again.
    /// Gives up (returns `None`) only when the daemon is shutting down and the store still
    /// fails, and says how much was lost.
    fn commit(
        &mut self,
        rows: &[Row],
        readings: &[Reading],
        tick: bool,
        rx: &mpsc::Receiver<Msg>,
        stats: &WriterStats,
    ) -> Option<Changes> {
        let mut delay = Duration::from_millis(100);
        let mut attempts = 0u32;
        let mut evaluated: Option<Changes> = None;
        if let Some(delta) = self.clock.step(Instant::now(), now_ms())
            && let Some(e) = self.engine.as_mut()
        {
            tracing::warn!(
                step_ms = delta,
                "the wall clock stepped; staleness keeps counting real time, readings keep the times they were stamped with"
            );
            e.shift_clock(delta);
        }
        loop {
            let engine = &mut self.engine;
            let started = Instant::now();
            let now = now_ms();
            let flags: Vec<_> = readings.iter().map(|r| r.flag).collect();
            let read_requests = tick && engine.is_some() && evaluated.is_none();
            let res = self
                .store
                .commit_readings(rows, &flags, read_requests, now, |new, requests| {
                    // The engine evaluates once: a retry writes the same changes again.
                    evaluated
                        .get_or_insert_with(|| match engine.as_mut() {
                            Some(e) => {
                                // A flagged reading is kept, not believed: the rules never see it.
                                for (r, _) in readings.iter().zip(new).filter(|(r, n)| **n && r.flag.is_none()) {
                                    e.on_reading(r, now);
                                }
                                for req in &requests {
                                    e.request(req, now);
                                }
                                if tick {
                                    e.on_tick(now);
                                }
                                e.take_changes()
                            }
                            None => Changes::default(),
                        })
                        .clone()
                });
            match res {
                Ok(()) => {
                    stats.commit.observe(started.elapsed());
                    stats.committed.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                    if attempts > 0 || stats.failing_since().is_some() {
                        tracing::warn!(
                            attempts,
                            readings = rows.len(),
                            failures_total = stats.failures.load(Ordering::Relaxed),
                            "store write succeeded after retrying"
                        );
                    }
                    stats.succeeded();
                    return Some(evaluated.unwrap_or_default());
                }
                Err(e) => {
                    attempts += 1;
                    stats.failed(e.to_string(), now_ms());
                    // Retried every second while the disk refuses: the first attempts
                    // are logged, then about one a minute (the outage itself is raised
                    // and paged by the dispatcher).
                    if attempts <= 5 || attempts.is_multiple_of(60) {
                        tracing::error!(
                            error = %e,
                            attempts,
                            readings = rows.len(),
                            failures_total = stats.failures.load(Ordering::Relaxed),
                            "store write failed; retrying"
                        );
                    }
                    if rx.is_closed() && attempts >= 5 {
                        tracing::error!(
                            readings = rows.len(),
                            "shutting down with the store still failing: these readings are lost"
                        );
                        return None;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_watch_tells_steps_from_time_passing() {
        let mut w = ClockWatch::default();
        let t0 = Instant::now();
        assert_eq!(w.step(t0, 1_000_000), None, "first look");
        assert_eq!(w.step(t0 + Duration::from_millis(250), 1_000_250), None);
        assert_eq!(
            w.step(t0 + Duration::from_millis(500), 1_001_900),
            None,
            "1.4 s of drift"
        );
        assert_eq!(
            w.step(t0 + Duration::from_millis(750), 1_001_900 + 250 + 3_600_000),
            Some(3_600_000)
        );
        assert_eq!(w.step(t0 + Duration::from_millis(1000), 1_002_400), Some(-3_600_000));
    }
}
