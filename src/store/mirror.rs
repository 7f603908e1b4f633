//! The durable outbox that feeds the InfluxDB mirror.
//!
//! While a mirror is configured, every new reading is also appended to `mirror_reading`
//! in the transaction that stores it; the row's id is its place in insertion order. The
//! sink reads batches after its cursor, and only once InfluxDB confirmed a batch moves
//! the cursor past it and deletes the rows, in one transaction. Alarm transitions need no
//! copy: `alarm_event` is append-only and its id is the order, so a second cursor walks it.
//!
//! A batch InfluxDB refuses for its content is moved to `mirror_quarantine` (with the
//! HTTP status and the server's reason) and its readings kept in
//! `mirror_quarantined_reading`, so nothing is dropped silently and `cryowatch influx
//! requeue` can send them again once the cause is fixed.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};
use crate::model::{Quality, TimestampMs, format_rfc3339};

/// Schema migration 5.
pub const MIGRATION: &str = "
    CREATE TABLE mirror_reading (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        sensor  INTEGER NOT NULL,
        t       INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        value   REAL,
        quality INTEGER NOT NULL
    );
    CREATE TABLE mirror_cursor (
        stream   TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE mirror_quarantine (
        id       INTEGER PRIMARY KEY,
        t        INTEGER NOT NULL,
        stream   TEXT NOT NULL,
        first    INTEGER NOT NULL,
        last     INTEGER NOT NULL,
        points   INTEGER NOT NULL,
        status   INTEGER,
        reason   TEXT NOT NULL,
        requeued INTEGER
    );
    CREATE TABLE mirror_quarantined_reading (
        quarantine INTEGER NOT NULL,
        sensor     INTEGER NOT NULL,
        t          INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        value      REAL,
        quality    INTEGER NOT NULL
    );
    CREATE INDEX mirror_quarantined_reading_q ON mirror_quarantined_reading (quarantine);
    CREATE TABLE mirror_health (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        last_ok      INTEGER,
        failing_since INTEGER,
        failure      TEXT,
        refused      INTEGER NOT NULL DEFAULT 0
    );";

/// The two streams the mirror walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Readings,
    AlarmEvents,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Readings => "reading",
            Stream::AlarmEvents => "alarm_event",
        }
    }
}

/// Appends one stored reading to the outbox (called inside the storing transaction).
pub fn enqueue(
    c: &Connection,
    sensor: i64,
    t: TimestampMs,
    seq: i64,
    value: Option<f64>,
    quality: Quality,
) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO mirror_reading (sensor, t, seq, value, quality) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![sensor, t, seq, value, quality.code()])?;
    Ok(())
}

/// Starts (or continues) mirroring. A stream seen for the first time starts at what is
/// stored from now on: alarm transitions recorded before the mirror was configured are
/// not sent (`backfill` sends history on request).
pub fn enable(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO mirror_cursor (stream, position) VALUES ('reading', 0) ON CONFLICT DO NOTHING",
        [],
    )?;
    c.execute(
        "INSERT INTO mirror_cursor (stream, position)
         SELECT 'alarm_event', coalesce(max(id), 0) FROM alarm_event WHERE true
         ON CONFLICT DO NOTHING",
        [],
    )?;
    Ok(())
}

/// Stops mirroring: the outbox is emptied (the readings stay in the store) and the
/// cursors forgotten. Returns how many queued readings were dropped from the outbox.
pub fn disable(c: &Connection) -> rusqlite::Result<usize> {
    let dropped = c.execute("DELETE FROM mirror_reading", [])?;
    c.execute("DELETE FROM mirror_cursor", [])?;
    Ok(dropped)
}

/// Whether mirroring is on (a cursor exists).
pub fn enabled(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row("SELECT EXISTS (SELECT 1 FROM mirror_cursor)", [], |r| r.get(0))
}

