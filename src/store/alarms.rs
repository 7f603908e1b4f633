//! Alarm tables of the embedded store: alarms, their transitions, rule states (pending
//! delays), shelvings, and requests (acknowledge, shelve) waiting for the daemon.
//!
//! The store writer commits these in the same transaction as the readings that caused
//! them, so after a crash the readings, the alarm state and its history agree.

use rusqlite::{Connection, OptionalExtension, params};

pub use crate::model::changes::{AlarmRow, Changes, EventRow, RequestRow, RuleStateRow, Saved, ShelfRow, TestRow};
use crate::model::{AlarmState, Severity, TimestampMs};

/// Schema version 2.
pub(super) const MIGRATION: &str = "
    CREATE TABLE alarm (
        id          INTEGER PRIMARY KEY,
        rule        TEXT NOT NULL,
        sensor      TEXT NOT NULL,
        asset       TEXT NOT NULL,
        severity    TEXT NOT NULL,
        state       TEXT NOT NULL,
        raised_at   INTEGER NOT NULL,
        since       INTEGER NOT NULL,
        value       REAL,
        latching    INTEGER NOT NULL,
        firing      TEXT NOT NULL,
        returned    INTEGER NOT NULL,
        suppressed  TEXT,
        incident    INTEGER,
        acked_by    TEXT,
        acked_at    INTEGER,
        ack_comment TEXT,
        ack_path    TEXT,
        cleared_at  INTEGER
    );
    CREATE INDEX alarm_open ON alarm (state) WHERE state != 'cleared';
    CREATE TABLE alarm_event (
        id       INTEGER PRIMARY KEY,
        t        INTEGER NOT NULL,
        alarm    INTEGER,
        rule     TEXT,
        sensor   TEXT,
        kind     TEXT NOT NULL,
        state    TEXT NOT NULL,
        severity TEXT,
        value    REAL,
        actor    TEXT NOT NULL,
        comment  TEXT NOT NULL
    );
    CREATE INDEX alarm_event_alarm ON alarm_event (alarm);
    CREATE TABLE rule_state (
        rule  TEXT PRIMARY KEY,
        cond  INTEGER,
        since INTEGER,
        fired INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE shelf (
        id     INTEGER PRIMARY KEY,
        sensor TEXT NOT NULL,
        t_from INTEGER NOT NULL,
        until  INTEGER NOT NULL,
        by     TEXT NOT NULL,
        reason TEXT NOT NULL,
        ended  INTEGER NOT NULL
    );
    CREATE TABLE request (
        id      INTEGER PRIMARY KEY,
        t       INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        args    TEXT NOT NULL,
        done_at INTEGER,
        ok      INTEGER,
        result  TEXT
    );";

/// Writes `changes` (inside the caller's transaction).
pub fn write(c: &Connection, changes: &Changes, now: TimestampMs) -> rusqlite::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut ev = c.prepare_cached(
        "INSERT INTO alarm_event (t, alarm, rule, sensor, kind, state, severity, value, actor, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for e in &changes.events {
        ev.execute(params![
            e.t, e.alarm, e.rule, e.sensor, e.kind, e.state, e.severity, e.value, e.actor, e.comment
        ])?;
    }
    let mut al = c.prepare_cached(
        "INSERT OR REPLACE INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching,
            firing, returned, suppressed, incident, acked_by, acked_at, ack_comment, ack_path, cleared_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?;
    for a in &changes.alarms {
        al.execute(params![
            a.id,
            a.rule,
            a.sensor,
            a.asset,
            a.severity.as_str(),
            a.state.as_str(),
            a.raised_at,
            a.since,
            a.value,
            a.latching,
            a.firing,
            a.returned,
            a.suppressed,
            a.incident,
            a.acked_by,
            a.acked_at,
            a.ack_comment,
            a.ack_path,
            a.cleared_at
        ])?;
    }
    let mut rs =
        c.prepare_cached("INSERT OR REPLACE INTO rule_state (rule, cond, since, fired) VALUES (?1, ?2, ?3, ?4)")?;
    for r in &changes.rule_states {
        rs.execute(params![r.rule, r.cond, r.since, r.fired])?;
    }
    let mut sh = c.prepare_cached(
        "INSERT OR REPLACE INTO shelf (id, sensor, t_from, until, by, reason, ended) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for s in &changes.shelves {
        sh.execute(params![s.id, s.sensor, s.from, s.until, s.by, s.reason, s.ended])?;
    }
    let mut rq =
        c.prepare_cached("UPDATE request SET done_at = ?2, ok = ?3, result = ?4 WHERE id = ?1 AND done_at IS NULL")?;
    for (id, ok, result) in &changes.answered {
        rq.execute(params![id, now, ok, result])?;
    }
    for t in &changes.tests {
        c.execute(
            "INSERT INTO alarm_test (sensor, rule, alarm, started_at, by, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.sensor, t.rule, t.alarm, t.started_at, t.by, t.value],
        )?;
        let detail = serde_json::json!({ "rule": t.rule, "alarm": t.alarm, "value": t.value });
        crate::store::audit::append(
            c,
            now,
            "alarm_test.started",
            &t.by,
            &format!("sensor {}", t.sensor),
            &detail,
        )?;
    }
    audit(c, changes, now)
}

/// The audit rows of `changes`: every transition (with the acknowledgement's path), every
/// shelf placed or ended, every command-line request answered, and the signatures of
/// signed acknowledgements.
fn audit(c: &Connection, changes: &Changes, now: TimestampMs) -> rusqlite::Result<()> {
    use serde_json::json;
    for e in &changes.events {
        let alarm = e.alarm.and_then(|id| changes.alarms.iter().find(|a| a.id == id));
        let mut detail = json!({
            "rule": e.rule, "sensor": e.sensor, "state": e.state, "severity": e.severity,
            "value": e.value, "comment": e.comment, "at": e.t,
        });
        if let Some(a) = alarm {
            detail["asset"] = a.asset.clone().into();
            if e.kind.starts_with("ack") {
                detail["path"] = a.ack_path.clone().into();
            }
            if let Some(why) = &a.suppressed {
                detail["suppressed"] = why.clone().into();
            }
        }
        let subject = match e.alarm {
            Some(id) => format!("alarm {id}"),
            None => e.sensor.clone().unwrap_or_default(),
        };
        crate::store::audit::append(c, now, &format!("alarm.{}", e.kind), &e.actor, &subject, &detail)?;
    }
    for s in &changes.shelves {
        let kind = if s.ended { "shelf.ended" } else { "shelf.placed" };
        let detail = json!({ "id": s.id, "from": s.from, "until": s.until, "reason": s.reason });
        crate::store::audit::append(c, now, kind, &s.by, &format!("sensor {}", s.sensor), &detail)?;
    }
    for (id, ok, result) in &changes.answered {
        let detail = json!({ "ok": ok, "result": result });
        crate::store::audit::append(c, now, "request.answered", "daemon", &format!("request {id}"), &detail)?;
    }
    crate::store::quality::ack::record(c, changes, now)
}

/// The ids of the alarms that are tests.
pub fn test_alarm_ids(c: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut st = c.prepare("SELECT alarm FROM alarm_test WHERE alarm IS NOT NULL")?;
    st.query_map([], |r| r.get(0))?.collect()
}

/// An alarm test as recorded, with what became of its alarm and pages.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    pub id: i64,
    pub sensor: String,
    pub started_at: TimestampMs,
    pub by: String,
    pub rule: String,
    pub value: f64,
    pub alarm: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<TimestampMs>,
    pub ack_comment: Option<String>,
    pub ack_path: Option<String>,
    pub suppressed: Option<String>,
    /// Pages of its alarm sent, and when the first was.
    pub pages: i64,
    pub first_page: Option<TimestampMs>,
}

