//! The notification outbox: every page is written here before it is sent, and every
//! attempt is recorded. A notification is unique per (alarm, kind, escalation cycle,
//! round, step, contact, channel), so planning the same step again — after a restart,
//! or on every pass of the planner — never pages twice.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::model::TimestampMs;
use crate::store::StoreError;

/// Schema version 3.
pub(super) const MIGRATION: &str = "
    CREATE TABLE notification (
        id         INTEGER PRIMARY KEY,
        alarm      INTEGER,
        kind       TEXT NOT NULL,
        cycle      INTEGER NOT NULL,
        round      INTEGER NOT NULL,
        step       INTEGER NOT NULL,
        contact    TEXT NOT NULL,
        channel    TEXT NOT NULL,
        subject    TEXT NOT NULL,
        body       TEXT NOT NULL,
        sms        TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        state      TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    INTEGER NOT NULL,
        via        TEXT,
        detail     TEXT,
        error      TEXT,
        done_at    INTEGER,
        UNIQUE (alarm, kind, cycle, round, step, contact, channel)
    );
    CREATE INDEX notification_pending ON notification (next_at) WHERE state = 'pending';
    CREATE INDEX notification_alarm ON notification (alarm);
    CREATE TABLE delivery (
        id           INTEGER PRIMARY KEY,
        notification INTEGER NOT NULL,
        t            INTEGER NOT NULL,
        channel      TEXT NOT NULL,
        result       TEXT NOT NULL,
        detail       TEXT NOT NULL
    );
    CREATE INDEX delivery_notification ON delivery (notification);";

/// A notification to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub alarm: Option<i64>,
    pub kind: String,
    pub cycle: i64,
    pub round: i64,
    pub step: i64,
    pub contact: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub sms: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub alarm: Option<i64>,
    pub kind: String,
    pub cycle: i64,
    pub round: i64,
    pub step: i64,
    pub contact: String,
    pub channel: String,
    pub subject: String,
    pub body: String,
    pub sms: String,
    pub created_at: TimestampMs,
    pub state: String,
    pub attempts: i64,
    pub next_at: TimestampMs,
    pub via: Option<String>,
    pub detail: Option<String>,
    pub error: Option<String>,
    pub done_at: Option<TimestampMs>,
}

/// Writes a notification unless the same one exists; returns its id when it is new.
pub fn enqueue(c: &Connection, n: &NewNotification, now: TimestampMs) -> rusqlite::Result<Option<i64>> {
    let added = c.execute(
        "INSERT OR IGNORE INTO notification (alarm, kind, cycle, round, step, contact, channel, subject, body, sms,
             created_at, state, next_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?11)",
        params![
            n.alarm, n.kind, n.cycle, n.round, n.step, n.contact, n.channel, n.subject, n.body, n.sms, now
        ],
    )?;
    if added == 0 {
        return Ok(None);
    }
    let id = c.last_insert_rowid();
    let d = serde_json::json!({
        "alarm": n.alarm, "kind": n.kind, "cycle": n.cycle, "round": n.round, "step": n.step,
        "contact": n.contact, "channel": n.channel, "subject": n.subject,
    });
    crate::store::audit::append(
        c,
        now,
        "notification.queued",
        "daemon",
        &format!("notification {id}"),
        &d,
    )?;
    Ok(Some(id))
}

/// The `(round, step)` pages of one escalation cycle of `alarm` already in the outbox.
pub fn planned_steps(c: &Connection, alarm: i64, cycle: i64) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut st = c.prepare_cached(
        "SELECT DISTINCT round, step FROM notification WHERE alarm = ?1 AND kind = 'page' AND cycle = ?2",
    )?;
    st.query_map(params![alarm, cycle], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        alarm: r.get(1)?,
        kind: r.get(2)?,
        cycle: r.get(3)?,
        round: r.get(4)?,
        step: r.get(5)?,
        contact: r.get(6)?,
        channel: r.get(7)?,
        subject: r.get(8)?,
        body: r.get(9)?,
        sms: r.get(10)?,
        created_at: r.get(11)?,
        state: r.get(12)?,
        attempts: r.get(13)?,
        next_at: r.get(14)?,
        via: r.get(15)?,
        detail: r.get(16)?,
        error: r.get(17)?,
        done_at: r.get(18)?,
    })
}

