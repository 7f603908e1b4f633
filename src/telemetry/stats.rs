//! The counters each stage keeps in its own atomics, defined here so that the stages
//! depend on telemetry and telemetry on none of them, and the collector each stage
//! registers to expose them on `/metrics` (read at each scrape, nothing copied).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Histogram, QueueDepth, families};
use crate::model::TimestampMs;

/// The commit stage's counters, read by `status`, benchmarks, logs and `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub committed: AtomicU64,
    pub transactions: AtomicU64,
    /// Failed commit attempts (each retry counts).
    pub failures: AtomicU64,
    /// When the current run of failed commits began (ms since the epoch); 0 while
    /// commits succeed. Watched by the dispatcher ([`crate::store::outage`]).
    pub failing_since: AtomicI64,
    /// The error of the last failed commit.
    last_error: Mutex<String>,
    /// Duration of each successful commit (readings, alarm evaluation and changes).
    pub commit: Histogram,
}

impl WriterStats {
    /// When the current run of failed commits began; `None` while commits succeed.
    pub fn failing_since(&self) -> Option<TimestampMs> {
        Some(self.failing_since.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    /// The error of the last failed commit (empty when none failed).
    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn failed(&self, error: String, now: TimestampMs) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        // 0 means "not failing": an outage starting exactly at the epoch is noted 1 ms on.
        let _ = self
            .failing_since
            .compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }

    pub(crate) fn succeeded(&self) {
        self.failing_since.store(0, Ordering::Relaxed);
    }
}

/// Counters of what the source received.
#[derive(Debug, Default)]
pub struct MqttStats {
    pub messages: AtomicU64,
    pub readings: AtomicU64,
    pub malformed: AtomicU64,
    pub unknown_topic: AtomicU64,
    /// Messages larger than the MQTT source's `MAX_PAYLOAD`, skipped and acknowledged.
    pub oversized: AtomicU64,
    /// Readings stamped more than `max_clock_skew` ahead of the clock: stored, flagged.
    pub future: AtomicU64,
    pub connects: AtomicU64,
    /// Connections the broker accepted without the session it kept for us before:
    /// readings published while disconnected may be missing.
    pub sessions_lost: AtomicU64,
    /// Redelivered messages recognised as already stored and only acknowledged.
    pub redelivered: AtomicU64,
    /// The broker accepted our connection and it has not failed since.
    pub connected: AtomicBool,
}

/// The dispatcher's counters: pages sent, failed attempts, results by channel.
#[derive(Debug, Default)]
pub struct DispatchStats {
    pub sent: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Notifications no channel could deliver on their last pass: the local critical
    /// condition "pages are not getting out".
    pub undeliverable: AtomicU64,
    /// Attempts by (channel, result) as recorded in the outbox (`sent`, `failed`,
    /// `failed_retryable`, `unreachable`, `fate_delivered`, `fate_failed`), plus
    /// `unavailable` for a channel that could not be built.
    results: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl DispatchStats {
    /// Counts one attempt on `channel` with `result`.
    pub fn count(&self, channel: &str, result: &'static str) {
        let mut map = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((channel.to_string(), result)).or_insert(0) += 1;
    }

    /// Every (channel, result, count) so far, in order.
    pub fn results(&self) -> Vec<(String, &'static str, u64)> {
        let map = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|((c, r), n)| (c.clone(), *r, *n)).collect()
    }
}

/// `/metrics` figures of the MQTT source.
#[derive(Debug)]
struct MqttMetrics(Arc<MqttStats>);

impl Collector for MqttMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        let counters = [
            ("cryowatch_mqtt_messages_total", "MQTT messages received.", &m.messages),
            (
                "cryowatch_mqtt_malformed_messages_total",
                "MQTT payloads that could not be parsed (skipped and acknowledged).",
                &m.malformed,
            ),
            (
                "cryowatch_mqtt_oversized_messages_total",
                "MQTT messages larger than a reading may be (1 MiB; skipped and acknowledged).",
                &m.oversized,
            ),
            (
                "cryowatch_mqtt_future_readings_total",
                "MQTT readings stamped more than mqtt.max_clock_skew ahead of the clock (stored and flagged, never evaluated).",
                &m.future,
            ),
            (
                "cryowatch_mqtt_unknown_topic_messages_total",
                "MQTT messages on a topic no sensor is configured for.",
                &m.unknown_topic,
            ),
            (
                "cryowatch_mqtt_redelivered_messages_total",
                "MQTT redeliveries recognised as already stored and only acknowledged.",
                &m.redelivered,
            ),
            (
                "cryowatch_mqtt_connects_total",
                "Connections the MQTT broker accepted.",
                &m.connects,
            ),
            (
                "cryowatch_mqtt_sessions_lost_total",
                "Connections the MQTT broker accepted without the session it kept before (restarted without persistence, session expired): readings published while disconnected may be missing.",
                &m.sessions_lost,
            ),
        ];
        for (name, help, v) in counters {
            families::counter(&mut enc, name, help, v.load(Ordering::Relaxed))?;
        }
        Ok(())
    }
}