pub fn cursor(c: &Connection, stream: Stream) -> rusqlite::Result<i64> {
    Ok(c.query_row(
        "SELECT position FROM mirror_cursor WHERE stream = ?1",
        [stream.as_str()],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

/// A reading waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub id: i64,
    pub sensor: i64,
    pub t: TimestampMs,
    pub seq: i64,
    pub value: Option<f64>,
    pub quality: Quality,
}

/// Up to `limit` readings after the cursor, in insertion order.
pub fn next_readings(c: &Connection, limit: usize) -> rusqlite::Result<Vec<Queued>> {
    let after = cursor(c, Stream::Readings)?;
    let mut st = c.prepare_cached(
        "SELECT id, sensor, t, seq, value, quality FROM mirror_reading WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    st.query_map(params![after, limit as i64], |r| {
        Ok(Queued {
            id: r.get(0)?,
            sensor: r.get(1)?,
            t: r.get(2)?,
            seq: r.get(3)?,
            value: r.get(4)?,
            quality: Quality::from_code(r.get(5)?).unwrap_or(Quality::CommError),
        })
    })?
    .collect()
}

/// An alarm transition to mirror, with its id (the stream's position).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    pub id: i64,
    pub event: super::alarms::EventRow,
}

/// Up to `limit` alarm transitions after the cursor, in order.
pub fn next_events(c: &Connection, limit: usize) -> rusqlite::Result<Vec<QueuedEvent>> {
    let after = cursor(c, Stream::AlarmEvents)?;
    let mut st = c.prepare_cached(&format!(
        "SELECT id, {} FROM alarm_event WHERE id > ?1 ORDER BY id LIMIT ?2",
        super::alarms::EVENT_COLUMNS
    ))?;
    st.query_map(params![after, limit as i64], |r| {
        Ok(QueuedEvent {
            id: r.get(0)?,
            event: super::alarms::event_from(r, 1)?,
        })
    })?
    .collect()
}

/// InfluxDB confirmed everything up to `last`: move the cursor and drop the sent rows.
/// The cursor never moves back.
pub fn confirm(c: &Connection, stream: Stream, last: i64, now: TimestampMs) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE mirror_cursor SET position = max(position, ?2) WHERE stream = ?1",
        params![stream.as_str(), last],
    )?;
    if stream == Stream::Readings {
        c.prepare_cached("DELETE FROM mirror_reading WHERE id <= ?1")?
            .execute([last])?;
    }
    c.execute(
        "INSERT INTO mirror_health (id, last_ok, failing_since, failure, refused) VALUES (1, ?1, NULL, NULL, 0)
         ON CONFLICT (id) DO UPDATE SET last_ok = ?1, failing_since = NULL, failure = NULL, refused = 0",
        [now],
    )?;
    Ok(())
}

/// One batch sent: the ids `first..=last` of a stream, `points` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub stream: Stream,
    pub first: i64,
    pub last: i64,
    pub points: usize,
}

/// InfluxDB refused the batch `span` for its content: keep it aside with the reason and
/// move on.
pub fn quarantine(
    c: &Connection,
    span: Span,
    status: Option<u16>,
    reason: &str,
    now: TimestampMs,
) -> rusqlite::Result<i64> {
    let Span {
        stream,
        first,
        last,
        points,
    } = span;
    c.execute(
        "INSERT INTO mirror_quarantine (t, stream, first, last, points, status, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now, stream.as_str(), first, last, points as i64, status, reason],
    )?;
    let id = c.last_insert_rowid();
    if stream == Stream::Readings {
        c.execute(
            "INSERT INTO mirror_quarantined_reading (quarantine, sensor, t, seq, value, quality)
             SELECT ?1, sensor, t, seq, value, quality FROM mirror_reading WHERE id >= ?2 AND id <= ?3 ORDER BY id",
            params![id, first, last],
        )?;
    }
    c.execute(
        "UPDATE mirror_cursor SET position = max(position, ?2) WHERE stream = ?1",
        params![stream.as_str(), last],
    )?;
    if stream == Stream::Readings {
        c.execute("DELETE FROM mirror_reading WHERE id <= ?1", [last])?;
    }
    Ok(id)
}

/// Records a failed attempt; `refused` marks InfluxDB refusing the credentials or the
/// destination (data kept, a person must act).
pub fn failing(c: &Connection, failure: &str, refused: bool, now: TimestampMs) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO mirror_health (id, last_ok, failing_since, failure, refused) VALUES (1, NULL, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET failing_since = coalesce(failing_since, ?1), failure = ?2, refused = ?3",
        params![now, failure, refused],
    )?;
    Ok(())
}

/// What `requeue` queued again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Requeued {
    pub readings: usize,
    /// Alarm transitions that will be sent again: every one from the first quarantined
    /// on (the stream's cursor moves back; InfluxDB overwrites identical points).
    pub alarm_events: i64,
}

