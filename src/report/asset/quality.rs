//! The quality record in a report: each excursion's signed corrective action, or, once
//! it has cleared without one, its open deviation; and every electronic signature bound
//! to the report's records. An alarm test needs no corrective action and an alarm still
//! active has nothing to close yet: for them the record says nothing.
//!
//! Signatures are found by what they sign: the subjects of the report's records
//! (`alarm N` for each of its alarms), so a signature of any meaning on one of them —
//! a corrective action today, an acknowledgement or a review later — is listed.

use jiff::tz::TimeZone;

use crate::config::Config;
use crate::report::render::Block;
use crate::store::quality::CorrectiveAction;
use crate::store::quality::alarm_check::AlarmCheck;
use crate::store::{Store, StoreError};

use super::layout::fmt_second;
use super::{AssetReport, Excursion, Signature};

/// What an excursion that has cleared without a corrective action is.
pub(crate) const OPEN_DEVIATION: &str = "open deviation — no corrective action signed";

/// How many hex digits of a signed content's SHA-256 the PDF and HTML print.
const HASH_SHOWN: usize = 12;

/// Where an excursion stands in the quality record.
pub(crate) enum Deviation<'a> {
    Closed(&'a CorrectiveAction),
    Open,
}

/// `None` for an alarm test and for an alarm still active.
pub(crate) fn deviation(e: &Excursion) -> Option<Deviation<'_>> {
    match (&e.corrective, e.test, e.end) {
        (_, true, _) => None,
        (Some(ca), false, _) => Some(Deviation::Closed(ca)),
        (None, false, Some(_)) => Some(Deviation::Open),
        (None, false, None) => None,
    }
}

/// The subject a signature on alarm `id` is recorded under.
fn alarm_subject(id: i64) -> String {
    format!("alarm {id}")
}

/// A signer as printed: "Printed Name (user)".
pub(crate) fn signer(printed_name: &str, user: &str) -> String {
    format!("{printed_name} ({user})")
}

/// Reads each excursion's corrective action, and every signature on the report's
/// alarms, each described as people read it ("alarm 12 (dewar-1.temp high)").
pub(super) fn gather(
    cfg: &Config,
    store: &Store,
    excursions: &mut [Excursion],
    checks: &[AlarmCheck],
) -> Result<Vec<Signature>, StoreError> {
    for e in excursions.iter_mut().filter(|e| !e.test) {
        e.corrective = store.corrective_action(e.alarm)?;
    }
    let mut subjects: Vec<String> = excursions.iter().map(|e| alarm_subject(e.alarm)).collect();
    subjects.extend(checks.iter().map(super::alarm_check::subject));
    let described = |subject: &str| {
        if let Some(a) = checks.iter().find(|a| super::alarm_check::subject(a) == subject) {
            return format!("{subject} ({})", a.sensor);
        }
        excursions
            .iter()
            .find(|e| alarm_subject(e.alarm) == subject)
            .map(|e| {
                let kind = cfg
                    .rules
                    .iter()
                    .find(|r| r.id == e.rule)
                    .map_or(e.rule.as_str(), |r| r.condition.kind());
                format!("{subject} ({} {kind})", e.sensor)
            })
            .unwrap_or_else(|| subject.to_string())
    };
    Ok(store
        .signatures_for(&subjects)?
        .into_iter()
        .map(|s| Signature {
            signed: described(&s.subject),
            t: s.t,
            user: s.user,
            printed_name: s.printed_name,
            meaning: s.meaning,
            subject: s.subject,
            content_sha256: s.content_sha256,
        })
        .collect())
}

/// The corrective actions section of the document: one row per excursion that is
/// closed or an open deviation.
pub(super) fn corrective_blocks(r: &AssetReport, tz: &TimeZone) -> Vec<Block> {
    let mut blocks = vec![Block::Heading("Corrective actions".into())];
    let rows: Vec<Vec<String>> = r
        .excursions
        .iter()
        .filter_map(|e| Some((e, deviation(e)?)))
        .map(|(e, d)| corrective_row(e, d, tz))
        .collect();
    if rows.is_empty() {
        blocks.push(Block::Paragraph(
            "No excursion in the period has cleared: none needs a corrective action.".into(),
        ));
    } else {
        blocks.push(Block::Paragraph(
            "Every alarm that went active becomes an open deviation when it clears, until a person \
             closes it with a corrective action and an electronic signature. Alarm tests need none."
                .into(),
        ));
        blocks.push(Block::Table {
            headers: ["Alarm", "Reason", "Action taken", "Product impact", "Comment", "Signed"]
                .map(String::from)
                .to_vec(),
            rows,
            widths: Some(vec![0.5, 1.5, 1.6, 1.0, 1.4, 1.9]),
        });
    }
    blocks
}

/// The signatures section of the document: every signature bound to its records.
pub(super) fn signature_blocks(r: &AssetReport, tz: &TimeZone) -> Vec<Block> {
    let mut blocks = vec![Block::Heading("Signatures".into())];
    if r.signatures.is_empty() {
        blocks.push(Block::Paragraph(
            "No electronic signature is bound to this report's records.".into(),
        ));
    } else {
        blocks.push(Block::Paragraph(format!(
            "Every electronic signature bound to this report's records (21 CFR 11.50): who signed, \
             when, what the signature means, what was signed, and the first {HASH_SHOWN} hex digits \
             of the SHA-256 of the exact content signed, which the audit trail's verification \
             recomputes."
        )));
        blocks.push(Block::Table {
            headers: ["Signed by", "Time", "Meaning", "What was signed", "Content SHA-256"]
                .map(String::from)
                .to_vec(),
            rows: r
                .signatures
                .iter()
                .map(|s| {
                    vec![
                        signer(&s.printed_name, &s.user),
                        fmt_second(s.t, tz),
                        s.meaning.clone(),
                        s.signed.clone(),
                        s.content_sha256
                            .get(..HASH_SHOWN)
                            .unwrap_or(&s.content_sha256)
                            .to_string(),
                    ]
                })
                .collect(),
            widths: Some(vec![1.7, 1.6, 1.1, 1.8, 1.2]),
        });
    }
    blocks
}

fn corrective_row(e: &Excursion, d: Deviation<'_>, tz: &TimeZone) -> Vec<String> {
    let alarm = e.alarm.to_string();
    match d {
        Deviation::Open => vec![
            alarm,
            OPEN_DEVIATION.into(),
            "–".into(),
            "–".into(),
            "–".into(),
            "–".into(),
        ],
        Deviation::Closed(ca) => vec![
            alarm,
            format!("{}: {}", ca.reason, ca.reason_text),
            ca.action.clone(),
            ca.impact.clone(),
            if ca.comment.trim().is_empty() {
                "–".into()
            } else {
                ca.comment.clone()
            },
            format!(
                "{}\nat {}\n{}",
                signer(&ca.printed_name, &ca.signed_by),
                fmt_second(ca.t, tz),
                ca.meaning
            ),
        ],
    }
}
