//! The calibration of a report's probes ([`crate::store::quality::calibration`]): each
//! certificate in force during the period, and the spans in which a probe's calibration
//! was overdue. Readings in those spans keep their values; the report flags them.

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::TimestampMs;
use crate::report::render::Block;
use crate::store::{Store, StoreError};

use super::AssetReport;
use super::layout::fmt_second;
use super::quality::signer;

/// One certificate of a probe in force during the report's period.
#[derive(Debug, Clone, Serialize)]
pub struct Certificate {
    pub sensor: String,
    pub certificate: String,
    pub calibrated: String,
    pub due: String,
    pub as_found: Option<f64>,
    pub as_left: Option<f64>,
    pub reference: String,
    pub offset: Option<f64>,
    pub signed_by: String,
    /// Within the period: from when to when the probe ran past this certificate's due
    /// date without a new one.
    pub overdue: Option<(TimestampMs, TimestampMs)>,
}

/// The certificates of `sensors` in force at some time in `from`..`to`.
pub(super) fn gather(
    store: &Store,
    sensors: &[&str],
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<Certificate>, StoreError> {
    let mut out = Vec::new();
    for s in sensors {
        let all = store.calibrations_of(s)?;
        for (i, c) in all.iter().enumerate() {
            // In force from its recording until the next one's.
            let until = all.get(i + 1).map_or(TimestampMs::MAX, |n| n.t);
            if c.t >= to || until <= from {
                continue;
            }
            let overdue_from = c.record.due_at.max(from);
            let overdue_to = until.min(to);
            out.push(Certificate {
                sensor: c.record.sensor.clone(),
                certificate: c.record.certificate.clone(),
                calibrated: c.record.calibrated.clone(),
                due: c.record.due.clone(),
                as_found: c.record.as_found,
                as_left: c.record.as_left,
                reference: c.record.reference.clone(),
                offset: c.record.offset,
                signed_by: signer(&c.printed_name, &c.signed_by),
                overdue: (overdue_from < overdue_to).then_some((overdue_from, overdue_to)),
            });
        }
    }
    Ok(out)
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v}"))
}

/// The "Calibration" section; nothing when no probe has a certificate on record.
pub(super) fn blocks(r: &AssetReport, tz: &TimeZone) -> Vec<Block> {
    if r.calibrations.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading("Calibration".into()),
        Block::Table {
            headers: [
                "Sensor",
                "Certificate",
                "Calibrated",
                "Due",
                "As found / as left",
                "Offset",
                "Reference",
                "Recorded by",
            ]
            .map(String::from)
            .to_vec(),
            rows: r
                .calibrations
                .iter()
                .map(|c| {
                    vec![
                        c.sensor.clone(),
                        c.certificate.clone(),
                        c.calibrated.clone(),
                        c.due.clone(),
                        format!("{} / {}", num(c.as_found), num(c.as_left)),
                        num(c.offset),
                        c.reference.clone(),
                        c.signed_by.clone(),
                    ]
                })
                .collect(),
            widths: None,
        },
    ];
    for c in &r.calibrations {
        if let Some((a, b)) = c.overdue {
            blocks.push(Block::Verdict {
                ok: false,
                text: format!(
                    "{}: calibration overdue from {} to {} (certificate {} was due {}): the readings of this span keep their values and are flagged as taken by a probe out of calibration",
                    c.sensor,
                    fmt_second(a, tz),
                    fmt_second(b, tz),
                    c.certificate,
                    c.due
                ),
            });
        }
    }
    blocks
}

/// The CSV rows: `calibration` (one per certificate; `start`/`end` the overdue span).
pub(super) fn write_csv(
    r: &AssetReport,
    out: &mut impl std::io::Write,
    q: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    use crate::model::format_rfc3339 as utc;
    for c in &r.calibrations {
        let (start, end) = c
            .overdue
            .map_or((String::new(), String::new()), |(a, b)| (utc(a), utc(b)));
        let detail = format!(
            "certificate {}; calibrated {}; due {}; as found {}; as left {}; offset {}; reference {}; recorded by {}{}",
            c.certificate,
            c.calibrated,
            c.due,
            num(c.as_found),
            num(c.as_left),
            num(c.offset),
            c.reference,
            c.signed_by,
            if c.overdue.is_some() {
                "; OVERDUE in start..end: readings flagged"
            } else {
                ""
            }
        );
        writeln!(out, "calibration,{},{start},{end},,,,,,{}", q(&c.sensor), q(&detail))?;
    }
    Ok(())
}