/// Puts every quarantined batch of both streams back in line (after the cause was
/// fixed): quarantined readings go back into the outbox; the alarm transitions' cursor
/// moves back to the first quarantined transition (they are not copied: `alarm_event`
/// keeps them).
pub fn requeue(c: &Connection, now: TimestampMs) -> rusqlite::Result<Requeued> {
    let readings = c.execute(
        "INSERT INTO mirror_reading (sensor, t, seq, value, quality)
         SELECT r.sensor, r.t, r.seq, r.value, r.quality
         FROM mirror_quarantined_reading r JOIN mirror_quarantine q ON q.id = r.quarantine
         WHERE q.requeued IS NULL ORDER BY r.quarantine, r.rowid",
        [],
    )?;
    let first_event: Option<i64> = c.query_row(
        "SELECT min(first) FROM mirror_quarantine WHERE requeued IS NULL AND stream = ?1",
        [Stream::AlarmEvents.as_str()],
        |r| r.get(0),
    )?;
    let mut alarm_events = 0;
    if let Some(first) = first_event {
        c.execute(
            "UPDATE mirror_cursor SET position = min(position, ?2) WHERE stream = ?1",
            params![Stream::AlarmEvents.as_str(), first - 1],
        )?;
        alarm_events = c.query_row(
            "SELECT count(*) FROM alarm_event WHERE id > (SELECT position FROM mirror_cursor WHERE stream = ?1)",
            [Stream::AlarmEvents.as_str()],
            |r| r.get(0),
        )?;
    }
    c.execute(
        "UPDATE mirror_quarantine SET requeued = ?1 WHERE requeued IS NULL",
        [now],
    )?;
    Ok(Requeued { readings, alarm_events })
}

/// Queues the stored readings with `from <= t <= to` (history recorded before the mirror
/// was configured, or lost on the InfluxDB side). Returns how many were queued.
pub fn backfill(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO mirror_reading (sensor, t, seq, value, quality)
         SELECT sensor, t, seq, value, quality FROM reading WHERE t >= ?1 AND t <= ?2 ORDER BY t, sensor, seq",
        params![from, to],
    )
}

/// `cryowatch influx backfill`: turns the mirror on and queues the stored readings with
/// `from <= t <= to`, a day per transaction so the daemon's writer never waits long,
/// then rewinds the alarm transitions to `from`. Returns (readings queued, alarm
/// transitions that will be sent).
pub fn backfill_range(store: &mut Store, from: TimestampMs, to: TimestampMs) -> Result<(usize, i64), StoreError> {
    const DAY: i64 = 24 * 3600 * 1000;
    store.transaction(enable)?;
    // Only the span that holds readings is walked: the oldest and newest reading, from
    // each sensor's primary key.
    let span: (Option<TimestampMs>, Option<TimestampMs>) = store.with_conn(|c| {
        c.query_row(
            "SELECT min((SELECT min(t) FROM reading WHERE sensor = s.id)),
                    max((SELECT max(t) FROM reading WHERE sensor = s.id))
             FROM sensor s",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    })?;
    let (from_held, to_held) = match span {
        (Some(a), Some(b)) => (from.max(a), to.min(b)),
        _ => (1, 0),
    };
    let mut queued = 0;
    let mut start = from_held;
    let to = to_held;
    while start <= to {
        let end = start.saturating_add(DAY - 1).min(to);
        queued += store.transaction(|c| backfill(c, start, end))?;
        if end == TimestampMs::MAX {
            break;
        }
        start = end + 1;
    }
    let events = store.transaction(|c| rewind_events(c, from))?;
    Ok((queued, events))
}

/// Moves the alarm transitions' cursor back so that those from `from` on are sent
/// (again: InfluxDB overwrites identical points). Returns how many will be sent.
pub fn rewind_events(c: &Connection, from: TimestampMs) -> rusqlite::Result<i64> {
    c.execute(
        "UPDATE mirror_cursor SET position = min(position, coalesce((SELECT min(id) FROM alarm_event WHERE t >= ?1), position + 1) - 1)
         WHERE stream = 'alarm_event'",
        [from],
    )?;
    c.query_row(
        "SELECT count(*) FROM alarm_event WHERE id > (SELECT position FROM mirror_cursor WHERE stream = 'alarm_event')",
        [],
        |r| r.get(0),
    )
}

/// How far the mirror is behind, and why, for `status` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lag {
    /// Readings stored but not yet confirmed by InfluxDB.
    pub readings: i64,
    /// Time of the oldest of them (the first in line).
    pub oldest: Option<TimestampMs>,
    /// Alarm transitions not yet confirmed.
    pub alarm_events: i64,
    pub last_ok: Option<TimestampMs>,
    pub failing_since: Option<TimestampMs>,
    pub failure: Option<String>,
    /// InfluxDB refuses the credentials or the destination: data kept, a person must act.
    pub refused: bool,
    /// Batches quarantined (refused for their content) and not requeued.
    pub quarantined_batches: i64,
    pub quarantined_points: i64,
}

pub fn lag(c: &Connection) -> rusqlite::Result<Lag> {
    let readings: i64 = c.query_row("SELECT count(*) FROM mirror_reading", [], |r| r.get(0))?;
    let oldest = c
        .query_row("SELECT t FROM mirror_reading ORDER BY id LIMIT 1", [], |r| r.get(0))
        .optional()?;
    let event_cursor = cursor(c, Stream::AlarmEvents)?;
    let alarm_events: i64 = if enabled(c)? {
        c.query_row("SELECT count(*) FROM alarm_event WHERE id > ?1", [event_cursor], |r| {
            r.get(0)
        })?
    } else {
        0
    };
    let health = c
        .query_row(
            "SELECT last_ok, failing_since, failure, refused FROM mirror_health WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, bool>(3)?)),
        )
        .optional()?;
    let (last_ok, failing_since, failure, refused) = health.unwrap_or((None, None, None, false));
    let (quarantined_batches, quarantined_points) = c.query_row(
        "SELECT count(*), coalesce(sum(points), 0) FROM mirror_quarantine WHERE requeued IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Lag {
        readings,
        oldest,
        alarm_events,
        last_ok,
        failing_since,
        failure,
        refused,
        quarantined_batches,
        quarantined_points,
    })
}

/// `cryowatch influx quarantine`: the refused batches.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub id: i64,
    pub time: String,
    pub stream: String,
    pub points: i64,
    pub status: Option<i64>,
    pub reason: String,
    pub requeued: Option<String>,
}

