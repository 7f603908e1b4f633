//! Physical alarm checks (AABB): a technician warms (or cools) a probe against a
//! certified reference thermometer and the record keeps the value at which each high and
//! low rule of the sensor triggered.
//!
//! `start` records the running check (`alarm_check.started`). The trigger of a rule is
//! the first stored good reading of the sensor, since the check started, beyond the
//! rule's threshold (above a high rule's, below a low rule's): it is read back from the
//! stored readings when the check is finished, so it lies within one poll of the moment
//! the condition was met. `finish` records every rule's trigger with the reference
//! thermometer's reading, signed with meaning `alarm check`, in one transaction with its
//! audit record (`alarm_check.finished`); `audit verify` checks every finished check still
//! hashes to what was signed. A running check past its deadline ends as `abandoned`
//! (`alarm_check.abandoned`).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::{Meaning, Signed, Signer, record_signature, sha256};
use crate::model::TimestampMs;
use crate::store::{Store, StoreError};

/// Schema: alarm checks and the trigger of each rule.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE alarm_check (
        id          INTEGER PRIMARY KEY,
        sensor      TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        started_by  TEXT NOT NULL,
        silent      INTEGER NOT NULL,
        tolerance   REAL NOT NULL,
        deadline    INTEGER NOT NULL,
        state       TEXT NOT NULL,
        finished_at INTEGER,
        reference   REAL,
        rule        TEXT,
        difference  REAL,
        signature   INTEGER
    );
    CREATE INDEX alarm_check_sensor ON alarm_check (sensor, id);
    CREATE TABLE alarm_check_trigger (
        check_id  INTEGER NOT NULL,
        rule      TEXT NOT NULL,
        threshold REAL NOT NULL,
        value     REAL NOT NULL,
        t         INTEGER NOT NULL,
        PRIMARY KEY (check_id, rule)
    ) WITHOUT ROWID;";

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Running,
    Passed,
    Failed,
    Abandoned,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Running => "running",
            CheckState::Passed => "passed",
            CheckState::Failed => "failed",
            CheckState::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> CheckState {
        match s {
            "passed" => CheckState::Passed,
            "failed" => CheckState::Failed,
            "abandoned" => CheckState::Abandoned,
            _ => CheckState::Running,
        }
    }
}

/// The first reading at which a rule's condition held during a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    pub rule: String,
    pub threshold: f64,
    pub value: f64,
    pub t: TimestampMs,
}

/// An alarm check as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmCheck {
    pub id: i64,
    pub sensor: String,
    pub started_at: TimestampMs,
    pub started_by: String,
    pub silent: bool,
    pub tolerance: f64,
    pub deadline: TimestampMs,
    pub state: CheckState,
    pub finished_at: Option<TimestampMs>,
    /// The reference thermometer's reading at the first trigger.
    pub reference: Option<f64>,
    /// The rule the reference is compared to (the first to trigger).
    pub rule: Option<String>,
    /// reference − the rule's threshold, signed.
    pub difference: Option<f64>,
    pub triggers: Vec<Trigger>,
    pub signed_by: Option<String>,
    pub printed_name: Option<String>,
}

/// What finishing a check records.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub check: i64,
    pub reference: f64,
    pub triggers: &'a [Trigger],
}

/// The exact content a finished check's signature covers.
fn content(a: &AlarmCheck) -> String {
    json!([
        "alarm check",
        a.id,
        a.sensor,
        a.started_at,
        a.started_by,
        a.silent,
        a.tolerance,
        a.state.as_str(),
        a.finished_at,
        a.reference,
        a.rule,
        a.difference,
        a.triggers
    ])
    .to_string()
}

const COLUMNS: &str = "a.id, a.sensor, a.started_at, a.started_by, a.silent, a.tolerance, a.deadline, a.state,
     a.finished_at, a.reference, a.rule, a.difference, s.user, s.printed_name";

