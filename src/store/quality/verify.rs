//! `audit verify`'s check of the quality record: every signature as its audit record
//! says it was made, and every corrective action still hashing to what was signed.

use rusqlite::{Connection, OptionalExtension};

use super::super::alarms::{ALARM_COLUMNS, alarm_from};
use super::{closing_content, corrective_action, sha256, signature_json};
use crate::model::TimestampMs;

/// A signature as stored.
struct SignatureRow {
    id: i64,
    t: TimestampMs,
    user: String,
    printed: String,
    meaning: String,
    subject: String,
    hash: String,
    seq: i64,
}

/// The first signature or corrective action that no longer matches the audit trail:
/// (audit record, what is wrong). `closed` are the trail's `alarm.closed` records:
/// (seq, alarm id); `head` is the trail's newest record.
pub(in crate::store) fn verify(
    c: &Connection,
    closed: &[(i64, i64)],
    head: i64,
) -> rusqlite::Result<Option<(i64, String)>> {
    // Every signature as its audit record says it was made.
    let mut st = c.prepare(
        "SELECT id, t, user, printed_name, meaning, subject, content_sha256, audit FROM signature ORDER BY id",
    )?;
    let signatures: Vec<SignatureRow> = st
        .query_map([], |r| {
            Ok(SignatureRow {
                id: r.get(0)?,
                t: r.get(1)?,
                user: r.get(2)?,
                printed: r.get(3)?,
                meaning: r.get(4)?,
                subject: r.get(5)?,
                hash: r.get(6)?,
                seq: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for s in &signatures {
        let (id, seq) = (s.id, s.seq);
        let recorded: Option<(String, String)> = c
            .query_row("SELECT subject, detail FROM audit WHERE seq = ?1", [seq], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((audit_subject, detail)) = recorded else {
            return Ok(Some((
                seq,
                format!("signature {id} names audit record {seq}, which does not exist"),
            )));
        };
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
        if audit_subject != s.subject
            || detail["signature"] != signature_json(id, s.t, &s.user, &s.printed, &s.meaning)
            || detail["content_sha256"].as_str() != Some(s.hash.as_str())
        {
            return Ok(Some((
                seq,
                format!(
                    "signature {id} ({}, {}, {}) differs from audit record {seq}: the signature was edited or copied",
                    s.printed, s.meaning, s.subject
                ),
            )));
        }
    }
    // Every corrective action still hashes to what its signature signed.
    for (seq, alarm) in closed {
        let Some(ca) = corrective_action(c, *alarm)? else {
            return Ok(Some((
                *seq,
                format!(
                    "alarm {alarm} was closed in audit record {seq}, but its corrective action is missing from the store"
                ),
            )));
        };
        let row = c
            .prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarm WHERE id = ?1"))?
            .query_row([alarm], alarm_from)
            .optional()?;
        let now_hash = row.map(|a| {
            sha256(&closing_content(
                &a,
                &ca.reason,
                &ca.reason_text,
                &ca.action,
                &ca.impact,
                &ca.comment,
            ))
        });
        let subject_ok = c
            .query_row(
                "SELECT s.subject FROM corrective_action ca JOIN signature s ON s.id = ca.signature WHERE ca.alarm = ?1",
                [alarm],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            == Some(format!("alarm {alarm}"));
        if now_hash.as_deref() != Some(ca.content_sha256.as_str()) || !subject_ok {
            return Ok(Some((
                *seq,
                format!(
                    "the corrective action of alarm {alarm} no longer matches what {} signed in audit record {seq}: it was edited",
                    ca.printed_name
                ),
            )));
        }
    }
    // Every signature the trail recorded is still in the store, as that record made it:
    // a signature deleted (a review or an acknowledgement "un-signed") fails, even when
    // a later one took its id.
    let mut st = c.prepare(
        "SELECT seq, kind, subject, detail FROM audit
         WHERE kind IN ('alarm.closed', 'review.signed', 'alarm.ack_signed', 'calibration.recorded', 'alarm_check.finished')
         ORDER BY seq",
    )?;
    let recorded: Vec<(i64, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, kind, subject, detail) in recorded {
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
        let Some(id) = detail["signature"]["id"].as_i64() else {
            return Ok(Some((seq, format!("audit record {seq} ({kind}) carries no signature"))));
        };
        let kept = signatures.iter().any(|s| s.id == id && s.seq == seq);
        if !kept {
            return Ok(Some((
                seq,
                format!(
                    "the signature {id} on {subject} that audit record {seq} ({kind}) carries is missing from the store: it was deleted"
                ),
            )));
        }
    }
    if let Some(problem) = super::review_verify::verify(c, head)? {
        return Ok(Some(problem));
    }
    if let Some(problem) = super::calibration::verify(c, head)? {
        return Ok(Some(problem));
    }
    if let Some(problem) = super::alarm_check::verify(c, head)? {
        return Ok(Some(problem));
    }
    let on_record: std::collections::HashSet<i64> = closed.iter().map(|(_, a)| *a).collect();
    let mut st = c.prepare("SELECT alarm FROM corrective_action ORDER BY alarm")?;
    for alarm in st.query_map([], |r| r.get::<_, i64>(0))? {
        let alarm = alarm?;
        if !on_record.contains(&alarm) {
            return Ok(Some((
                head,
                format!(
                    "alarm {alarm} has a corrective action that the audit trail does not hold: it was added to the store by hand"
                ),
            )));
        }
    }
    super::ack::verify(c, head)
}
