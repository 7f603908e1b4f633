//! The report laid out as a [`Document`] for the PDF and HTML renderers: header and
//! audit verdict, one section per sensor (chart, completeness, days, gaps), then
//! excursions, alarm tests, maintenance and shelving.

use jiff::tz::TimeZone;

use crate::model::TimestampMs;
use crate::report::render::{Block, Chart, Document};

use super::{AssetReport, fmt_duration};

fn fmt_time(t: TimestampMs, tz: &TimeZone) -> String {
    crate::model::site_time(t, tz)
}

fn fmt_value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
}

/// A value as people read it: a discrete sensor's state by name (`states`).
fn fmt_named(v: Option<f64>, states: Option<&[String; 2]>) -> String {
    match (v, states) {
        (Some(v), Some([off, on])) => (if v == 0.0 { off } else { on }).clone(),
        _ => fmt_value(v),
    }
}

/// A discrete sensor's day: the states seen and the share of readings in the second.
fn discrete_day(d: &super::Day, [off, on]: &[String; 2]) -> Vec<String> {
    let seen = match (d.min, d.max) {
        (Some(lo), Some(hi)) if lo == hi => fmt_named(Some(lo), Some(&[off.clone(), on.clone()])),
        (Some(_), Some(_)) => format!("{off}, {on}"),
        _ => "–".into(),
    };
    let share = d.mean.map_or_else(|| "–".into(), |m| format!("{:.1} %", 100.0 * m));
    vec![d.date.clone(), seen, share, d.readings.to_string()]
}

