//! The counters each stage keeps in its own atomics, defined here so that the stages
//! depend on telemetry and telemetry on none of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::Histogram;
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
