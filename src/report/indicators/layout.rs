//! The quality figures as a [`Document`] for the PDF and HTML renderers: for each month
//! and asset its headline figures, then the breakdowns (alarms and nuisance alarms by
//! rule, time to acknowledge by contact and by hour of day), the calibration status
//! and the definitions.

use super::{AckStats, Indicators, Summary};
use crate::model::format_rfc3339;
use crate::report::asset::fmt_duration;
use crate::report::render::{Block, Document};

/// Seconds as the report prints a duration, e.g. `3m 05s`.
pub fn seconds(s: f64) -> String {
    fmt_duration((s * 1000.0).round() as i64)
}

/// How the report names an asset (`site` for the site's own records).
pub fn asset_label(asset: &str) -> &str {
    if asset.is_empty() { "site" } else { asset }
}

fn ack_text(a: &AckStats) -> String {
    format!(
        "p50 {}, p90 {}, max {} ({} acknowledged)",
        seconds(a.p50),
        seconds(a.p90),
        seconds(a.max),
        a.count
    )
}

/// The headline figures of one month and asset, label and value, as the report and the
/// dashboard show them.
pub fn headline(s: &Summary) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Alarms", s.alarms.to_string()),
        (
            "Excursions",
            format!("{} ({:.1} min out of range)", s.excursions, s.excursion_minutes),
        ),
        (
            "Time to acknowledge",
            s.ack.as_ref().map_or_else(|| "none acknowledged".into(), ack_text),
        ),
        ("Not acknowledged", s.not_acknowledged.to_string()),
        ("Escalated beyond the first step", s.escalations.to_string()),
        ("Pages undeliverable", s.undeliverable.to_string()),
        ("Fallbacks used", s.fallbacks.to_string()),
        ("Nuisance alarms", s.nuisance.to_string()),
        (
            "Open deviations",
            match s.oldest_deviation_days {
                Some(d) => format!("{} (oldest {d:.1} days)", s.open_deviations),
                None => s.open_deviations.to_string(),
            },
        ),
        ("Alarm tests done", s.alarm_tests.to_string()),
        (
            "Alarm checks done / due",
            format!(
                "{} ({} passed) / {} ({} of those due done)",
                s.alarm_checks, s.alarm_checks_passed, s.alarm_checks_due, s.alarm_checks_due_done
            ),
        ),
        (
            "Test pages done / due",
            format!(
                "{} / {} ({} of those due delivered)",
                s.test_pages_done, s.test_pages_due, s.test_pages_due_done
            ),
        ),
    ];
    rows.push((
        "Data completeness",
        match s.completeness() {
            Some(p) => format!("{p:.1} % ({} of {} readings expected)", s.readings, s.readings_expected),
            None if s.readings_pushed > 0.0 => format!("{} readings pushed (no schedule)", s.readings_pushed),
            None => "no scheduled readings".into(),
        },
    ));
    rows
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table {
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
        widths: None,
    }
}

fn ack_rows<K: ToString>(by: &[(K, AckStats)]) -> Vec<Vec<String>> {
    by.iter()
        .map(|(k, a)| {
            vec![
                k.to_string(),
                a.count.to_string(),
                seconds(a.p50),
                seconds(a.p90),
                seconds(a.max),
            ]
        })
        .collect()
}

const ACK_HEADERS: [&str; 4] = ["acknowledged", "p50", "p90", "max"];

