//! Reading back: the sensors ever registered, a sensor's readings over a range or one
//! page of an export at a time, and each sensor's latest value and latest good one.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::model::{Quality, TimestampMs};

use super::{HistoryKey, Latest, Store, StoreError, StoredReading};

impl Store {
    /// Sensor name → (id, unit) for every sensor ever registered.
    pub fn sensors(&self) -> Result<HashMap<String, (i64, String)>, StoreError> {
        self.sql(|c| {
            let mut st = c.prepare("SELECT name, id, unit FROM sensor")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect()
        })
    }

    /// Readings of one sensor with `from <= time <= to`, in time order.
    pub fn history(
        &self,
        sensor_id: i64,
        from: TimestampMs,
        to: TimestampMs,
        mut each: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        self.sql(|c| {
            let mut st = c.prepare(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t, seq",
            )?;
            let mut rows = st.query(params![sensor_id, from, to])?;
            while let Some(r) = rows.next()? {
                if !each(stored_reading(r)?) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Readings of one sensor from key `start` (inclusive) to time `to` (inclusive), in
    /// order, stopping before key `end` when given: one page of an export.
    pub fn history_page(
        &self,
        sensor_id: i64,
        start: HistoryKey,
        to: TimestampMs,
        end: Option<HistoryKey>,
        mut each: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        let end = end.unwrap_or(HistoryKey { t: to, seq: i64::MAX });
        self.sql(|c| {
            let mut st = c.prepare(
                "SELECT t, value, quality FROM reading
                 WHERE sensor = ?1 AND (t, seq) >= (?2, ?3) AND t <= ?4 AND (t, seq) < (?5, ?6)
                 ORDER BY t, seq",
            )?;
            let mut rows = st.query(params![sensor_id, start.t, start.seq, to, end.t, end.seq])?;
            while let Some(r) = rows.next()? {
                if !each(stored_reading(r)?) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The key of the reading `n` places (0-based) after key `start` among those of
    /// `sensor_id` stamped no later than `to`: where the page after `n` rows begins, or
    /// `None` when there are no more.
    pub fn history_nth(
        &self,
        sensor_id: i64,
        start: HistoryKey,
        to: TimestampMs,
        n: u64,
    ) -> Result<Option<HistoryKey>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.sql(|c| {
            c.query_row(
                "SELECT t, seq FROM reading WHERE sensor = ?1 AND (t, seq) >= (?2, ?3) AND t <= ?4
                 ORDER BY t, seq LIMIT 1 OFFSET ?5",
                params![sensor_id, start.t, start.seq, to, n],
                |r| {
                    Ok(HistoryKey {
                        t: r.get(0)?,
                        seq: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// The newest reading of a sensor, and the newest good one, stamped no later than
    /// `not_after` (now plus the clock skew allowed: [`crate::config::Config::latest_bound`])
    /// and not flagged ([`crate::store::flags`]): a reading whose clock ran ahead is never a
    /// sensor's latest value.
    pub fn latest(&self, sensor_id: i64, not_after: TimestampMs) -> Result<Latest, StoreError> {
        Ok(self.latest_of(&[sensor_id], not_after)?.pop().unwrap_or((None, None)))
    }

    /// [`Store::latest`] of many sensors, with the two statements prepared once (most
    /// of a lookup's cost is getting the statement ready, not the index seek).
    pub fn latest_of(&self, sensor_ids: &[i64], not_after: TimestampMs) -> Result<Vec<Latest>, StoreError> {
        self.sql(|c| {
            let not_flagged = crate::store::flags::NOT_FLAGGED;
            let mut newest = c.prepare_cached(&format!(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t <= ?2 AND {not_flagged}
                 ORDER BY t DESC, seq DESC LIMIT 1"
            ))?;
            let mut newest_good = c.prepare_cached(&format!(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t <= ?2 AND quality = 0 AND {not_flagged}
                 ORDER BY t DESC, seq DESC LIMIT 1"
            ))?;
            let mut out = Vec::with_capacity(sensor_ids.len());
            for &id in sensor_ids {
                let last = newest.query_row(params![id, not_after], stored_reading).optional()?;
                let good = match &last {
                    Some(l) if l.quality == Quality::Good => Some(l.clone()),
                    _ => newest_good
                        .query_row(params![id, not_after], stored_reading)
                        .optional()?,
                };
                out.push((last, good));
            }
            Ok(out)
        })
    }
}

/// A row of `SELECT t, value, quality FROM reading` as a reading; an unknown quality
/// code reads as `comm_error`.
fn stored_reading(r: &rusqlite::Row) -> rusqlite::Result<StoredReading> {
    let q: i64 = r.get(2)?;
    Ok(StoredReading {
        time: r.get(0)?,
        value: r.get(1)?,
        quality: Quality::from_code(q).unwrap_or(Quality::CommError),
    })
}
