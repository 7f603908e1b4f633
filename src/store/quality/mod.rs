//! The quality record: electronic signatures and the corrective actions that close
//! excursions.
//!
//! A signature is made by a dashboard user with their password (checked here, never a
//! token) and records the user, their printed name, the time, the meaning and the
//! SHA-256 of the exact content signed (21 CFR 11.50). It is written with what it signs
//! and an audit record carrying both, in one transaction (11.70): `verify` recomputes
//! the content's hash from the rows as they are now and compares row, signature and
//! audit record, so an edited corrective action, an edited signature, or a signature
//! moved to another record fails `audit verify`.
//!
//! An alarm that went active needs, once cleared, a corrective action: a reason code,
//! the action taken, the impact on stored product and a comment, signed with meaning
//! `corrective action`. Until then it is an open deviation.

pub(in crate::store) mod ack;
pub mod alarm_check;
pub mod calibration;
pub(in crate::store) mod check_reminder;
mod listing;
pub mod review;
mod review_verify;
pub(crate) mod tables;
mod verify;

pub use listing::SignatureRecord;
pub(in crate::store) use verify::verify;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::alarms::{ALARM_COLUMNS, AlarmRow, alarm_from};
use super::audit::hex;
use super::{Store, StoreError};
use crate::model::{AlarmState, TimestampMs};

/// Schema version 14: printed names, signatures (and whether a web session has signed
/// yet), corrective actions.
pub(crate) const MIGRATION: &str = "
    ALTER TABLE api_user ADD COLUMN printed_name TEXT;
    ALTER TABLE api_session ADD COLUMN signed_at INTEGER;
    CREATE TABLE signature (
        id             INTEGER PRIMARY KEY,
        t              INTEGER NOT NULL,
        user           TEXT NOT NULL,
        printed_name   TEXT NOT NULL,
        meaning        TEXT NOT NULL,
        subject        TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        audit          INTEGER NOT NULL
    );
    CREATE TABLE corrective_action (
        alarm       INTEGER PRIMARY KEY,
        t           INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        reason_text TEXT NOT NULL,
        action      TEXT NOT NULL,
        impact      TEXT NOT NULL,
        comment     TEXT NOT NULL,
        signature   INTEGER NOT NULL
    );";

/// What a signature means (21 CFR 11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Acknowledged,
    CorrectiveAction,
    Reviewed,
    Approved,
    Calibration,
    AlarmCheck,
}

impl Meaning {
    pub fn as_str(self) -> &'static str {
        match self {
            Meaning::Acknowledged => "acknowledged",
            Meaning::CorrectiveAction => "corrective action",
            Meaning::Reviewed => "reviewed",
            Meaning::Approved => "approved",
            Meaning::Calibration => "calibration",
            Meaning::AlarmCheck => "alarm check",
        }
    }
}

/// Whether stored product was affected by an excursion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impact {
    None,
    Assessed,
    Quarantined,
}

impl Impact {
    pub const ALL: [&'static str; 3] = ["none", "assessed", "quarantined"];

    pub fn parse(s: &str) -> Option<Impact> {
        match s {
            "none" => Some(Impact::None),
            "assessed" => Some(Impact::Assessed),
            "quarantined" => Some(Impact::Quarantined),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Assessed => "assessed",
            Impact::Quarantined => "quarantined",
        }
    }
}

pub use crate::model::changes::Signer;

/// What closes an excursion.
#[derive(Debug, Clone)]
pub struct Closing<'a> {
    pub alarm: i64,
    pub reason: &'a crate::config::Reason,
    pub action: &'a str,
    pub impact: Impact,
    pub comment: &'a str,
}