/// The alarm tests started from `from` to `to` (both included), in order.
pub fn tests_between(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<Vec<TestRecord>> {
    let mut st = c.prepare(
        "SELECT t.id, t.sensor, t.started_at, t.by, t.rule, t.value, t.alarm, a.acked_by, a.acked_at, a.ack_comment,
                a.ack_path, a.suppressed,
                (SELECT count(*) FROM notification n WHERE n.alarm = t.alarm AND n.kind = 'page' AND n.state = 'sent'),
                (SELECT min(done_at) FROM notification n WHERE n.alarm = t.alarm AND n.kind = 'page' AND n.state = 'sent')
         FROM alarm_test t LEFT JOIN alarm a ON a.id = t.alarm
         WHERE t.started_at >= ?1 AND t.started_at <= ?2 ORDER BY t.id",
    )?;
    st.query_map(params![from, to], |r| {
        Ok(TestRecord {
            id: r.get(0)?,
            sensor: r.get(1)?,
            started_at: r.get(2)?,
            by: r.get(3)?,
            rule: r.get(4)?,
            value: r.get(5)?,
            alarm: r.get(6)?,
            acked_by: r.get(7)?,
            acked_at: r.get(8)?,
            ack_comment: r.get(9)?,
            ack_path: r.get(10)?,
            suppressed: r.get(11)?,
            pages: r.get(12)?,
            first_page: r.get(13)?,
        })
    })?
    .collect()
}

/// Shelvings that overlap `[from, to]`, in the order they started.
pub fn shelves_between(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<Vec<ShelfRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {SHELF_COLUMNS} FROM shelf WHERE t_from <= ?2 AND until >= ?1 ORDER BY t_from"
    ))?;
    st.query_map(params![from, to], shelf_from)?.collect()
}

