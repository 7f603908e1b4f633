//! The commit stage: where a reading becomes an alarm.
//!
//! Sources send batches of readings through a [`CommitHandle`]; one thread
//! ([`commit`]) owns the store's writer connection and the alarm engine, evaluates each
//! batch and commits the readings with the alarm changes they cause, the rule states and
//! the audit binding in one transaction. [`control`] is acknowledge, shelve and alarm
//! tests from the command line, applied through the same engine.
//!
//! `store` only persists and reads; `alarm` only decides. This module is where the two
//! meet.

pub mod commit;
pub mod control;

pub use commit::{Batch, CommitHandle, WriterJoin};

use crate::alarm::engine::Engine;
use crate::config::Config;
use crate::model::{Quality, TimestampMs};
use crate::store::{Store, StoreError};

/// Builds the engine from what the store holds: open alarms, rule states (pending
/// delays keep their original start), shelvings, each sensor's last good reading, and
/// the history rate rules look back on.
pub fn load_engine(config: &Config, store: &Store, sensor_ids: &[i64], now: TimestampMs) -> Result<Engine, StoreError> {
    let saved = store.saved_alarm_state()?;
    let mut last_good = Vec::with_capacity(sensor_ids.len());
    for &id in sensor_ids {
        last_good.push(store.latest(id, config.latest_bound(now))?.1.map(|r| r.time));
    }
    let mut e = Engine::new(config, saved, last_good, now);
    for (s, &id) in sensor_ids.iter().enumerate() {
        if let Some(w) = e.rate_window(s) {
            let mut samples = Vec::new();
            store.history(id, crate::model::earlier(now, w), now, |r| {
                if let (Quality::Good, Some(v)) = (r.quality, r.value) {
                    samples.push((r.time, v));
                }
                true
            })?;
            e.prime_rate(s, &samples);
        }
    }
    Ok(e)
}