fn summary_blocks(s: &Summary, out: &mut Vec<Block>) {
    out.push(Block::Heading(format!("{} · {}", s.month, asset_label(&s.asset))));
    out.push(table(
        &["Figure", "Value"],
        headline(s).into_iter().map(|(k, v)| vec![k.to_string(), v]).collect(),
    ));
    if !s.alarms_by_rule.is_empty() {
        out.push(Block::Paragraph("Alarms by rule".into()));
        out.push(table(
            &["Rule", "Alarms"],
            s.alarms_by_rule
                .iter()
                .map(|(r, n)| vec![r.clone(), n.to_string()])
                .collect(),
        ));
    }
    if !s.nuisance_by_rule.is_empty() {
        out.push(Block::Paragraph(
            "Nuisance alarms by rule (most first: the rules whose delays to tune)".into(),
        ));
        out.push(table(
            &["Rule", "Nuisance alarms"],
            s.nuisance_by_rule
                .iter()
                .map(|(r, n)| vec![r.clone(), n.to_string()])
                .collect(),
        ));
    }
    if !s.ack_by_contact.is_empty() {
        out.push(Block::Paragraph("Time to acknowledge by contact".into()));
        let mut headers = vec!["Contact"];
        headers.extend(ACK_HEADERS);
        out.push(table(&headers, ack_rows(&s.ack_by_contact)));
        out.push(Block::Paragraph(
            "Time to acknowledge by hour of day the alarm became active".into(),
        ));
        let mut headers = vec!["Hour"];
        headers.extend(ACK_HEADERS);
        let hours: Vec<(String, AckStats)> = s.ack_by_hour.iter().map(|(h, a)| (format!("{h:02}:00"), *a)).collect();
        out.push(table(&headers, ack_rows(&hours)));
    }
}

/// The definitions printed at the end of the report.
pub fn definitions(nuisance_within_s: u64) -> String {
    format!(
        "Each figure counts records of the store; the CSV export lists every record each figure \
         counts. Months are the site's. Alarm tests are not alarms here: they are counted as alarm \
         tests done.\n\
         Excursion: an alarm of a limit rule; minutes out of range from its condition's onset (the \
         rule's delay included) to its return to normal, its clearing, or the period's end.\n\
         Time to acknowledge: from the alarm becoming active to its acknowledgement; p50 and p90 \
         are nearest-rank percentiles.\n\
         Escalated beyond the first step: a page of a later step or round was queued.\n\
         Undeliverable: given up, or reported undelivered by the carrier. Fallback: delivered by \
         another channel than the page's own.\n\
         Nuisance: cleared within {} of becoming active, never acknowledged ([quality] \
         nuisance_within).\n\
         Open deviation: cleared before the period's end and not closed by a signed corrective \
         action before it; its age at the period's end.",
        seconds(nuisance_within_s as f64)
    )
}

/// The document of `r`.
pub fn document(r: &Indicators) -> Document {
    let mut blocks = vec![Block::Fields(vec![
        ("Site".into(), r.site.clone()),
        (
            "Period".into(),
            format!("{} to {}", format_rfc3339(r.from), format_rfc3339(r.to)),
        ),
        ("Time zone".into(), r.timezone.clone()),
        ("Months".into(), r.months.join(", ")),
        ("Generated".into(), format_rfc3339(r.generated_at)),
    ])];
    if r.summaries.is_empty() {
        blocks.push(Block::Paragraph("Nothing was recorded in this period.".into()));
    }
    for s in &r.summaries {
        summary_blocks(s, &mut blocks);
    }
    let calibration: Vec<&super::Counted> = r
        .records
        .iter()
        .filter(|c| c.figure == super::Figure::Calibration)
        .collect();
    if !calibration.is_empty() {
        blocks.push(Block::Heading("Calibration status".into()));
        blocks.push(Block::Paragraph(format!(
            "{} of {} probes in calibration at the period's end.",
            calibration.iter().filter(|c| c.value > 0.0).count(),
            calibration.len()
        )));
        blocks.push(Block::Table {
            headers: ["Asset", "Probe", "Record"].map(String::from).to_vec(),
            rows: calibration
                .iter()
                .map(|c| vec![c.asset.clone(), c.detail.clone(), c.record.clone()])
                .collect(),
            widths: Some(vec![1.0, 4.0, 1.2]),
        });
    }
    blocks.push(Block::Heading("Definitions".into()));
    blocks.push(Block::Paragraph(definitions(r.nuisance_within_s)));
    Document {
        title: format!("Alarm system quality indicators: {}", r.site),
        subtitle: Some(format!("{} to {}", format_rfc3339(r.from), format_rfc3339(r.to))),
        blocks,
        footer: format!("cryowatch {} quality indicators", r.site),
    }
}
