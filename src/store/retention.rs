//! Retention: raw readings are kept for `store.retention` (ten years by default). With
//! `store.reduce_after`, older raw readings are first reduced to per-minute min/max/mean
//! (`reading_minute`), except around alarms (an alarm's span plus ten minutes either
//! side keeps every raw reading) and except readings whose quality is not `good`, which
//! are the record of gaps. Each step works one day at a time, is recorded in the audit
//! trail with what it removed and a hash of what it wrote, and reseals the affected
//! blocks so `audit verify` still holds.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Store, StoreError};
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::audit::{self, seal};

/// Schema version 7.
pub(super) const MIGRATION: &str = "
    CREATE TABLE reading_minute (
        sensor INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        min    REAL NOT NULL,
        max    REAL NOT NULL,
        mean   REAL NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (sensor, minute)
    ) WITHOUT ROWID;";

const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;
/// Raw readings kept either side of an alarm.
const MARGIN: i64 = 10 * MINUTE;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub retention: Duration,
    pub reduce_after: Option<Duration>,
}

/// What one call did; `more` when another slice is already due.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Done {
    pub reduced_raw: i64,
    pub deleted_raw: i64,
    pub more: bool,
}

fn meta_get(c: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn meta_set(c: &Connection, key: &str, v: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, v],
    )?;
    Ok(())
}

/// Works through at most one day of each due step.
pub fn apply(store: &mut Store, policy: &Policy, now: TimestampMs) -> Result<Done, StoreError> {
    store.transaction(|c| apply_in(c, policy, now))
}

fn apply_in(c: &Connection, policy: &Policy, now: TimestampMs) -> rusqlite::Result<Done> {
    let mut done = Done::default();
    let Some(first) = seal::oldest(c)? else { return Ok(done) };
    if let Some(after) = policy.reduce_after {
        let cutoff = crate::model::earlier(now, after).div_euclid(MINUTE) * MINUTE;
        let from = meta_get(c, "retention.reduced_until")?.unwrap_or(first.div_euclid(MINUTE) * MINUTE);
        if from < cutoff {
            let to = from.saturating_add(DAY).min(cutoff);
            done.reduced_raw = reduce(c, from, to, now)?;
            meta_set(c, "retention.reduced_until", to)?;
            done.more |= to < cutoff;
        }
    }
    // Saturating: a retention longer than the time since the epoch deletes nothing.
    let cutoff = crate::model::earlier(now, policy.retention);
    let from = meta_get(c, "retention.deleted_until")?.unwrap_or(first);
    if first < cutoff {
        let from = from.max(first);
        let to = from.saturating_add(DAY).min(cutoff);
        done.deleted_raw = delete(c, from, to, now)?;
        meta_set(c, "retention.deleted_until", to)?;
        done.more |= to < cutoff;
    }
    Ok(done)
}

/// Per-minute summaries of `[from, to)` and the raw readings removed.
fn reduce(c: &Connection, from: TimestampMs, to: TimestampMs, now: TimestampMs) -> rusqlite::Result<i64> {
    let names: Vec<(i64, String)> = c
        .prepare("SELECT id, name FROM sensor")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut summarise = c.prepare_cached(
        "INSERT OR REPLACE INTO reading_minute (sensor, minute, min, max, mean, count)
         SELECT sensor, (t / 60000) * 60000, min(value), max(value), avg(value), count(*) FROM reading
         WHERE sensor = ?1 AND t >= ?2 AND t < ?3 AND quality = 0 AND value IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM alarm a WHERE a.sensor = ?4
                           AND reading.t >= a.raised_at - ?5 AND reading.t <= coalesce(a.cleared_at, ?6) + ?5)
         GROUP BY t / 60000",
    )?;
    let mut remove = c.prepare_cached(
        "DELETE FROM reading WHERE sensor = ?1 AND t >= ?2 AND t < ?3 AND quality = 0
           AND NOT EXISTS (SELECT 1 FROM alarm a WHERE a.sensor = ?4
                           AND reading.t >= a.raised_at - ?5 AND reading.t <= coalesce(a.cleared_at, ?6) + ?5)",
    )?;
    let mut minutes = 0;
    let mut removed = 0;
    for id in seal::reading_sensors(c)? {
        let name = names
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.as_str())
            .unwrap_or("");
        minutes += summarise.execute(params![id, from, to, name, MARGIN, now])? as i64;
        removed += remove.execute(params![id, from, to, name, MARGIN, now])? as i64;
    }
    let resealed = seal::reseal(
        c,
        now,
        &[],
        Some((from, to)),
        "retention: reduced to per-minute summaries",
    )?;
    let detail = serde_json::json!({
        "from": from, "to": to, "raw_removed": removed, "minutes": minutes,
        "minutes_hash": minutes_hash(c, from, to)?, "blocks_resealed": resealed,
    });
    let subject = format!("readings {}..{}", format_rfc3339(from), format_rfc3339(to));
    audit::append(c, now, "readings.reduced", "daemon", &subject, &detail)?;
    Ok(removed)
}

