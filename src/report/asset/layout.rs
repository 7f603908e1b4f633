//! The report laid out as a [`Document`] for the PDF and HTML renderers: header and
//! audit verdict, one section per sensor (chart, completeness, days, gaps), then
//! excursions, their corrective actions, alarm tests, maintenance and shelving, and the
//! signatures bound to the report's records.

use jiff::tz::TimeZone;

use crate::model::TimestampMs;
use crate::report::render::{Block, Chart, Document};

use super::{AssetReport, fmt_duration};

fn fmt_time(t: TimestampMs, tz: &TimeZone) -> String {
    crate::model::site_time(t, tz)
}

/// A moment to the second, for alarm, reading and signature times.
pub(super) fn fmt_second(t: TimestampMs, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(t) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => t.to_string(),
    }
}

/// One row of the excursions table: the alarm's times beside the readings' own span.
fn excursion_row(e: &super::Excursion, tz: &TimeZone) -> Vec<String> {
    let alarm = match (e.end, e.data_end) {
        (Some(end), _) => format!(
            "raised {}\ncleared {}\n({})",
            fmt_second(e.start, tz),
            fmt_second(end, tz),
            fmt_duration(end - e.start)
        ),
        (None, Some(last)) => format!(
            "raised {}\nopen at end of data (last reading {})\n(at least {})",
            fmt_second(e.start, tz),
            fmt_second(last, tz),
            fmt_duration(last - e.start)
        ),
        (None, None) => format!(
            "raised {}\nopen at end of data (no reading since)",
            fmt_second(e.start, tz)
        ),
    };
    let readings = match e.readings_out {
        Some((first, last)) => format!(
            "{}\nto {}\n({})",
            fmt_second(first, tz),
            fmt_second(last, tz),
            fmt_duration(last - first)
        ),
        None => "–".into(),
    };
    let peak = match &e.state {
        Some(name) => format!("state {name}"),
        None => fmt_value(e.peak),
    };
    let ack = match (&e.acked_by, e.acked_at) {
        (Some(by), Some(at)) => format!(
            "{by}\nat {} via {}\n{}",
            fmt_second(at, tz),
            e.ack_path.as_deref().unwrap_or("?"),
            e.ack_comment.as_deref().unwrap_or("")
        ),
        _ => "not acknowledged".into(),
    };
    vec![
        format!("{} {}", e.alarm, e.severity),
        format!("{} / {}", e.sensor, e.rule),
        alarm,
        readings,
        peak,
        format!(
            "{} sent\n{} delivered{}",
            e.pages_sent,
            e.pages_delivered,
            e.suppressed
                .as_ref()
                .map(|s| format!(" (suppressed: {s})"))
                .unwrap_or_default()
        ),
        ack,
    ]
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
                .map(super::excursion::shaded)
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
        blocks.push(Block::Paragraph(
            "An alarm is raised when its rule's condition has held for the rule's delay and clears \
             past its hysteresis, so its times differ from the readings': both are given, to the second."
                .into(),
        ));
        blocks.push(Block::Table {
            headers: [
                "Alarm",
                "Sensor / rule",
                "Alarm raised, cleared",
                "Readings out of limit",
                "Peak",
                "Pages",
                "Acknowledged",
            ]
            .map(String::from)
            .to_vec(),
            rows: r
                .excursions
                .iter()
                .filter(|e| !e.test)
                .map(|e| excursion_row(e, tz))
                .collect(),
            widths: Some(vec![0.75, 1.25, 1.5, 1.5, 0.95, 0.85, 1.8]),
        });
    }
    blocks.extend(super::quality::corrective_blocks(r, tz));
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
    blocks.extend(super::quality::signature_blocks(r, tz));
    blocks.extend(super::calibration::blocks(r, tz));
    blocks.extend(super::alarm_check::blocks(r, tz));
    blocks.extend(super::review::blocks(r, tz));
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
