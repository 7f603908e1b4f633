//! The auditor's report for one asset over a period: what `cryowatch report` writes as
//! PDF, HTML or CSV. [`gather`] reads the store into an [`AssetReport`] (every figure
//! computed here, in the site's time zone); [`document`] lays it out for the renderers
//! and [`write_csv`] flattens it.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Serialize;

use super::render::{Block, Chart, Document};
use crate::config::rules::{Condition, stale_after};
use crate::config::{Config, SensorSource};
use crate::model::{Quality, TimestampMs};
use crate::store::alarms::{self, AlarmRow, query_alarms};
use crate::store::audit::verify::Verification;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown asset {0:?}; configured assets: {1}")]
    UnknownAsset(String, String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// One day of one sensor, in the site's time zone.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Day {
    pub date: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub readings: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub from: TimestampMs,
    pub to: TimestampMs,
}

#[derive(Debug, Clone, Serialize)]
pub struct SensorSection {
    pub id: String,
    pub quantity: String,
    pub unit: String,
    /// Good readings received in the period.
    pub received: i64,
    /// Readings the sensor's schedule calls for (poll interval), or `None` for pushed
    /// data without a schedule.
    pub expected: Option<i64>,
    /// How the expectation was set, for the reader.
    pub expectation: String,
    /// Readings whose quality was not good (communication error, sensor fault...).
    pub bad_quality: i64,
    /// Spans longer than the sensor's stale limit without a good reading.
    pub gaps: Vec<Gap>,
    pub stale_limit_ms: i64,
    pub days: Vec<Day>,
    pub thresholds: Vec<(String, f64)>,
    #[serde(skip)]
    pub series: Vec<(TimestampMs, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Excursion {
    pub alarm: i64,
    pub sensor: String,
    pub rule: String,
    pub severity: String,
    pub start: TimestampMs,
    pub end: Option<TimestampMs>,
    /// The most extreme value during the excursion (highest for high and rising-rate
    /// rules, lowest for low ones).
    pub peak: Option<f64>,
    pub pages_sent: i64,
    pub pages_delivered: i64,
    pub acked_by: Option<String>,
    pub acked_at: Option<TimestampMs>,
    pub ack_comment: Option<String>,
    pub ack_path: Option<String>,
    pub suppressed: Option<String>,
    pub test: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmTest {
    pub id: i64,
    pub sensor: String,
    pub started_at: TimestampMs,
    pub by: String,
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suppression {
    pub kind: String,
    pub sensor: String,
    pub from: Option<TimestampMs>,
    pub until: Option<TimestampMs>,
    pub by: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssetReport {
    pub site: String,
    pub asset: String,
    pub asset_name: String,
    pub asset_kind: String,
    pub location: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub timezone: String,
    pub generated_at: TimestampMs,
    pub generated_by: String,
    pub version: String,
    pub sensors: Vec<SensorSection>,
    pub excursions: Vec<Excursion>,
    pub tests: Vec<AlarmTest>,
    pub suppressions: Vec<Suppression>,
    pub audit: Verification,
    #[serde(skip)]
    pub tz: TimeZone,
}

/// What to report on, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub asset: &'a str,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub now: TimestampMs,
    /// Who generates the report (printed on it).
    pub by: &'a str,
}

/// Reads everything the report needs. `progress` hears what is being read.
pub fn gather(
    cfg: &Config,
    store: &Store,
    req: Request,
    mut progress: impl FnMut(&str),
) -> Result<AssetReport, ReportError> {
    let Request {
        asset,
        from,
        to,
        now,
        by,
    } = req;
    let Some(ai) = cfg.assets.iter().position(|a| a.id == asset) else {
        let known: Vec<_> = cfg.assets.iter().map(|a| a.id.as_str()).collect();
        return Err(ReportError::UnknownAsset(asset.to_string(), known.join(", ")));
    };
    let a = &cfg.assets[ai];
    let tz = cfg.site.timezone.clone();
    let ids = store.sensors()?;
    let mut sensors = Vec::new();
    for (si, s) in cfg.sensors.iter().enumerate().filter(|(_, s)| s.asset == ai) {
        progress(&format!("reading {}", s.id));
        let stale = crate::model::millis(stale_after(s, &cfg.devices, &cfg.ups));
        let interval = match &s.source {
            SensorSource::Modbus(p) => cfg.devices.get(p.device).map(|d| d.poll_interval),
            SensorSource::Ups(p) => cfg.ups.iter().find(|u| u.id == p.ups).map(|u| u.poll_interval),
            SensorSource::Mqtt(_) | SensorSource::Monitor | SensorSource::Security => None,
        };
        let thresholds = cfg
            .rules
            .iter()
            .filter(|r| r.sensor == si && r.raises)
            .filter_map(|r| match r.condition {
                Condition::High { threshold, .. } => {
                    Some((format!("{} high ({})", r.severity.as_str(), r.id), threshold))
                }
                Condition::Low { threshold, .. } => {
                    Some((format!("{} low ({})", r.severity.as_str(), r.id), threshold))
                }
                _ => None,
            })
            .collect();
        let mut sec = SensorSection {
            id: s.id.clone(),
            quantity: s.quantity.clone(),
            unit: s.unit.clone(),
            received: 0,
            expected: interval.map(|i| to.saturating_sub(from) / crate::model::millis(i).max(1)),
            expectation: match interval {
                Some(i) => format!("one reading every {}", humantime::format_duration(i)),
                None => "pushed by the sensor (no schedule): gaps are spans longer than its stale limit".into(),
            },
            bad_quality: 0,
            gaps: Vec::new(),
            stale_limit_ms: stale,
            days: Vec::new(),
            thresholds,
            series: Vec::new(),
        };
        if let Some((id, _)) = ids.get(&s.id) {
            read_sensor(store, *id, from, to, &tz, &mut sec)?;
        } else {
            sec.gaps.push(Gap { from, to });
        }
        sensors.push(sec);
    }
    progress("reading alarms and pages");
    let names: Vec<&str> = sensors.iter().map(|s| s.id.as_str()).collect();
    let excursions = excursions(store, &names, asset, from, to)?;
    let mut excursions = excursions;
    for e in &mut excursions {
        if let Some(sec) = sensors.iter().find(|s| s.id == e.sensor) {
            let end = e.end.unwrap_or(to);
            let vals = sec
                .series
                .iter()
                .filter(|(t, _)| *t >= e.start && *t <= end)
                .map(|(_, v)| *v);
            let falling = cfg.rules.iter().find(|r| r.id == e.rule).is_some_and(|r| {
                matches!(
                    r.condition,
                    Condition::Low { .. } | Condition::Rate { rising: false, .. }
                )
            });
            e.peak = if falling {
                vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
            } else {
                vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
            };
        }
    }
    let tests = alarm_tests(store, &names, from, to)?;
    let suppressions = suppressions(store, cfg, &names, from, to)?;
    progress("verifying the audit trail");
    let audit = store.with_conn(|c| crate::store::audit::verify::verify(c, |_, _| {}))?;
    Ok(AssetReport {
        site: cfg.site.name.clone(),
        asset: a.id.clone(),
        asset_name: a.name.clone(),
        asset_kind: a.kind.clone(),
        location: a.location.clone(),
        from,
        to,
        timezone: tz.iana_name().unwrap_or("UTC").to_string(),
        generated_at: now,
        generated_by: by.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        sensors,
        excursions,
        tests,
        suppressions,
        audit,
        tz,
    })
}

fn local_date(t: TimestampMs, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(t) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string(),
        Err(_) => t.to_string(),
    }
}

/// Raw readings (and per-minute summaries where retention reduced them) → days, gaps.
fn read_sensor(
    store: &Store,
    id: i64,
    from: TimestampMs,
    to: TimestampMs,
    tz: &TimeZone,
    sec: &mut SensorSection,
) -> Result<(), ReportError> {
    // (t, min, max, sum, count) per point: a raw reading is its own min = max = sum.
    let mut points: Vec<(TimestampMs, f64, f64, f64, i64)> = Vec::new();
    let mut bad = 0;
    // The period is half-open: a reading at `to` belongs to the next period.
    store.history(id, from, to - 1, |r| {
        match (r.quality, r.value) {
            (Quality::Good, Some(v)) if v.is_finite() => points.push((r.time, v, v, v, 1)),
            _ => bad += 1,
        }
        true
    })?;
    store.with_conn(|c| {
        crate::store::retention::minute_aggregates(c, id, from, to, |t, min, max, mean, n| {
            points.push((t, min, max, mean * n as f64, n))
        })
    })?;
    points.sort_by_key(|p| p.0);
    sec.bad_quality = bad;
    let mut days: BTreeMap<String, (f64, f64, f64, i64)> = BTreeMap::new();
    let mut last = from;
    for &(t, min, max, sum, n) in &points {
        if t - last > sec.stale_limit_ms {
            sec.gaps.push(Gap { from: last, to: t });
        }
        last = t;
        sec.received += n;
        let d = days
            .entry(local_date(t, tz))
            .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0, 0));
        d.0 = d.0.min(min);
        d.1 = d.1.max(max);
        d.2 += sum;
        d.3 += n;
        sec.series.push((t, if n == 1 { min } else { sum / n as f64 }));
    }
    if to - last > sec.stale_limit_ms {
        sec.gaps.push(Gap { from: last, to });
    }
    sec.days = days
        .into_iter()
        .map(|(date, (min, max, sum, n))| Day {
            date,
            min: Some(min),
            max: Some(max),
            mean: Some(sum / n as f64),
            readings: n,
        })
        .collect();
    Ok(())
}

/// Alarms on the asset's sensors that overlap the period, with their pages.
fn excursions(
    store: &Store,
    sensors: &[&str],
    asset: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<Excursion>, StoreError> {
    store.with_conn(|c| {
        let tests: Vec<i64> = alarms::test_alarm_ids(c)?;
        let mut out = Vec::new();
        let mut rows: Vec<AlarmRow> = query_alarms(c, false, None)?;
        rows.sort_by_key(|a| a.id);
        for a in rows {
            if !(sensors.contains(&a.sensor.as_str()) || a.asset == asset) {
                continue;
            }
            if a.raised_at > to || a.cleared_at.is_some_and(|t| t < from) {
                continue;
            }
            let (sent, delivered) = crate::store::outbox::page_counts(c, a.id)?;
            out.push(Excursion {
                alarm: a.id,
                sensor: a.sensor,
                rule: a.rule,
                severity: a.severity.as_str().to_string(),
                start: a.raised_at,
                end: a.cleared_at,
                peak: a.value,
                pages_sent: sent,
                pages_delivered: delivered,
                acked_by: a.acked_by,
                acked_at: a.acked_at,
                ack_comment: a.ack_comment,
                ack_path: a.ack_path,
                suppressed: a.suppressed,
                test: tests.contains(&a.id),
            });
        }
        Ok(out)
    })
}

fn alarm_tests(
    store: &Store,
    sensors: &[&str],
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<AlarmTest>, StoreError> {
    let records = store.with_conn(|c| alarms::tests_between(c, from, to))?;
    Ok(records
        .into_iter()
        .filter(|t| sensors.contains(&t.sensor.as_str()))
        .map(|t| {
            let mut detail = format!(
                "rule {} raised alarm {} at value {}; {} pages delivered",
                t.rule,
                t.alarm.map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
                t.value,
                t.pages
            );
            if let Some(first) = t.first_page {
                detail.push_str(&format!(
                    " (first {} after the start)",
                    fmt_duration(first - t.started_at)
                ));
            }
            if let Some(why) = &t.suppressed {
                detail.push_str(&format!("; not paged: {why}"));
            }
            let result = match (&t.acked_by, t.acked_at) {
                (Some(by), Some(at)) => {
                    detail.push_str(&format!(
                        "; acknowledged by {by} via {} {} after the start: {}",
                        t.ack_path.as_deref().unwrap_or("?"),
                        fmt_duration(at - t.started_at),
                        t.ack_comment.as_deref().unwrap_or("")
                    ));
                    if t.pages > 0 {
                        "passed"
                    } else {
                        "acknowledged, no page delivered"
                    }
                }
                _ if t.pages > 0 => "awaiting acknowledgement",
                _ => "no page delivered",
            };
            AlarmTest {
                id: t.id,
                sensor: t.sensor,
                started_at: t.started_at,
                by: t.by,
                result: result.into(),
                detail,
            }
        })
        .collect())
}

fn suppressions(
    store: &Store,
    cfg: &Config,
    sensors: &[&str],
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<Suppression>, StoreError> {
    let mut out: Vec<Suppression> = store
        .with_conn(|c| alarms::shelves_between(c, from, to))?
        .into_iter()
        .filter(|s| sensors.contains(&s.sensor.as_str()))
        .map(|s| Suppression {
            kind: "shelved".into(),
            sensor: s.sensor,
            from: Some(s.from),
            until: Some(s.until),
            by: s.by,
            reason: s.reason,
        })
        .collect();
    for m in &cfg.maintenance {
        let names: Vec<&str> = m
            .sensors
            .iter()
            .filter_map(|i| cfg.sensors.get(*i))
            .map(|s| s.id.as_str())
            .collect();
        if names.iter().any(|n| sensors.contains(n)) {
            out.push(Suppression {
                kind: format!("maintenance window {} ({})", m.id, describe_window(&m.window)),
                sensor: names.join(", "),
                from: None,
                until: None,
                by: "configuration".into(),
                reason: m.reason.clone(),
            });
        }
    }
    Ok(out)
}

fn describe_window(w: &crate::config::rules::Window) -> String {
    use crate::config::rules::Window;
    match w {
        Window::Weekly {
            weekday,
            time,
            duration,
        } => {
            format!(
                "every {weekday:?} at {time} for {}",
                humantime::format_duration(*duration)
            )
        }
        Window::Daily { time, duration } => format!("daily at {time} for {}", humantime::format_duration(*duration)),
        Window::Once { from, to } => format!("once, {from} to {to}"),
    }
}

fn fmt_time(t: TimestampMs, tz: &TimeZone) -> String {
    crate::model::site_time(t, tz)
}

fn fmt_value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
}

fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
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
        text: match &r.audit.problem {
            None => format!(
                "Audit trail verified: {} records, head record {} hash {}",
                r.audit.records, r.audit.head_seq, r.audit.head_hash
            ),
            Some(p) => format!("Audit trail BROKEN at record {}: {}", p.record, p.what),
        },
    });
    for s in &r.sensors {
        let unit = crate::model::unit_symbol(&s.unit).to_string();
        blocks.push(Block::Heading(format!("{} ({}, {unit})", s.id, s.quantity)));
        blocks.push(Block::Chart(Chart {
            title: format!("{} {}", s.id, s.quantity),
            y_label: unit.clone(),
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
                        fmt_value(e.peak),
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

/// One CSV table: `record` says what each row is (`day`, `gap`, `excursion`, `test`,
/// `suppression`, `audit`); times are RFC 3339 UTC.
pub fn write_csv(r: &AssetReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    use crate::model::format_rfc3339 as utc;
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    writeln!(out, "record,sensor,start,end,min,max,mean,readings,expected,detail")?;
    for s in &r.sensors {
        for d in &s.days {
            writeln!(
                out,
                "day,{},{},,{},{},{},{},,",
                q(&s.id),
                d.date,
                d.min.map(|v| v.to_string()).unwrap_or_default(),
                d.max.map(|v| v.to_string()).unwrap_or_default(),
                d.mean.map(|v| v.to_string()).unwrap_or_default(),
                d.readings
            )?;
        }
        writeln!(
            out,
            "completeness,{},{},{},,,,{},{},{}",
            q(&s.id),
            utc(r.from),
            utc(r.to),
            s.received,
            s.expected.map(|e| e.to_string()).unwrap_or_default(),
            q(&format!("bad quality {}; {}", s.bad_quality, s.expectation))
        )?;
        for g in &s.gaps {
            writeln!(out, "gap,{},{},{},,,,,,", q(&s.id), utc(g.from), utc(g.to))?;
        }
    }
    for e in &r.excursions {
        let detail = format!(
            "alarm {} {} {}; pages sent {} delivered {}; acknowledged by {} at {} via {}: {}{}",
            e.alarm,
            e.rule,
            e.severity,
            e.pages_sent,
            e.pages_delivered,
            e.acked_by.as_deref().unwrap_or("-"),
            e.acked_at.map(utc).unwrap_or_default(),
            e.ack_path.as_deref().unwrap_or("-"),
            e.ack_comment.as_deref().unwrap_or(""),
            if e.test { " (test)" } else { "" }
        );
        writeln!(
            out,
            "excursion,{},{},{},,{},,,,{}",
            q(&e.sensor),
            utc(e.start),
            e.end.map(utc).unwrap_or_default(),
            e.peak.map(|v| v.to_string()).unwrap_or_default(),
            q(&detail)
        )?;
    }
    for t in &r.tests {
        writeln!(
            out,
            "test,{},{},,,,,,,{}",
            q(&t.sensor),
            utc(t.started_at),
            q(&format!("{} by {}: {}", t.result, t.by, t.detail))
        )?;
    }
    for s in &r.suppressions {
        writeln!(
            out,
            "suppression,{},{},{},,,,,,{}",
            q(&s.sensor),
            s.from.map(utc).unwrap_or_default(),
            s.until.map(utc).unwrap_or_default(),
            q(&format!("{} by {}: {}", s.kind, s.by, s.reason))
        )?;
    }
    let audit = match &r.audit.problem {
        None => format!(
            "verified {} records; head {} {}",
            r.audit.records, r.audit.head_seq, r.audit.head_hash
        ),
        Some(p) => format!("BROKEN at record {}: {}", p.record, p.what),
    };
    writeln!(out, "audit,,{},,,,,,,{}", utc(r.generated_at), q(&audit))?;
    Ok(())
}