/// What a person filled in to close an excursion, checked against the configured
/// reason codes: the reason and the impact, or the field at fault and what is wrong
/// with it (the command line and the HTTP API each name the field their own way).
pub fn check_closing<'a>(
    reasons: &'a [crate::config::Reason],
    reason: &str,
    action: &str,
    impact: &str,
    comment: &str,
) -> Result<(&'a crate::config::Reason, Impact), (&'static str, String)> {
    let Some(found) = reasons.iter().find(|r| r.code == reason) else {
        let known: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        return Err((
            "reason",
            if known.is_empty() {
                format!("unknown reason {reason:?}; the configuration has no [[reason]] codes")
            } else {
                format!("unknown reason {reason:?}; expected one of {}", known.join(", "))
            },
        ));
    };
    let Some(impact) = Impact::parse(impact) else {
        return Err((
            "impact",
            format!("expected one of {}, found {impact:?}", Impact::ALL.join(", ")),
        ));
    };
    crate::pipeline::control::checked_text(action).map_err(|e| ("action", e))?;
    if action.trim().is_empty() {
        return Err(("action", "say what was done".into()));
    }
    crate::pipeline::control::checked_text(comment).map_err(|e| ("comment", e))?;
    if found.requires_comment && comment.trim().is_empty() {
        return Err(("comment", format!("reason {:?} requires a comment", found.code)));
    }
    Ok((found, impact))
}

/// A corrective action as recorded, with its signature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CorrectiveAction {
    pub alarm: i64,
    pub t: TimestampMs,
    pub reason: String,
    pub reason_text: String,
    pub action: String,
    pub impact: String,
    pub comment: String,
    pub signed_by: String,
    pub printed_name: String,
    pub meaning: String,
    pub content_sha256: String,
}

/// Why an alarm was not closed; nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("alarm {0} does not exist")]
    NoSuchAlarm(i64),
    #[error("alarm {0} is {1}: a corrective action closes an excursion once it has cleared")]
    NotCleared(i64, &'static str),
    #[error("alarm {0} was an alarm test, not an excursion: it needs no corrective action")]
    Test(i64),
    #[error("alarm {alarm} was already closed by {by}")]
    AlreadyClosed { alarm: i64, by: String },
}

/// The exact content a corrective action's signature covers: the excursion (alarm,
/// rule, sensor, raised and cleared) and what was recorded about it, as a JSON array.
pub(super) fn closing_content(
    a: &AlarmRow,
    reason: &str,
    reason_text: &str,
    action: &str,
    impact: &str,
    comment: &str,
) -> String {
    json!([
        "corrective_action",
        a.id,
        a.rule,
        a.sensor,
        a.raised_at,
        a.cleared_at,
        reason,
        reason_text,
        action,
        impact,
        comment
    ])
    .to_string()
}

fn sha256(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Whether alarm `id` was an alarm test.
fn is_test(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    c.query_row("SELECT EXISTS (SELECT 1 FROM alarm_test WHERE alarm = ?1)", [id], |r| {
        r.get(0)
    })
}

/// Records `closing` signed by `signer` (inside the caller's transaction): the
/// corrective action, its signature and the audit record of both.
fn close(
    c: &Connection,
    signer: &Signer,
    closing: &Closing<'_>,
    now: TimestampMs,
) -> rusqlite::Result<Result<CorrectiveAction, Refused>> {
    let id = closing.alarm;
    let mut st = c.prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarm WHERE id = ?1"))?;
    let Some(alarm) = st.query_row([id], alarm_from).optional()? else {
        return Ok(Err(Refused::NoSuchAlarm(id)));
    };
    if alarm.state != AlarmState::Cleared || alarm.cleared_at.is_none() {
        return Ok(Err(Refused::NotCleared(id, alarm.state.as_str())));
    }
    if is_test(c, id)? {
        return Ok(Err(Refused::Test(id)));
    }
    if let Some(done) = corrective_action(c, id)? {
        return Ok(Err(Refused::AlreadyClosed {
            alarm: id,
            by: format!(
                "{} ({}) at {}",
                done.printed_name,
                done.signed_by,
                crate::model::format_rfc3339(done.t)
            ),
        }));
    }
    let (reason, reason_text) = (closing.reason.code.as_str(), closing.reason.text.as_str());
    let impact = closing.impact.as_str();
    let content = closing_content(&alarm, reason, reason_text, closing.action, impact, closing.comment);
    let detail = json!({
        "reason": reason,
        "reason_text": reason_text,
        "action": closing.action,
        "impact": impact,
        "comment": closing.comment,
    });
    let signed = Signed {
        signer,
        meaning: Meaning::CorrectiveAction,
        subject: &format!("alarm {id}"),
        content: &content,
        at: now,
    };
    let signature_id = record_signature(c, &signed, "alarm.closed", detail, now)?;
    c.execute(
        "INSERT INTO corrective_action (alarm, t, reason, reason_text, action, impact, comment, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            now,
            reason,
            reason_text,
            closing.action,
            impact,
            closing.comment,
            signature_id
        ],
    )?;
    Ok(corrective_action(c, id)?.ok_or(Refused::NoSuchAlarm(id)))
}