/// The columns of a shelving, in the order [`shelf_from`] reads them.
const SHELF_COLUMNS: &str = "id, sensor, t_from, until, by, reason, ended";

fn shelf_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShelfRow> {
    Ok(ShelfRow {
        id: r.get(0)?,
        sensor: r.get(1)?,
        from: r.get(2)?,
        until: r.get(3)?,
        by: r.get(4)?,
        reason: r.get(5)?,
        ended: r.get(6)?,
    })
}

/// The synthetic value and the person of alarm test `alarm`, when it is one.
pub fn test_of(c: &Connection, alarm: i64) -> rusqlite::Result<Option<(f64, String)>> {
    c.query_row("SELECT value, by FROM alarm_test WHERE alarm = ?1", [alarm], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

pub fn load(c: &Connection) -> rusqlite::Result<Saved> {
    let open = query_alarms(c, true, None)?;
    let mut st = c.prepare("SELECT rule, cond, since, fired FROM rule_state")?;
    let rule_states = st
        .query_map([], |r| {
            Ok(RuleStateRow {
                rule: r.get(0)?,
                cond: r.get(1)?,
                since: r.get(2)?,
                fired: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st = c.prepare(&format!("SELECT {SHELF_COLUMNS} FROM shelf WHERE ended = 0"))?;
    let shelves = st.query_map([], shelf_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let max_alarm_id = c.query_row("SELECT coalesce(max(id), 0) FROM alarm", [], |r| r.get(0))?;
    let max_shelf_id = c.query_row("SELECT coalesce(max(id), 0) FROM shelf", [], |r| r.get(0))?;
    Ok(Saved {
        open,
        rule_states,
        shelves,
        max_alarm_id,
        max_shelf_id,
        test_alarms: test_alarm_ids(c)?,
    })
}

/// Alarms, newest first: only open ones (active or acknowledged) when `open_only`.
pub fn query_alarms(c: &Connection, open_only: bool, id: Option<i64>) -> rusqlite::Result<Vec<AlarmRow>> {
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarm WHERE {} AND (?1 IS NULL OR id = ?1) ORDER BY id DESC",
        if open_only { "state != 'cleared'" } else { "1" }
    );
    let mut st = c.prepare(&sql)?;
    st.query_map([id], alarm_from)?.collect()
}

/// Every alarm that joined the power incident `incident` (open or cleared), oldest first;
/// not the incident's own alarm.
pub fn incident_members(c: &Connection, incident: i64) -> rusqlite::Result<Vec<AlarmRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {ALARM_COLUMNS} FROM alarm WHERE incident = ?1 AND id != ?1 ORDER BY id"
    ))?;
    st.query_map([incident], alarm_from)?.collect()
}

pub(in crate::store) const ALARM_COLUMNS: &str =
    "id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing, returned,
                suppressed, incident, acked_by, acked_at, ack_comment, ack_path, cleared_at";

pub(in crate::store) fn alarm_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRow> {
    Ok(AlarmRow {
        id: r.get(0)?,
        rule: r.get(1)?,
        sensor: r.get(2)?,
        asset: r.get(3)?,
        severity: text_as(r, 4, Severity::parse)?,
        state: text_as(r, 5, AlarmState::parse)?,
        raised_at: r.get(6)?,
        since: r.get(7)?,
        value: r.get(8)?,
        latching: r.get(9)?,
        firing: r.get(10)?,
        returned: r.get(11)?,
        suppressed: r.get(12)?,
        incident: r.get(13)?,
        acked_by: r.get(14)?,
        acked_at: r.get(15)?,
        ack_comment: r.get(16)?,
        ack_path: r.get(17)?,
        cleared_at: r.get(18)?,
    })
}

/// Column `i` read as text and turned into `T` by `parse`: a value no version of
/// cryowatch writes is an error naming it, never a silent default.
fn text_as<T>(r: &rusqlite::Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?} in an alarm row").into(),
        )
    })
}