const COLUMNS: &str = "id, alarm, kind, cycle, round, step, contact, channel, subject, body, sms, created_at, state,
    attempts, next_at, via, detail, error, done_at";

/// Pending notifications due at `now`, oldest first.
pub fn due(c: &Connection, now: TimestampMs, limit: usize) -> rusqlite::Result<Vec<Notification>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notification WHERE state = 'pending' AND next_at <= ?1 ORDER BY id LIMIT ?2"
    ))?;
    st.query_map(params![now, limit as i64], row)?.collect()
}

/// Notifications of one alarm (or all, newest last).
pub fn list(c: &Connection, alarm: Option<i64>) -> rusqlite::Result<Vec<Notification>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM notification WHERE ?1 IS NULL OR alarm = ?1 ORDER BY id"
    ))?;
    st.query_map([alarm], row)?.collect()
}

/// Records one attempt on one channel.
pub fn record_attempt(
    c: &Connection,
    id: i64,
    channel: &str,
    result: &str,
    detail: &str,
    now: TimestampMs,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO delivery (notification, t, channel, result, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, now, channel, result, detail],
    )?;
    let d = serde_json::json!({ "channel": channel, "result": result, "detail": detail });
    crate::store::audit::append(
        c,
        now,
        "notification.attempt",
        "daemon",
        &format!("notification {id}"),
        &d,
    )?;
    Ok(())
}

/// Final outcome: `sent` (with the channel that delivered) or `cancelled`.
pub fn finish(
    c: &Connection,
    id: i64,
    state: &str,
    via: Option<&str>,
    detail: &str,
    now: TimestampMs,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notification SET state = ?2, via = ?3, detail = ?4, done_at = ?5, attempts = attempts + 1 WHERE id = ?1",
        params![id, state, via, detail, now],
    )?;
    let d = serde_json::json!({ "state": state, "via": via, "detail": detail });
    crate::store::audit::append(
        c,
        now,
        &format!("notification.{state}"),
        "daemon",
        &format!("notification {id}"),
        &d,
    )?;
    Ok(())
}

/// Not delivered this time: try again at `next_at`.
pub fn postpone(c: &Connection, id: i64, error: &str, next_at: TimestampMs) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notification SET attempts = attempts + 1, error = ?2, next_at = ?3 WHERE id = ?1",
        params![id, error, next_at],
    )?;
    Ok(())
}