fn row(r: &rusqlite::Row) -> rusqlite::Result<AlarmCheck> {
    Ok(AlarmCheck {
        id: r.get(0)?,
        sensor: r.get(1)?,
        started_at: r.get(2)?,
        started_by: r.get(3)?,
        silent: r.get(4)?,
        tolerance: r.get(5)?,
        deadline: r.get(6)?,
        state: CheckState::parse(&r.get::<_, String>(7)?),
        finished_at: r.get(8)?,
        reference: r.get(9)?,
        rule: r.get(10)?,
        difference: r.get(11)?,
        triggers: Vec::new(),
        signed_by: r.get(12)?,
        printed_name: r.get(13)?,
    })
}

fn triggers(c: &Connection, id: i64) -> rusqlite::Result<Vec<Trigger>> {
    let mut st = c.prepare_cached(
        "SELECT rule, threshold, value, t FROM alarm_check_trigger WHERE check_id = ?1 ORDER BY t, rule",
    )?;
    st.query_map([id], |r| {
        Ok(Trigger {
            rule: r.get(0)?,
            threshold: r.get(1)?,
            value: r.get(2)?,
            t: r.get(3)?,
        })
    })?
    .collect()
}

fn select(c: &Connection, filter: &str, args: impl rusqlite::Params) -> rusqlite::Result<Vec<AlarmCheck>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM alarm_check a LEFT JOIN signature s ON s.id = a.signature {filter} ORDER BY a.id"
    ))?;
    let mut found: Vec<AlarmCheck> = st.query_map(args, row)?.collect::<rusqlite::Result<_>>()?;
    for a in &mut found {
        a.triggers = triggers(c, a.id)?;
    }
    Ok(found)
}

/// Ends every running check past its deadline as abandoned; the ones ended.
fn abandon(c: &Connection, now: TimestampMs) -> rusqlite::Result<Vec<AlarmCheck>> {
    let overdue = select(c, "WHERE a.state = 'running' AND a.deadline <= ?1", [now])?;
    for a in &overdue {
        c.execute(
            "UPDATE alarm_check SET state = 'abandoned', finished_at = deadline WHERE id = ?1",
            [a.id],
        )?;
        super::super::audit::append(
            c,
            now,
            "alarm_check.abandoned",
            "cryowatch",
            &format!("alarm check {}", a.id),
            &json!({ "sensor": a.sensor, "started_by": a.started_by, "deadline": a.deadline }),
        )?;
    }
    Ok(overdue)
}