/// The columns of an alarm transition, in the order [`event_from`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "t, alarm, rule, sensor, kind, state, severity, value, actor, comment";

/// An alarm transition from a row whose columns `first..` are [`EVENT_COLUMNS`].
pub(crate) fn event_from(r: &rusqlite::Row, first: usize) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        t: r.get(first)?,
        alarm: r.get(first + 1)?,
        rule: r.get(first + 2)?,
        sensor: r.get(first + 3)?,
        kind: r.get(first + 4)?,
        state: r.get(first + 5)?,
        severity: r.get(first + 6)?,
        value: r.get(first + 7)?,
        actor: r.get(first + 8)?,
        comment: r.get(first + 9)?,
    })
}

/// Transitions in order, of one alarm or of all.
pub fn query_events(c: &Connection, alarm: Option<i64>) -> rusqlite::Result<Vec<EventRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM alarm_event WHERE ?1 IS NULL OR alarm = ?1 ORDER BY id"
    ))?;
    st.query_map([alarm], |r| event_from(r, 0))?.collect()
}

/// Requests not answered yet, oldest first.
pub fn pending_requests(c: &Connection) -> rusqlite::Result<Vec<RequestRow>> {
    let mut st = c.prepare_cached("SELECT id, kind, args FROM request WHERE done_at IS NULL ORDER BY id")?;
    st.query_map([], |r| {
        let args: String = r.get(2)?;
        Ok(RequestRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            args: serde_json::from_str(&args).unwrap_or(serde_json::Value::Null),
        })
    })?
    .collect()
}

/// Records an inbound message's id (a gateway's MessageSid); false when it was seen
/// before, so a replayed webhook call is handled once.
pub fn first_delivery(c: &Connection, sid: &str, now: TimestampMs) -> rusqlite::Result<bool> {
    let added = c.execute(
        "INSERT OR IGNORE INTO inbound_sms (sid, t) VALUES (?1, ?2)",
        params![sid, now],
    )?;
    Ok(added == 1)
}

/// Queues a request for the running daemon; returns its id.
pub fn insert_request(c: &Connection, kind: &str, args: &serde_json::Value, now: TimestampMs) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO request (t, kind, args) VALUES (?1, ?2, ?3)",
        params![now, kind, args.to_string()],
    )?;
    Ok(c.last_insert_rowid())
}