impl MqttStats {
    /// Registers the MQTT source's counters for `/metrics`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(MqttMetrics(self.clone())));
    }
}

/// `/metrics` figures of the commit stage.
struct WriterMetrics {
    stats: Arc<WriterStats>,
    queue: Option<QueueDepth>,
}

impl fmt::Debug for WriterMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterMetrics").field("stats", &self.stats).finish()
    }
}

impl Collector for WriterMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let w = &self.stats;
        let mut m = families::family(
            &mut enc,
            "cryowatch_store_commit_duration_seconds",
            MetricType::Histogram,
            "Duration of each store transaction that committed (readings, alarm evaluation and changes).",
        )?;
        families::histogram_sample(&mut m, &[], &w.commit)?;
        families::counter(
            &mut enc,
            "cryowatch_store_committed_readings_total",
            "Readings committed to the store (duplicates included).",
            w.committed.load(Ordering::Relaxed),
        )?;
        families::counter(
            &mut enc,
            "cryowatch_store_transactions_total",
            "Store transactions committed by the writer.",
            w.transactions.load(Ordering::Relaxed),
        )?;
        families::counter(
            &mut enc,
            "cryowatch_store_write_failures_total",
            "Store transactions that failed and were retried.",
            w.failures.load(Ordering::Relaxed),
        )?;
        if let Some((depth, capacity)) = self.queue.as_ref().and_then(|q| q()) {
            families::gauge(
                &mut enc,
                "cryowatch_store_queue_depth",
                "Messages (one source batch of readings, or a clock tick) waiting for the store writer.",
                depth,
            )?;
            families::gauge(
                &mut enc,
                "cryowatch_store_queue_capacity",
                "Messages the store writer's queue holds before sources wait.",
                capacity,
            )?;
        }
        Ok(())
    }
}

impl WriterStats {
    /// Registers the commit stage's figures, with a view of its queue, for `/metrics`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry, queue: Option<QueueDepth>) {
        registry.register_collector(Box::new(WriterMetrics {
            stats: self.clone(),
            queue,
        }));
    }
}

/// Results a delivery attempt is recorded with; each configured channel shows them all.
const RESULTS: [&str; 4] = ["sent", "failed_retryable", "failed", "unreachable"];

/// `/metrics` figures of the dispatcher.
#[derive(Debug)]
struct DispatchMetrics {
    stats: Arc<DispatchStats>,
    /// The configured channels, shown with every result from the start.
    channels: Vec<String>,
}

impl Collector for DispatchMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let mut results: Vec<(String, &str, u64)> = self
            .channels
            .iter()
            .flat_map(|c| RESULTS.map(|r| (c.clone(), r, 0)))
            .collect();
        for (channel, result, n) in self.stats.results() {
            match results.iter_mut().find(|(c, r, _)| *c == channel && *r == result) {
                Some(slot) => slot.2 = n,
                None => results.push((channel, result, n)),
            }
        }
        let mut m = families::family(
            &mut enc,
            "cryowatch_notification_attempts_total",
            MetricType::Counter,
            "Delivery attempts by channel and result (sent, failed_retryable, failed, unreachable; fate_delivered and fate_failed as read back from a gateway; unavailable when the channel could not be set up).",
        )?;
        for (channel, result, n) in &results {
            families::counter_sample(&mut m, &[("channel", channel), ("result", result)], *n)?;
        }
        families::counter(
            &mut enc,
            "cryowatch_notifications_undeliverable_total",
            "Passes in which no channel could deliver a notification (it is retried or given up).",
            self.stats.undeliverable.load(Ordering::Relaxed),
        )
    }
}

impl DispatchStats {
    /// Registers the dispatcher's figures for `/metrics`; `channels` are the configured
    /// channel ids.
    pub fn register(self: &Arc<Self>, registry: &mut Registry, channels: Vec<String>) {
        registry.register_collector(Box::new(DispatchMetrics {
            stats: self.clone(),
            channels,
        }));
    }
}