/// Notifications delivered since `since` through one of `channels` whose final fate
/// (`fate_delivered` / `fate_failed` attempt rows) is not recorded yet.
pub fn awaiting_fate(c: &Connection, channels: &[String], since: TimestampMs) -> rusqlite::Result<Vec<Notification>> {
    let mut out = Vec::new();
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notification n WHERE n.state = 'sent' AND n.via = ?1 AND n.done_at >= ?2
           AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.notification = n.id AND d.result IN ('fate_delivered', 'fate_failed'))
         ORDER BY n.id"
    ))?;
    for ch in channels {
        out.extend(
            st.query_map(params![ch, since], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(out)
}

/// Plans the same notification on another channel (after a carrier rejected it);
/// nothing when that channel already carries it.
pub fn resend_via(c: &Connection, n: &Notification, channel: &str, now: TimestampMs) -> rusqlite::Result<Option<i64>> {
    enqueue(
        c,
        &NewNotification {
            alarm: n.alarm,
            kind: n.kind.clone(),
            cycle: n.cycle,
            round: n.round,
            step: n.step,
            contact: n.contact.clone(),
            channel: channel.to_string(),
            subject: n.subject.clone(),
            body: n.body.clone(),
            sms: n.sms.clone(),
        },
        now,
    )
}

/// The pages of `alarm` sent, and of those the ones whose delivery did not fail later.
pub fn page_counts(c: &Connection, alarm: i64) -> rusqlite::Result<(i64, i64)> {
    c.prepare_cached(
        "SELECT count(*) FILTER (WHERE state = 'sent'),
                count(*) FILTER (WHERE state = 'sent' AND NOT EXISTS
                    (SELECT 1 FROM delivery d WHERE d.notification = n.id AND d.result = 'fate_failed'))
         FROM notification n WHERE alarm = ?1 AND kind = 'page'",
    )?
    .query_row([alarm], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Whether the scheduled test page of window `cycle` to `contact` was queued.
pub fn test_page_queued(c: &Connection, cycle: TimestampMs, contact: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM notification WHERE kind = 'test' AND cycle = ?1 AND contact = ?2)",
        params![cycle, contact],
        |r| r.get::<_, bool>(0),
    )
}

/// Whether the daily "all OK" page of day `cycle` was queued.
pub fn all_ok_queued(c: &Connection, cycle: TimestampMs) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM notification WHERE kind = 'all_ok' AND cycle = ?1)",
        [cycle],
        |r| r.get::<_, bool>(0),
    )
}

/// (contact, channel) pairs a page of `alarm` was delivered to.
pub fn paged(c: &Connection, alarm: i64) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = c.prepare(
        "SELECT DISTINCT contact, channel FROM notification WHERE alarm = ?1 AND kind = 'page' AND state = 'sent' ORDER BY id",
    )?;
    st.query_map([alarm], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Alarms cleared since `since` that were paged (or, for a power incident's alarm, whose
/// members were) and whose return to normal is not planned yet. A member already named
/// in its incident's return to normal (planned after it cleared) is not listed.
pub fn cleared_unannounced(c: &Connection, since: TimestampMs) -> rusqlite::Result<Vec<i64>> {
    let mut st = c.prepare(
        "SELECT a.id FROM alarm a WHERE a.state = 'cleared' AND a.cleared_at >= ?1
           AND (EXISTS (SELECT 1 FROM notification n WHERE n.alarm = a.id AND n.kind = 'page' AND n.state = 'sent')
                OR EXISTS (SELECT 1 FROM alarm m JOIN notification n ON n.alarm = m.id
                           WHERE m.incident = a.id AND m.id != a.id AND n.kind = 'page' AND n.state = 'sent'))
           AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.alarm = a.id AND n.kind = 'normal')
           AND NOT (a.incident IS NOT NULL AND a.incident != a.id
                    AND EXISTS (SELECT 1 FROM notification n WHERE n.alarm = a.incident AND n.kind = 'normal'
                                AND n.created_at >= a.cleared_at))
           AND NOT EXISTS (SELECT 1 FROM alarm_event e WHERE e.alarm = a.id AND e.kind = 'closed')",
    )?;
    st.query_map([since], |r| r.get(0))?.collect()
}

/// Whether the return to normal of `alarm` is planned.
pub fn normal_planned(c: &Connection, alarm: i64) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM notification WHERE alarm = ?1 AND kind = 'normal')",
        [alarm],
        |r| r.get(0),
    )
}