/// The answer to a request, once the daemon gave it: (ok, result text).
pub fn request_answer(c: &Connection, id: i64) -> rusqlite::Result<Option<(bool, String)>> {
    c.query_row(
        "SELECT ok, result FROM request WHERE id = ?1 AND done_at IS NOT NULL",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// An alarm, whether it is a test, and its pages `(sent, delivered)`.
pub type AlarmPages = (AlarmRow, bool, (i64, i64));

/// The alarm tables as the rest of the program asks them.
impl crate::store::Store {
    /// Alarms, newest first: only open ones (active or acknowledged) when `open_only`.
    pub fn alarms(&self, open_only: bool) -> Result<Vec<AlarmRow>, crate::store::StoreError> {
        self.with_conn(|c| query_alarms(c, open_only, None))
    }

    /// One alarm, open or not.
    pub fn alarm(&self, id: i64) -> Result<Option<AlarmRow>, crate::store::StoreError> {
        self.with_conn(|c| Ok(query_alarms(c, false, Some(id))?.pop()))
    }

    /// Alarm transitions in order, of one alarm or of all.
    pub fn events(&self, alarm: Option<i64>) -> Result<Vec<EventRow>, crate::store::StoreError> {
        self.with_conn(|c| query_events(c, alarm))
    }

    /// The synthetic value and the person of alarm test `alarm`, when it is one.
    pub fn test_of(&self, alarm: i64) -> Result<Option<(f64, String)>, crate::store::StoreError> {
        self.with_conn(|c| test_of(c, alarm))
    }

    /// The alarm tests started from `from` to `to` (both included), in order.
    pub fn tests_between(
        &self,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<TestRecord>, crate::store::StoreError> {
        self.with_conn(|c| tests_between(c, from, to))
    }

    /// Shelvings that overlap `from`..`to`.
    pub fn shelves_between(
        &self,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<ShelfRow>, crate::store::StoreError> {
        self.with_conn(|c| shelves_between(c, from, to))
    }

    /// What the alarm engine resumes from: open alarms, rule states, shelvings.
    pub fn saved_alarm_state(&self) -> Result<Saved, crate::store::StoreError> {
        self.with_conn(load)
    }

    /// Every alarm `keep` takes, oldest first, each with whether it is a test and its
    /// pages `(sent, delivered)`.
    pub fn alarms_with_pages(
        &self,
        keep: impl Fn(&AlarmRow) -> bool,
    ) -> Result<Vec<AlarmPages>, crate::store::StoreError> {
        self.with_conn(|c| {
            let tests = test_alarm_ids(c)?;
            let mut rows = query_alarms(c, false, None)?;
            rows.retain(|a| keep(a));
            rows.sort_by_key(|a| a.id);
            rows.into_iter()
                .map(|a| {
                    let pages = crate::store::outbox::page_counts(c, a.id)?;
                    let test = tests.contains(&a.id);
                    Ok((a, test, pages))
                })
                .collect()
        })
    }

    /// Queues a request for the running daemon; returns its id.
    pub fn queue_request(
        &mut self,
        kind: &str,
        args: &serde_json::Value,
        now: TimestampMs,
    ) -> Result<i64, crate::store::StoreError> {
        self.transaction(|c| insert_request(c, kind, args, now))
    }

    /// The answer to a request, once the daemon gave it: (ok, result text).
    pub fn request_answer(&self, id: i64) -> Result<Option<(bool, String)>, crate::store::StoreError> {
        self.with_conn(|c| request_answer(c, id))
    }

    /// Persists alarm changes made outside the commit stage (the command line's own
    /// engine when no daemon runs).
    pub fn write_alarm_changes(&mut self, changes: &Changes, now: TimestampMs) -> Result<(), crate::store::StoreError> {
        self.transaction(|c| write(c, changes, now))
    }
}

impl crate::store::Store {
    /// Queues a request for the running daemon and records `audit_kind` by `actor` in
    /// the audit trail, in one transaction; returns the request's id.
    pub fn queue_request_audited(
        &mut self,
        kind: &str,
        args: &serde_json::Value,
        (audit_kind, actor, subject): (&str, &str, &str),
        now: TimestampMs,
    ) -> Result<i64, crate::store::StoreError> {
        self.transaction(|c| {
            let id = insert_request(c, kind, args, now)?;
            crate::store::audit::append(c, now, audit_kind, actor, subject, args)?;
            Ok(id)
        })
    }

    /// Handles an inbound SMS in one transaction. `handle` gets a function that queues an
    /// acknowledgement request (returning its id) and says what was done. A message whose
    /// gateway id `sid` was handled before is not handled again: `None`.
    pub fn inbound_sms<T>(
        &mut self,
        sid: Option<&str>,
        now: TimestampMs,
        handle: impl FnOnce(&mut dyn FnMut(&serde_json::Value) -> rusqlite::Result<i64>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, crate::store::StoreError> {
        self.transaction(|c| {
            if let Some(sid) = sid
                && !first_delivery(c, sid, now)?
            {
                return Ok(None);
            }
            let mut queue = |args: &serde_json::Value| insert_request(c, "ack", args, now);
            handle(&mut queue).map(Some)
        })
    }
}