/// The report as blocks for the PDF and HTML renderers.
pub fn document(r: &AssetReport) -> Document {
    let tz = &r.tz;
    let mut blocks = vec![Block::Fields(vec![
        ("Site".into(), r.site.clone()),
        (
            "Asset".into(),
            format!("{} — {} ({})", r.asset, r.asset_name, r.asset_kind),
        ),
        ("Location".into(), r.location.clone()),
        (
            "Period".into(),
            format!("{} to {}", fmt_time(r.from, tz), fmt_time(r.to, tz)),
        ),
        ("Time zone".into(), r.timezone.clone()),
        (
            "Generated".into(),
            format!("{} by {}", fmt_time(r.generated_at, tz), r.generated_by),
        ),
    ])];
    blocks.push(Block::Verdict {
        ok: r.audit.ok(),
        text: super::integrity(&r.audit, |t| fmt_time(t, tz)),
    });
    for s in &r.sensors {
        let unit = crate::model::unit_symbol(&s.unit).to_string();
        blocks.push(Block::Heading(match &s.states {
            Some([off, on]) => format!("{} ({}: 0 = {off}, 1 = {on})", s.id, s.quantity),
            None => format!("{} ({}, {unit})", s.id, s.quantity),
        }));
        blocks.push(Block::Chart(Chart {
            title: format!("{} {}", s.id, s.quantity),
            y_label: match &s.states {
                Some([_, on]) => format!("1 = {on}"),
                None => unit.clone(),
            },
            series: s.series.clone(),
            gaps: s.gaps.iter().map(|g| (g.from, g.to)).collect(),
            thresholds: s.thresholds.clone(),
            shaded: r
                .excursions
                .iter()
                .filter(|e| e.sensor == s.id && !e.test)
                .map(|e| (e.start, e.end.unwrap_or(r.to)))
                .collect(),
            from_ms: r.from,
            to_ms: r.to,
            tz: tz.clone(),
        }));
        let completeness = match s.expected {
            Some(e) if e > 0 => format!(
                "{} good readings of {} expected ({:.1} %); {}",
                s.received,
                e,
                100.0 * s.received as f64 / e as f64,
                s.expectation
            ),
            _ => format!("{} good readings; {}", s.received, s.expectation),
        };
        blocks.push(Block::Paragraph(format!(
            "Data completeness: {completeness}. Readings of bad quality: {}. Gaps longer than {}: {}.",
            s.bad_quality,
            fmt_duration(s.stale_limit_ms),
            s.gaps.len()
        )));
        if let Some(states) = &s.states {
            blocks.push(Block::Table {
                headers: vec![
                    "Date".into(),
                    "States seen".into(),
                    format!("Readings {}", states[1]),
                    "Readings".into(),
                ],
                rows: s.days.iter().map(|d| discrete_day(d, states)).collect(),
                widths: None,
            });
        } else {
            blocks.push(Block::Table {
                headers: vec![
                    "Date".into(),
                    format!("Min {unit}"),
                    format!("Max {unit}"),
                    format!("Mean {unit}"),
                    "Readings".into(),
                ],
                rows: s
                    .days
                    .iter()
                    .map(|d| {
                        vec![
                            d.date.clone(),
                            fmt_value(d.min),
                            fmt_value(d.max),
                            fmt_value(d.mean),
                            d.readings.to_string(),
                        ]
                    })
                    .collect(),
                widths: None,
            });
        }
        if !s.gaps.is_empty() {
            blocks.push(Block::Table {
                headers: vec!["Gap from".into(), "to".into(), "Duration".into()],
                rows: s
                    .gaps
                    .iter()
                    .map(|g| vec![fmt_time(g.from, tz), fmt_time(g.to, tz), fmt_duration(g.to - g.from)])
                    .collect(),
                widths: None,
            });
        }
    }
    blocks.push(Block::Heading("Excursions and alarms".into()));
    if r.excursions.iter().all(|e| e.test) {
        blocks.push(Block::Paragraph("No alarm in the period.".into()));
    } else {
        blocks.push(Block::Table {
            headers: [
                "Alarm",
                "Sensor / rule",
                "Start",
                "End",
                "Duration",
                "Peak",
                "Pages sent / delivered",
                "Acknowledged",
            ]
            .map(String::from)
            .to_vec(),
            rows: r
                .excursions
                .iter()
                .filter(|e| !e.test)
                .map(|e| {
                    let ack = match (&e.acked_by, e.acked_at) {
                        (Some(by), Some(at)) => format!(
                            "{by} at {} via {}: {}",
                            fmt_time(at, tz),
                            e.ack_path.as_deref().unwrap_or("?"),
                            e.ack_comment.as_deref().unwrap_or("")
                        ),
                        _ => "not acknowledged".into(),
                    };
                    vec![
                        format!("{} {}", e.alarm, e.severity),
                        format!("{} / {}", e.sensor, e.rule),
                        fmt_time(e.start, tz),
                        e.end.map(|t| fmt_time(t, tz)).unwrap_or_else(|| "open".into()),
                        fmt_duration(e.end.unwrap_or(r.to) - e.start),
                        fmt_named(
                            e.peak,
                            r.sensors
                                .iter()
                                .find(|s| s.id == e.sensor)
                                .and_then(|s| s.states.as_ref()),
                        ),
                        format!(
                            "{} / {}{}",
                            e.pages_sent,
                            e.pages_delivered,
                            e.suppressed
                                .as_ref()
                                .map(|s| format!(" (suppressed: {s})"))
                                .unwrap_or_default()
                        ),
                        ack,
                    ]
                })
                .collect(),
            widths: Some(vec![0.7, 1.5, 1.1, 1.1, 0.95, 0.75, 1.0, 2.1]),
        });
    }
    blocks.push(Block::Heading("Alarm tests".into()));
    if r.tests.is_empty() {
        blocks.push(Block::Paragraph("No alarm test in the period.".into()));
    } else {
        blocks.push(Block::Table {
            headers: ["Test", "Sensor", "Started", "By", "Result", "Detail"]
                .map(String::from)
                .to_vec(),
            rows: r
                .tests
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.sensor.clone(),
                        fmt_time(t.started_at, tz),
                        t.by.clone(),
                        t.result.clone(),
                        t.detail.clone(),
                    ]
                })
                .collect(),
            widths: Some(vec![0.5, 1.3, 1.3, 1.0, 0.8, 3.0]),
        });
    }
    blocks.push(Block::Heading("Maintenance and shelving".into()));
    if r.suppressions.is_empty() {
        blocks.push(Block::Paragraph("No maintenance window or shelving applies.".into()));
    } else {
        blocks.push(Block::Table {
            headers: ["What", "Sensors", "From", "Until", "By", "Reason"]
                .map(String::from)
                .to_vec(),
            rows: r
                .suppressions
                .iter()
                .map(|s| {
                    vec![
                        s.kind.clone(),
                        s.sensor.clone(),
                        s.from.map(|t| fmt_time(t, tz)).unwrap_or_else(|| "–".into()),
                        s.until.map(|t| fmt_time(t, tz)).unwrap_or_else(|| "–".into()),
                        s.by.clone(),
                        s.reason.clone(),
                    ]
                })
                .collect(),
            widths: None,
        });
    }
    Document {
        title: format!("Storage temperature record — {}", r.asset),
        subtitle: Some(format!(
            "{} · {} to {}",
            r.site,
            fmt_time(r.from, tz),
            fmt_time(r.to, tz)
        )),
        blocks,
        footer: format!(
            "cryowatch {} · {} · {} · audit head {}:{}",
            r.version,
            r.site,
            r.asset,
            r.audit.head_seq,
            r.audit.head_hash.get(..16).unwrap_or("")
        ),
    }
}