/// The escalation cycle of an open alarm: the id and time of the transition that last
/// (re)started its escalation.
pub fn cycle_start(c: &Connection, alarm: i64) -> rusqlite::Result<Option<(i64, TimestampMs)>> {
    c.query_row(
        "SELECT id, t FROM alarm_event WHERE alarm = ?1 AND kind IN ('raised', 'upgraded', 'unsuppressed') ORDER BY id DESC LIMIT 1",
        [alarm],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// An acknowledgement by SMS the engine answered, to be answered by SMS in turn.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsAckAnswered {
    pub request: i64,
    pub alarm: i64,
    pub contact: String,
    /// The channel the acknowledgement came in on.
    pub via: String,
    pub ok: bool,
    pub result: String,
}

/// Acknowledgements by SMS answered since `since` whose answer is not planned yet.
pub fn sms_acks_answered(c: &Connection, since: TimestampMs) -> rusqlite::Result<Vec<SmsAckAnswered>> {
    let mut st = c.prepare_cached(
        "SELECT r.id, json_extract(r.args, '$.alarm'), json_extract(r.args, '$.reply_to'),
                json_extract(r.args, '$.reply_via'), r.ok, coalesce(r.result, '')
         FROM request r
         WHERE r.kind = 'ack' AND r.done_at >= ?1
           AND json_extract(r.args, '$.reply_via') IS NOT NULL AND json_extract(r.args, '$.reply_to') IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.kind = 'reply' AND n.cycle = r.id)
         ORDER BY r.id",
    )?;
    st.query_map([since], |r| {
        Ok(SmsAckAnswered {
            request: r.get(0)?,
            alarm: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            contact: r.get(2)?,
            via: r.get(3)?,
            ok: r.get::<_, Option<bool>>(4)?.unwrap_or(false),
            result: r.get(5)?,
        })
    })?
    .collect()
}

/// A notification no channel could deliver: still retried, or given up.
#[derive(Debug, Clone, PartialEq)]
pub struct Undelivered {
    pub id: i64,
    pub contact: String,
    pub channel: String,
    pub given_up: bool,
    /// The last failure (retried) or why it was given up.
    pub reason: String,
    pub created_at: TimestampMs,
}