/// A signature to record: who, meaning what, on which record, over which content.
pub(super) struct Signed<'a> {
    pub signer: &'a Signer,
    pub meaning: Meaning,
    /// The record signed, as audit records name it (`alarm 12`, `review 3`).
    pub subject: &'a str,
    /// The exact content signed; its SHA-256 is what the signature records.
    pub content: &'a str,
    /// When it was signed.
    pub at: TimestampMs,
}

/// Writes `s` and the audit record (`kind` at `now`, with `detail` plus the content's
/// hash and the signature) that carries it, inside the caller's transaction; the
/// signature's id.
pub(super) fn record_signature(
    c: &Connection,
    s: &Signed<'_>,
    kind: &str,
    mut detail: serde_json::Value,
    now: TimestampMs,
) -> rusqlite::Result<i64> {
    let hash = sha256(s.content);
    let meaning = s.meaning.as_str();
    let id: i64 = c.query_row("SELECT coalesce(max(id), 0) + 1 FROM signature", [], |r| r.get(0))?;
    detail["content_sha256"] = json!(hash);
    detail["signature"] = signature_json(id, s.at, &s.signer.user, &s.signer.printed_name, meaning);
    let seq = super::audit::append(c, now, kind, &format!("user:{}", s.signer.user), s.subject, &detail)?;
    c.execute(
        "INSERT INTO signature (id, t, user, printed_name, meaning, subject, content_sha256, audit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            s.at,
            s.signer.user,
            s.signer.printed_name,
            meaning,
            s.subject,
            hash,
            seq
        ],
    )?;
    Ok(id)
}

fn signature_json(id: i64, t: TimestampMs, user: &str, printed_name: &str, meaning: &str) -> serde_json::Value {
    json!({ "id": id, "t": t, "user": user, "printed_name": printed_name, "meaning": meaning })
}

/// The corrective action that closed alarm `id`, with its signature.
fn corrective_action(c: &Connection, id: i64) -> rusqlite::Result<Option<CorrectiveAction>> {
    c.prepare_cached(
        "SELECT ca.alarm, ca.t, ca.reason, ca.reason_text, ca.action, ca.impact, ca.comment,
                s.user, s.printed_name, s.meaning, s.content_sha256
         FROM corrective_action ca JOIN signature s ON s.id = ca.signature WHERE ca.alarm = ?1",
    )?
    .query_row([id], |r| {
        Ok(CorrectiveAction {
            alarm: r.get(0)?,
            t: r.get(1)?,
            reason: r.get(2)?,
            reason_text: r.get(3)?,
            action: r.get(4)?,
            impact: r.get(5)?,
            comment: r.get(6)?,
            signed_by: r.get(7)?,
            printed_name: r.get(8)?,
            meaning: r.get(9)?,
            content_sha256: r.get(10)?,
        })
    })
    .optional()
}

/// Alarms that went active, have cleared, and are not closed by a corrective action
/// (alarm tests excepted), oldest first. With `unreminded_before`: only those cleared
/// by then that have no reminder queued yet.
fn open_deviations(c: &Connection, unreminded_before: Option<TimestampMs>) -> rusqlite::Result<Vec<AlarmRow>> {
    // From the table of open deviations the commit keeps (`tables`), never a scan of
    // every alarm ever raised: the dispatcher asks on every pass.
    let mut st = c.prepare_cached(&format!(
        "SELECT {ALARM_COLUMNS} FROM alarm
         WHERE id IN (SELECT alarm FROM open_deviation) AND state = 'cleared'
           AND (?1 IS NULL OR (cleared_at <= ?1
                AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'reminder')))
         ORDER BY id"
    ))?;
    st.query_map([unreminded_before], alarm_from)?.collect()
}