/// Raw readings and summaries of `[from, to)` removed for good.
fn delete(c: &Connection, from: TimestampMs, to: TimestampMs, now: TimestampMs) -> rusqlite::Result<i64> {
    let mut raw = c.prepare_cached("DELETE FROM reading WHERE sensor = ?1 AND t >= ?2 AND t < ?3")?;
    let mut summaries =
        c.prepare_cached("DELETE FROM reading_minute WHERE sensor = ?1 AND minute >= ?2 AND minute < ?3")?;
    let mut removed = 0;
    let mut minutes = 0;
    for id in seal::reading_sensors(c)? {
        removed += raw.execute(params![id, from, to])? as i64;
        minutes += summaries.execute(params![id, from, to])? as i64;
        super::flags::delete(c, id, from, to)?;
    }
    let resealed = seal::reseal(c, now, &[], Some((from, to)), "retention: past the retention period")?;
    let detail = serde_json::json!({
        "from": from, "to": to, "raw_removed": removed, "minutes_removed": minutes, "blocks_resealed": resealed,
    });
    let subject = format!("readings {}..{}", format_rfc3339(from), format_rfc3339(to));
    audit::append(c, now, "readings.deleted", "daemon", &subject, &detail)?;
    Ok(removed)
}

/// The per-minute aggregates kept for `sensor` in `[from, to)`, each passed to `each`
/// as (minute, min, max, mean, count).
pub fn minute_aggregates(
    c: &Connection,
    sensor: i64,
    from: TimestampMs,
    to: TimestampMs,
    mut each: impl FnMut(TimestampMs, f64, f64, f64, i64),
) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached(
        "SELECT minute, min, max, mean, count FROM reading_minute WHERE sensor = ?1 AND minute >= ?2 AND minute < ?3",
    )?;
    let rows = st.query_map(params![sensor, from, to], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    for p in rows {
        let (t, min, max, mean, n) = p?;
        each(t, min, max, mean, n);
    }
    Ok(())
}

/// The per-minute means kept for `sensor` (its readings reduced) from `from` to `to`,
/// both included, each passed to `each` as (minute, mean).
pub fn minute_means(
    c: &Connection,
    sensor: i64,
    from: TimestampMs,
    to: TimestampMs,
    mut each: impl FnMut(TimestampMs, f64),
) -> rusqlite::Result<()> {
    let mut q = c.prepare_cached(
        "SELECT minute, mean FROM reading_minute WHERE sensor = ?1 AND minute >= ?2 AND minute <= ?3",
    )?;
    for p in q.query_map(params![sensor, from, to], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (t, v) = p?;
        each(t, v);
    }
    Ok(())
}

/// SHA-256 over the per-minute summaries of `[from, to)` in key order.
pub fn minutes_hash(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<String> {
    let mut st = c.prepare_cached(
        "SELECT sensor, minute, min, max, mean, count FROM reading_minute WHERE minute >= ?1 AND minute < ?2
         ORDER BY sensor, minute",
    )?;
    let mut q = st.query(params![from, to])?;
    let mut h = Sha256::new();
    while let Some(r) = q.next()? {
        h.update(r.get::<_, i64>(0)?.to_le_bytes());
        h.update(r.get::<_, i64>(1)?.to_le_bytes());
        for i in 2..5 {
            h.update(r.get::<_, f64>(i)?.to_bits().to_le_bytes());
        }
        h.update(r.get::<_, i64>(5)?.to_le_bytes());
    }
    Ok(audit::hex(&h.finalize()))
}

impl Store {
    /// The per-minute aggregates of `sensor` in `from..to` (see [`minute_aggregates`]).
    pub fn minute_aggregates(
        &self,
        sensor: i64,
        from: TimestampMs,
        to: TimestampMs,
        each: impl FnMut(TimestampMs, f64, f64, f64, i64),
    ) -> Result<(), StoreError> {
        self.with_conn(|c| minute_aggregates(c, sensor, from, to, each))
    }

    /// The per-minute means of `sensor` in `from..to` (see [`minute_means`]).
    pub fn minute_means(
        &self,
        sensor: i64,
        from: TimestampMs,
        to: TimestampMs,
        each: impl FnMut(TimestampMs, f64),
    ) -> Result<(), StoreError> {
        self.with_conn(|c| minute_means(c, sensor, from, to, each))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quality;

    #[test]
    fn a_retention_longer_than_time_itself_deletes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("store");
        let ids = store
            .register_sensors(&[("dewar-1.temp".into(), "degC".into())])
            .expect("sensor");
        let now: TimestampMs = 1_795_420_800_000; // 2026-11-23T08:00:00Z
        let rows: Vec<_> = (0..100)
            .map(|i| (ids[0], now - (100 - i) * MINUTE, Some(-190.0), Quality::Good))
            .collect();
        store.insert(&rows).expect("readings");
        // 500,000,000 years: its milliseconds do not fit beside `now` in an i64.
        let huge = Duration::from_secs(500_000_000 * 31_557_600);
        for policy in [
            Policy {
                retention: huge,
                reduce_after: None,
            },
            Policy {
                retention: huge,
                reduce_after: Some(huge / 2),
            },
        ] {
            let done = apply(&mut store, &policy, now).expect("retention");
            assert_eq!((done.deleted_raw, done.reduced_raw), (0, 0), "{policy:?}: {done:?}");
            assert_eq!(store.count().expect("count"), 100);
        }
    }
}
