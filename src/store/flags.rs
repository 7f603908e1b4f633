//! Readings kept in the record but not believed (`reading_flag`): stamped far ahead of
//! the daemon's clock. A flagged reading stays in `reading` with the time it claims, so
//! `history` and the audit seals see it as received; the flag keeps it out of every
//! "latest value" (status, dashboard, API, readiness, the alarm engine at start).

use rusqlite::{Connection, OptionalExtension, params};

use super::embedded::Row;
use crate::model::{Flag, TimestampMs};

/// Schema: one row per flagged reading, keyed like `reading`; `received_at` is the
/// daemon's clock when it was committed.
pub(super) const MIGRATION: &str = "
    CREATE TABLE reading_flag (
        sensor      INTEGER NOT NULL,
        t           INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        flag        TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (sensor, t, seq)
    ) WITHOUT ROWID;";

/// SQL condition: the `reading` row in scope is not flagged.
pub(super) const NOT_FLAGGED: &str = "NOT EXISTS (SELECT 1 FROM reading_flag f WHERE f.sensor = reading.sensor AND f.t = reading.t AND f.seq = reading.seq)";

/// Flags the stored reading `row` (the newest of its millisecond with its value and
/// quality, i.e. the one just written).
pub fn record(c: &Connection, row: &Row, flag: Flag, received_at: TimestampMs) -> rusqlite::Result<()> {
    let seq: Option<i64> = c
        .prepare_cached(
            "SELECT seq FROM reading WHERE sensor = ?1 AND t = ?2 AND value IS ?3 AND quality = ?4
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![row.sensor, row.time, row.value, row.quality.code()], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(seq) = seq {
        c.prepare_cached(
            "INSERT OR IGNORE INTO reading_flag (sensor, t, seq, flag, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![row.sensor, row.time, seq, flag.as_str(), received_at])?;
    }
    Ok(())
}

/// Removes the flags of readings of `sensor` in `[from, to)` (retention).
pub(super) fn delete(c: &Connection, sensor: i64, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM reading_flag WHERE sensor = ?1 AND t >= ?2 AND t < ?3")?
        .execute(params![sensor, from, to])
}

/// Flagged readings of one sensor (by store id) with `from <= t <= to`: (t, flag).
pub fn of_sensor(
    c: &Connection,
    sensor: i64,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<Vec<(TimestampMs, String)>> {
    c.prepare_cached("SELECT t, flag FROM reading_flag WHERE sensor = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t, seq")?
        .query_map(params![sensor, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quality;
    use crate::store::Store;

    #[test]
    fn a_flagged_reading_or_one_past_the_bound_is_never_the_latest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("store");
        let id = store.register_sensors(&[("fz".into(), "degC".into())]).expect("sensor")[0];
        let now: TimestampMs = 1_795_420_800_000;
        let far = 4_070_908_800_000; // 2099-01-01
        let row = |t, v| Row {
            sensor: id,
            time: t,
            value: Some(v),
            quality: Quality::Good,
            source_time: true,
        };
        store
            .insert_then(&[row(now - 1_000, -80.0), row(far, -80.5)], |c, _| {
                record(c, &row(far, -80.5), Flag::AheadOfClock, now)
            })
            .expect("insert");
        // Unflagged but past the bound, as a store written before flags existed holds.
        store.insert(&[row(far + 1, -81.0)]).expect("insert");
        let (last, good) = store.latest(id, now + 300_000).expect("latest");
        assert_eq!(last.map(|r| (r.time, r.value)), Some((now - 1_000, Some(-80.0))));
        assert_eq!(good.map(|r| r.time), Some(now - 1_000));
        // With no bound, the flag alone keeps the 2099 reading out.
        let (last, _) = store.latest(id, far).expect("latest");
        assert_eq!(last.map(|r| r.time), Some(now - 1_000));
        let flagged = store.with_conn(|c| of_sensor(c, id, 0, i64::MAX)).expect("flags");
        assert_eq!(flagged, vec![(far, "ahead_of_clock".to_string())]);
    }
}