pub fn quarantined(c: &Connection) -> rusqlite::Result<Vec<Quarantined>> {
    let mut st =
        c.prepare("SELECT id, t, stream, points, status, reason, requeued FROM mirror_quarantine ORDER BY id")?;
    st.query_map([], |r| {
        Ok(Quarantined {
            id: r.get(0)?,
            time: format_rfc3339(r.get(1)?),
            stream: r.get(2)?,
            points: r.get(3)?,
            status: r.get(4)?,
            reason: r.get(5)?,
            requeued: r.get::<_, Option<i64>>(6)?.map(format_rfc3339),
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests;

/// The mirror's outbox as the InfluxDB sink and the command line ask it.
impl Store {
    /// How far the mirror is behind.
    pub fn mirror_lag(&self) -> Result<Lag, StoreError> {
        self.with_conn(lag)
    }

    /// The next readings to mirror, at most `limit`.
    pub fn mirror_next_readings(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        self.with_conn(|c| next_readings(c, limit))
    }

    /// The next alarm transitions to mirror, at most `limit`.
    pub fn mirror_next_events(&self, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        self.with_conn(|c| next_events(c, limit))
    }

    /// Moves a stream's cursor past `last`, confirmed written.
    pub fn mirror_confirm(&mut self, stream: Stream, last: i64, now: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| confirm(c, stream, last, now))
    }

    /// Sets aside points InfluxDB refused for their content (see [`quarantine`]).
    pub fn mirror_quarantine(
        &mut self,
        span: Span,
        status: Option<u16>,
        reason: &str,
        now: TimestampMs,
    ) -> Result<i64, StoreError> {
        self.transaction(|c| quarantine(c, span, status, reason, now))
    }

    /// Records that writes to InfluxDB fail (see [`failing`]).
    pub fn mirror_failing(&mut self, failure: &str, refused: bool, now: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| failing(c, failure, refused, now))
    }

    /// Every quarantined batch, oldest first.
    pub fn mirror_quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.with_conn(quarantined)
    }

    /// Puts the quarantined points back in the queue (see [`requeue`]).
    pub fn mirror_requeue(&mut self, now: TimestampMs) -> Result<Requeued, StoreError> {
        self.transaction(|c| requeue(c, now))
    }
}