/// The first reading `(t, value)` beyond `threshold` (above when `high`, else below).
fn first_beyond(
    c: &Connection,
    sensor: &str,
    from: TimestampMs,
    to: TimestampMs,
    threshold: f64,
    high: bool,
) -> rusqlite::Result<Option<(TimestampMs, f64)>> {
    let cmp = if high { ">" } else { "<" };
    let not_flagged = crate::store::flags::NOT_FLAGGED;
    c.query_row(
        &format!(
            "SELECT reading.t, reading.value FROM reading JOIN sensor ON sensor.id = reading.sensor
             WHERE sensor.name = ?1 AND reading.t >= ?2 AND reading.t <= ?3 AND reading.quality = 0
               AND reading.value IS NOT NULL AND reading.value {cmp} ?4 AND {not_flagged}
             ORDER BY reading.t, reading.seq LIMIT 1"
        ),
        params![sensor, from, to, threshold],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

fn finish(c: &Connection, signer: &Signer, f: &Finish<'_>, now: TimestampMs) -> rusqlite::Result<Option<AlarmCheck>> {
    let Some(mut a) = select(c, "WHERE a.id = ?1 AND a.state = 'running'", [f.check])?.pop() else {
        return Ok(None);
    };
    let first = f.triggers.iter().min_by_key(|t| t.t);
    let difference = first.map(|t| f.reference - t.threshold);
    a.state = match difference {
        Some(d) if d.abs() <= a.tolerance => CheckState::Passed,
        _ => CheckState::Failed,
    };
    a.finished_at = Some(now);
    a.reference = Some(f.reference);
    a.rule = first.map(|t| t.rule.clone());
    a.difference = difference;
    let mut sorted = f.triggers.to_vec();
    sorted.sort_by(|x, y| x.t.cmp(&y.t).then_with(|| x.rule.cmp(&y.rule)));
    a.triggers = sorted;
    let subject = format!("alarm check {}", a.id);
    let text = content(&a);
    let signed = Signed {
        signer,
        meaning: Meaning::AlarmCheck,
        subject: &subject,
        content: &text,
        at: now,
    };
    let detail = json!({ "sensor": a.sensor, "state": a.state.as_str(), "reference": a.reference,
                         "rule": a.rule, "difference": a.difference, "triggers": a.triggers });
    let signature = record_signature(c, &signed, "alarm_check.finished", detail, now)?;
    for t in &a.triggers {
        c.execute(
            "INSERT INTO alarm_check_trigger (check_id, rule, threshold, value, t) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, t.rule, t.threshold, t.value, t.t],
        )?;
    }
    c.execute(
        "UPDATE alarm_check SET state = ?2, finished_at = ?3, reference = ?4, rule = ?5, difference = ?6, signature = ?7
         WHERE id = ?1",
        params![a.id, a.state.as_str(), now, f.reference, a.rule, a.difference, signature],
    )?;
    Ok(select(c, "WHERE a.id = ?1", [a.id])?.pop())
}

/// The running checks that are not silent: by sensor, the reason of the check's
/// shelving and the user doing the check.
pub(in crate::store) fn checkers(
    c: &Connection,
) -> rusqlite::Result<std::collections::HashMap<String, (String, String)>> {
    let mut st =
        c.prepare_cached("SELECT sensor, id, started_by FROM alarm_check WHERE state = 'running' AND silent = 0")?;
    st.query_map([], |r| {
        let (sensor, id, by): (String, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok((sensor, (shelving_reason(id, &by), by)))
    })?
    .collect()
}

/// The reason a check's shelving is recorded under.
pub fn shelving_reason(id: i64, by: &str) -> String {
    format!("alarm check {id} by {by}")
}

/// The first finished check that no longer matches what was signed, or that the trail
/// does not hold: (audit record, what is wrong).
pub(super) fn verify(c: &Connection, head: i64) -> rusqlite::Result<Option<(i64, String)>> {
    let checks = select(
        c,
        "WHERE a.state IN ('passed', 'failed') OR a.signature IS NOT NULL",
        [],
    )?;
    let mut seen = std::collections::HashSet::new();
    for a in checks {
        let subject = format!("alarm check {}", a.id);
        seen.insert(subject.clone());
        let signed: Option<(String, String, i64)> = c
            .query_row(
                "SELECT s.subject, s.content_sha256, s.audit FROM alarm_check a JOIN signature s ON s.id = a.signature
                 WHERE a.id = ?1",
                [a.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((signed_subject, hash, audit)) = signed else {
            return Ok(Some((
                head,
                format!(
                    "{subject} of {} is finished without a signature: it was edited by hand",
                    a.sensor
                ),
            )));
        };
        if signed_subject != subject {
            return Ok(Some((
                audit,
                format!(
                    "{subject} of {} carries a signature of another record: it was copied",
                    a.sensor
                ),
            )));
        }
        if sha256(&content(&a)) != hash {
            return Ok(Some((
                audit,
                format!(
                    "{subject} of {} no longer matches what {} signed in audit record {audit}: it was edited",
                    a.sensor,
                    a.printed_name.as_deref().unwrap_or("?")
                ),
            )));
        }
    }
    let mut st = c.prepare("SELECT seq, subject FROM audit WHERE kind = 'alarm_check.finished' ORDER BY seq")?;
    for found in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (seq, subject) = found?;
        if !seen.contains(&subject) {
            return Ok(Some((
                seq,
                format!("{subject} was finished in audit record {seq}, but the store no longer holds it as finished"),
            )));
        }
    }
    Ok(None)
}

impl Store {
    /// Starts a check of `sensor` by `by` running until `deadline`, after ending the
    /// overdue ones; the check, or the running check of `sensor` that refuses a second.
    pub fn start_alarm_check(
        &mut self,
        sensor: &str,
        by: &str,
        silent: bool,
        tolerance: f64,
        deadline: TimestampMs,
        now: TimestampMs,
    ) -> Result<Result<AlarmCheck, AlarmCheck>, StoreError> {
        self.transaction(|c| {
            abandon(c, now)?;
            if let Some(running) = select(c, "WHERE a.sensor = ?1 AND a.state = 'running'", [sensor])?.pop() {
                return Ok(Err(running));
            }
            let id: i64 = c.query_row("SELECT coalesce(max(id), 0) + 1 FROM alarm_check", [], |r| r.get(0))?;
            c.execute(
                "INSERT INTO alarm_check (id, sensor, started_at, started_by, silent, tolerance, deadline, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running')",
                params![id, sensor, now, by, silent, tolerance, deadline],
            )?;
            super::super::audit::append(
                c,
                now,
                "alarm_check.started",
                &format!("user:{by}"),
                &format!("alarm check {id}"),
                &json!({ "sensor": sensor, "silent": silent, "tolerance": tolerance, "deadline": deadline }),
            )?;
            select(c, "WHERE a.id = ?1", [id])?
                .pop()
                .ok_or(rusqlite::Error::QueryReturnedNoRows)
                .map(Ok)
        })
    }

    /// Ends every running check past its deadline as abandoned; the ones ended.
    /// Writes only when one is overdue (the dispatcher asks on every pass).
    pub fn abandon_overdue_alarm_checks(&mut self, now: TimestampMs) -> Result<Vec<AlarmCheck>, StoreError> {
        let overdue: i64 = self.with_conn(|c| {
            c.query_row(
                "SELECT count(*) FROM alarm_check WHERE state = 'running' AND deadline <= ?1",
                [now],
                |r| r.get(0),
            )
        })?;
        if overdue == 0 {
            return Ok(Vec::new());
        }
        self.transaction(|c| abandon(c, now))
    }

    /// The running check of `sensor`, if any.
    pub fn running_alarm_check(&self, sensor: &str) -> Result<Option<AlarmCheck>, StoreError> {
        self.with_conn(|c| Ok(select(c, "WHERE a.sensor = ?1 AND a.state = 'running'", [sensor])?.pop()))
    }

    /// Every alarm check, oldest first.
    pub fn alarm_checks(&self) -> Result<Vec<AlarmCheck>, StoreError> {
        self.with_conn(|c| select(c, "", []))
    }

    /// The checks started in `from..to`, oldest first.
    pub fn alarm_checks_started(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<AlarmCheck>, StoreError> {
        self.with_conn(|c| select(c, "WHERE a.started_at >= ?1 AND a.started_at < ?2", [from, to]))
    }

    /// The first good, believed reading `(t, value)` of `sensor` in `from..=to` beyond
    /// `threshold`: above it when `high`, below it otherwise.
    pub fn first_reading_beyond(
        &self,
        sensor: &str,
        from: TimestampMs,
        to: TimestampMs,
        threshold: f64,
        high: bool,
    ) -> Result<Option<(TimestampMs, f64)>, StoreError> {
        self.with_conn(|c| first_beyond(c, sensor, from, to, threshold, high))
    }

    /// Finishes the running check `f.check`, signed by `signer` (meaning `alarm check`):
    /// passed when the reference is within the check's tolerance of the threshold of the
    /// first rule to trigger, failed otherwise (or when none triggered). `None` when the
    /// check is not running.
    pub fn finish_alarm_check(
        &mut self,
        signer: &Signer,
        f: &Finish<'_>,
        now: TimestampMs,
    ) -> Result<Option<AlarmCheck>, StoreError> {
        self.transaction(|c| finish(c, signer, f, now))
    }
}