/// Notifications created since `since` that no channel delivered yet (retried) or ever
/// (given up), oldest first.
pub fn undelivered(c: &Connection, since: TimestampMs) -> rusqlite::Result<Vec<Undelivered>> {
    // A notification given up records why in `detail` (its last attempt's error may
    // never have been written: a refusal no retry can fix gives up at once).
    let mut st = c.prepare(
        "SELECT id, contact, channel, state = 'failed',
                CASE WHEN state = 'failed' THEN coalesce(nullif(detail, ''), error, '') ELSE coalesce(error, '') END,
                created_at
         FROM notification
         WHERE created_at >= ?1 AND (state = 'failed' OR (state = 'pending' AND attempts > 0))
         ORDER BY id",
    )?;
    st.query_map([since], |r| {
        Ok(Undelivered {
            id: r.get(0)?,
            contact: r.get(1)?,
            channel: r.get(2)?,
            given_up: r.get(3)?,
            reason: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?
    .collect()
}

/// The outbox as the dispatcher and the command line ask it. Every write is one
/// transaction, on disk before the call returns.
impl crate::store::Store {
    /// Puts notifications in the outbox; those already there are skipped. Returns how
    /// many are new.
    pub fn enqueue_notifications(&mut self, new: &[NewNotification], now: TimestampMs) -> Result<usize, StoreError> {
        Ok(self.enqueue_new(new, now)?.len())
    }

    /// Puts notifications in the outbox; returns the ids of those that are new.
    pub fn enqueue_new(&mut self, new: &[NewNotification], now: TimestampMs) -> Result<Vec<i64>, StoreError> {
        self.transaction(|c| {
            let mut ids = Vec::new();
            for x in new {
                ids.extend(enqueue(c, x, now)?);
            }
            Ok(ids)
        })
    }

    /// Pending notifications due at `now`, oldest first, at most `limit`.
    pub fn due_notifications(&self, now: TimestampMs, limit: usize) -> Result<Vec<Notification>, StoreError> {
        self.with_conn(|c| due(c, now, limit))
    }

    /// Notifications of one alarm, or all, oldest first.
    pub fn notifications(&self, alarm: Option<i64>) -> Result<Vec<Notification>, StoreError> {
        self.with_conn(|c| list(c, alarm))
    }

    /// Notifications sent through one of `channels` since `since` whose fate is unknown.
    pub fn awaiting_fate(&self, channels: &[String], since: TimestampMs) -> Result<Vec<Notification>, StoreError> {
        self.with_conn(|c| awaiting_fate(c, channels, since))
    }

    /// Records one attempt on one channel.
    pub fn record_attempt(
        &mut self,
        id: i64,
        channel: &str,
        result: &str,
        detail: &str,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        self.transaction(|c| record_attempt(c, id, channel, result, detail, now))
    }

    /// Records a delivery: the attempt and the notification sent through `channel`.
    pub fn record_sent(&mut self, id: i64, channel: &str, detail: &str, now: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| {
            record_attempt(c, id, channel, "sent", detail, now)?;
            finish(c, id, "sent", Some(channel), detail, now)
        })
    }

    /// Records that the carrier did not deliver `n`, and plans it on `fallback`.
    pub fn record_undelivered_fate(
        &mut self,
        n: &Notification,
        via: &str,
        detail: &str,
        fallback: Option<&str>,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        self.transaction(|c| {
            record_attempt(c, n.id, via, "fate_failed", detail, now)?;
            if let Some(f) = fallback {
                resend_via(c, n, f, now)?;
            }
            Ok(())
        })
    }

    /// Final outcome of a notification that was not sent: `cancelled` or `failed`.
    pub fn finish_notification(
        &mut self,
        id: i64,
        state: &str,
        detail: &str,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        self.transaction(|c| finish(c, id, state, None, detail, now))
    }

    /// Not delivered this time: try again at `next_at`.
    pub fn postpone_notification(&mut self, id: i64, error: &str, next_at: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| postpone(c, id, error, next_at))
    }

    /// Whether the test page of `contact` for the occurrence at `at` is planned.
    pub fn test_page_queued(&self, at: TimestampMs, contact: &str) -> Result<bool, StoreError> {
        self.with_conn(|c| test_page_queued(c, at, contact))
    }

    /// Whether the all-OK page of the day starting at `day` is planned.
    pub fn all_ok_queued(&self, day: TimestampMs) -> Result<bool, StoreError> {
        self.with_conn(|c| all_ok_queued(c, day))
    }

    /// Notifications created since `since` that no channel delivered.
    pub fn undelivered(&self, since: TimestampMs) -> Result<Vec<Undelivered>, StoreError> {
        self.with_conn(|c| undelivered(c, since))
    }

    /// Notices of the monitor itself (`monitor_*`) still waiting to go out.
    pub fn monitor_notices_pending(&self) -> Result<i64, StoreError> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT count(*) FROM notification WHERE state = 'pending' AND kind LIKE 'monitor_%'",
                [],
                |r| r.get(0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn page(contact: &str) -> NewNotification {
        NewNotification {
            alarm: Some(1),
            kind: "page".into(),
            cycle: 1,
            round: 0,
            step: 0,
            contact: contact.into(),
            channel: "email".into(),
            subject: "s".into(),
            body: "b".into(),
            sms: "m".into(),
        }
    }

    #[test]
    fn an_undelivered_notification_says_why_whether_retried_or_given_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("open");
        let found = store
            .transaction(|c| {
                let retried = enqueue(c, &page("alice"), 10)?.expect("new");
                postpone(c, retried, "connection refused", 20)?;
                let given_up = enqueue(c, &page("bob"), 10)?.expect("new");
                finish(c, given_up, "failed", None, "550 mailbox unavailable", 11)?;
                let sent = enqueue(c, &page("carol"), 10)?.expect("new");
                finish(c, sent, "sent", Some("email"), "250 ok", 11)?;
                undelivered(c, 0)
            })
            .expect("store");
        let seen: Vec<(&str, bool, &str)> = found
            .iter()
            .map(|u| (u.contact.as_str(), u.given_up, u.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("alice", false, "connection refused"),
                ("bob", true, "550 mailbox unavailable")
            ]
        );
    }
}