/// Why a password did not make a signer; the attempt is on the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSigned {
    #[error("wrong user name or password: nothing was signed (the attempt is in the audit trail)")]
    WrongPassword,
    #[error("user {0} may not sign: a viewer's signature closes nothing (role operator or admin needed)")]
    Viewer(String),
    #[error(
        "user {0} has no printed name, which a signature must show: cryowatch user add {0} --role ROLE --name \"Full Name\""
    )]
    NoPrintedName(String),
}

impl Store {
    /// Checks `password` for `user` and returns them as a signer (role operator or
    /// admin, with a printed name). A wrong password (or an unknown user) is recorded in
    /// the audit trail as `signature.refused` for `subject`, and signs nothing. Slow on
    /// purpose (Argon2).
    pub fn signer(
        &mut self,
        user: &str,
        password: &str,
        subject: &str,
        now: TimestampMs,
    ) -> Result<Result<Signer, NotSigned>, StoreError> {
        let stored = self.user_hash(user)?;
        if !super::users::verify_password(stored.as_ref().map(|(h, _)| h.as_str()), password) || stored.is_none() {
            self.refuse_signature(user, subject, now)?;
            return Ok(Err(NotSigned::WrongPassword));
        }
        self.verified_signer(user)
    }

    /// Records a signature refused for a wrong user name or password.
    pub fn refuse_signature(&mut self, user: &str, subject: &str, now: TimestampMs) -> Result<(), StoreError> {
        self.append_audit(
            now,
            "signature.refused",
            &format!("user:{user}"),
            subject,
            &json!({ "why": "wrong user name or password" }),
        )?;
        Ok(())
    }

    /// `user` as a signer, once their password was checked: role operator or admin,
    /// with a printed name.
    pub fn verified_signer(&self, user: &str) -> Result<Result<Signer, NotSigned>, StoreError> {
        let stored = self.user_hash(user)?;
        match stored {
            None => return Ok(Err(NotSigned::WrongPassword)),
            Some((_, crate::config::Role::Viewer)) => return Ok(Err(NotSigned::Viewer(user.to_string()))),
            Some(_) => {}
        }
        let printed: Option<String> = self.with_conn(|c| {
            c.query_row("SELECT printed_name FROM api_user WHERE name = ?1", [user], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::flatten)
        })?;
        match printed.filter(|p| !p.trim().is_empty()) {
            Some(printed_name) => Ok(Ok(Signer {
                user: user.to_string(),
                printed_name,
            })),
            None => Ok(Err(NotSigned::NoPrintedName(user.to_string()))),
        }
    }

    /// Sets the printed name a user's signatures show; recorded in the audit trail.
    pub fn set_printed_name(
        &mut self,
        user: &str,
        printed_name: &str,
        actor: &str,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        self.transaction(|c| {
            c.execute(
                "UPDATE api_user SET printed_name = ?2 WHERE name = ?1",
                params![user, printed_name],
            )?;
            super::audit::append(
                c,
                now,
                "user.changed",
                actor,
                &format!("user {user}"),
                &json!({ "printed_name": printed_name }),
            )?;
            Ok(())
        })
    }

    /// Closes an excursion with a signed corrective action, or says why not (nothing
    /// recorded then).
    pub fn close_alarm(
        &mut self,
        signer: &Signer,
        closing: &Closing<'_>,
        now: TimestampMs,
    ) -> Result<Result<CorrectiveAction, Refused>, StoreError> {
        self.transaction(|c| close(c, signer, closing, now))
    }

    /// The corrective action that closed alarm `id`, if any.
    pub fn corrective_action(&self, id: i64) -> Result<Option<CorrectiveAction>, StoreError> {
        self.with_conn(|c| corrective_action(c, id))
    }

    /// Cleared alarms not yet closed by a corrective action (alarm tests excepted),
    /// oldest first.
    pub fn open_deviations(&self) -> Result<Vec<AlarmRow>, StoreError> {
        self.with_conn(|c| open_deviations(c, None))
    }

    /// Open deviations cleared at `before` or earlier whose reminder is not queued yet.
    pub fn reminders_due(&self, before: TimestampMs) -> Result<Vec<AlarmRow>, StoreError> {
        self.with_conn(|c| open_deviations(c, Some(before)))
    }
}
