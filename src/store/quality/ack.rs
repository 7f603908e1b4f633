//! Signed acknowledgements (meaning `acknowledged`): recorded with the acknowledgement
//! they sign, in the commit that applies it, and checked by `audit verify`.
//!
//! A person acknowledging through the dashboard, the JSON API with a web session, or
//! `cryowatch ack --sign` gives their password first; the acknowledgement's request
//! then carries the signer to the alarm engine, whose change set names the signed
//! acknowledgements. When the store writes that change set it writes, for each, the
//! signature, an `alarm.ack_signed` audit record carrying the signature and the hash of
//! the content signed, and the link `ack_signature` from the signature to the
//! acknowledgement's transition (`alarm_event`): one transaction with the
//! acknowledgement itself. The content is read back from the stored transition and its
//! alarm, so what is signed is what the record holds, and `verify` recomputes it the
//! same way: an edited transition, an edited signature, or a signature linked to
//! another alarm's acknowledgement no longer matches.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{Meaning, Signed, Signer, record_signature, sha256};
use crate::model::TimestampMs;
use crate::model::changes::Changes;
use crate::store::{Store, StoreError};

/// The audit record of a signed acknowledgement.
const AUDIT_KIND: &str = "alarm.ack_signed";

/// The exact content an acknowledgement's signature covers, read from its transition
/// `event` as stored: (alarm id, the content as a JSON array of the meaning, alarm id,
/// rule, sensor, when the alarm was raised, when it was acknowledged, by whom and the
/// comment). `None` when the transition is missing or is not an acknowledgement.
fn content(c: &Connection, event: i64) -> rusqlite::Result<Option<(i64, String)>> {
    c.prepare_cached(
        "SELECT e.alarm, e.rule, e.sensor, a.raised_at, e.t, e.actor, e.comment
         FROM alarm_event e JOIN alarm a ON a.id = e.alarm
         WHERE e.id = ?1 AND e.kind = 'acknowledged'",
    )?
    .query_row([event], |r| {
        let alarm: i64 = r.get(0)?;
        let text = json!([
            Meaning::Acknowledged.as_str(),
            alarm,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
        ])
        .to_string();
        Ok((alarm, text))
    })
    .optional()
}

/// Writes the signatures of the acknowledgements `changes` signed (inside the caller's
/// transaction, after the transitions and alarms of `changes` are written).
pub(in crate::store) fn record(c: &Connection, changes: &Changes, now: TimestampMs) -> rusqlite::Result<()> {
    for signed in &changes.signed_acks {
        let event: Option<i64> = c.query_row(
            "SELECT max(id) FROM alarm_event WHERE alarm = ?1 AND kind = 'acknowledged' AND t = ?2",
            params![signed.alarm, signed.at],
            |r| r.get(0),
        )?;
        let found = match event {
            Some(e) => content(c, e)?.map(|x| (e, x)),
            None => None,
        };
        let Some((event, (alarm, text))) = found else {
            // The engine adds a signature only with the transition it signs; should that
            // ever fail, the acknowledgement stands (paging stops) and the log says so.
            tracing::error!(alarm_id = signed.alarm, user = %signed.signer.user, "a signed acknowledgement has no transition to sign; recorded unsigned");
            continue;
        };
        let signed_by = Signed {
            signer: &signed.signer,
            meaning: Meaning::Acknowledged,
            subject: &format!("alarm {alarm}"),
            content: &text,
            at: signed.at,
        };
        let id = record_signature(c, &signed_by, AUDIT_KIND, json!({ "event": event }), now)?;
        c.execute(
            "INSERT INTO ack_signature (signature, alarm, event) VALUES (?1, ?2, ?3)",
            params![id, alarm, event],
        )?;
    }
    Ok(())
}

/// The first signed acknowledgement that no longer matches what was signed: (audit
/// record, what is wrong). `head` is the trail's newest record. Each signature's own
/// fields are checked against its audit record by [`super::verify`]; this checks what
/// it signed.
pub(super) fn verify(c: &Connection, head: i64) -> rusqlite::Result<Option<(i64, String)>> {
    let mut st = c.prepare(
        "SELECT k.signature, k.alarm, k.event, s.subject, s.meaning, s.content_sha256, s.printed_name, s.audit
         FROM ack_signature k LEFT JOIN signature s ON s.id = k.signature ORDER BY k.signature",
    )?;
    type Link = (i64, i64, i64, Option<(String, String, String, String, i64)>);
    let links: Vec<Link> = st
        .query_map([], |r| {
            let signed = match r.get::<_, Option<String>>(3)? {
                Some(subject) => Some((subject, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
                None => None,
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, signed))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (signature, alarm, event, signed) in links {
        let Some((subject, meaning, hash, printed, seq)) = signed else {
            return Ok(Some((
                head,
                format!("the acknowledgement of alarm {alarm} names signature {signature}, which does not exist"),
            )));
        };
        let now = content(c, event)?;
        let matches = now.is_some_and(|(a, text)| a == alarm && sha256(&text) == hash);
        if !matches || subject != format!("alarm {alarm}") || meaning != Meaning::Acknowledged.as_str() {
            return Ok(Some((
                seq,
                format!(
                    "the acknowledgement of alarm {alarm} no longer matches what {printed} signed in audit record {seq}: it was edited, or the signature was copied onto it"
                ),
            )));
        }
    }
    // Every signed acknowledgement on the record still has its signature in the store.
    let mut st = c.prepare("SELECT seq, subject, detail FROM audit WHERE kind = ?1 ORDER BY seq")?;
    let recorded: Vec<(i64, String, String)> = st
        .query_map([AUDIT_KIND], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut linked = c.prepare_cached("SELECT EXISTS (SELECT 1 FROM ack_signature WHERE signature = ?1)")?;
    for (seq, subject, detail) in recorded {
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
        let signature = detail["signature"]["id"].as_i64().unwrap_or(0);
        if !linked.query_row([signature], |r| r.get::<_, bool>(0))? {
            return Ok(Some((
                seq,
                format!(
                    "the acknowledgement of {subject} was signed in audit record {seq}, but its signature is missing from the store (deleted)"
                ),
            )));
        }
    }
    Ok(None)
}

impl Store {
    /// Who signed the acknowledgement each alarm shows now, for the alarms whose
    /// current acknowledgement is signed: alarm id → signer.
    pub fn ack_signers(&self) -> Result<HashMap<i64, Signer>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(
                "SELECT k.alarm, s.user, s.printed_name
                 FROM ack_signature k
                 JOIN signature s ON s.id = k.signature
                 JOIN alarm_event e ON e.id = k.event
                 JOIN alarm a ON a.id = k.alarm
                 WHERE a.acked_at = e.t",
            )?
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    Signer {
                        user: r.get(1)?,
                        printed_name: r.get(2)?,
                    },
                ))
            })?
            .collect()
        })
    }
}
