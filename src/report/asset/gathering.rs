//! Gathering a report: the asset's sensors and their readings, the alarms that overlap
//! the period with their pages and acknowledgements (and, through `quality`, their
//! corrective actions and signatures), alarm tests, shelvings and maintenance windows,
//! and the audit trail's verification.

use crate::config::rules::{Condition, stale_after};
use crate::config::{Config, SensorSource};
use crate::model::TimestampMs;
use crate::store::alarms::AlarmRow;
use crate::store::{Store, StoreError};

use super::daily::read_sensor;
use super::{AlarmTest, AssetReport, Excursion, Gap, ReportError, Request, SensorSection, Suppression, fmt_duration};

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
        let interval = poll_interval(cfg, s);
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
            states: s.states.clone(),
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
    let mut excursions = excursions(store, &names, asset, from, to)?;
    super::excursion::annotate(cfg, &sensors, &mut excursions, to);
    progress("reading corrective actions and signatures");
    let alarm_checks = super::alarm_check::gather(store, &names, from, to)?;
    let signatures = super::quality::gather(cfg, store, &mut excursions, &alarm_checks)?;
    let mut tests = alarm_tests(store, cfg, &names, from, to)?;
    for t in &mut tests {
        t.by = super::people::person(cfg, &t.by);
    }
    let suppressions = suppressions(store, cfg, &names, from, to)?;
    progress("verifying the audit trail");
    let audit = store.verify(|_, _| {})?;
    let calibrations = super::calibration::gather(store, &names, from, to)?;
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
        generated_by: super::people::person(cfg, by),
        version: env!("CARGO_PKG_VERSION").to_string(),
        sensors,
        excursions,
        tests,
        suppressions,
        signatures,
        calibrations,
        alarm_checks,
        reviews: super::review::gather(store, asset, from, to)?,
        audit,
        tz,
    })
}

/// How often `s` is read, when it is read on a schedule (Modbus, NUT); `None` for a
/// sensor that pushes its readings (MQTT) or the monitor's own.
pub(crate) fn poll_interval(cfg: &Config, s: &crate::config::Sensor) -> Option<std::time::Duration> {
    match &s.source {
        SensorSource::Modbus(p) => cfg.devices.get(p.device).map(|d| d.poll_interval),
        SensorSource::Ups(p) => cfg.ups.iter().find(|u| u.id == p.ups).map(|u| u.poll_interval),
        SensorSource::Serial(p) => p.query.as_ref().map(|_| p.poll_interval),
        SensorSource::Mqtt(_) | SensorSource::Monitor | SensorSource::Security | SensorSource::Calibration(_) => None,
    }
}

/// Alarms on the asset's sensors that overlap the period, with their pages.
fn excursions(
    store: &Store,
    sensors: &[&str],
    asset: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<Excursion>, StoreError> {
    let mut out = Vec::new();
    let concerned = |a: &AlarmRow| {
        (sensors.contains(&a.sensor.as_str()) || a.asset == asset)
            && a.raised_at <= to
            && a.cleared_at.is_none_or(|t| t >= from)
    };
    for (a, test, (sent, delivered)) in store.alarms_with_pages(concerned)? {
        out.push(Excursion {
            alarm: a.id,
            sensor: a.sensor,
            rule: a.rule,
            severity: a.severity.as_str().to_string(),
            start: a.raised_at,
            end: a.cleared_at,
            peak: a.value,
            state: None,
            readings_out: None,
            data_end: None,
            pages_sent: sent,
            pages_delivered: delivered,
            acked_by: a.acked_by,
            acked_at: a.acked_at,
            ack_comment: a.ack_comment,
            ack_path: a.ack_path,
            suppressed: a.suppressed,
            test,
            corrective: None,
        });
    }
    Ok(out)
}

fn alarm_tests(
    store: &Store,
    cfg: &Config,
    sensors: &[&str],
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<AlarmTest>, StoreError> {
    let records = store.tests_between(from, to)?;
    Ok(records
        .into_iter()
        .filter(|t| sensors.contains(&t.sensor.as_str()))
        .map(|t| {
            // A discrete sensor's test is of a state, named as people read it.
            let state = cfg
                .sensors
                .iter()
                .find(|s| s.id == t.sensor)
                .and_then(|s| s.state_name(t.value));
            let at = match state {
                Some(name) => format!("in state {name}"),
                None => format!("at value {}", t.value),
            };
            let mut detail = format!(
                "rule {} raised alarm {} {at}; {} pages delivered",
                t.rule,
                t.alarm.map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
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
                        "; acknowledged by {} via {} {} after the start: {}",
                        super::people::person(cfg, by),
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
        .shelves_between(from, to)?
        .into_iter()
        .filter(|s| sensors.contains(&s.sensor.as_str()))
        .map(|s| Suppression {
            kind: "shelved".into(),
            sensor: s.sensor,
            from: Some(s.from),
            until: Some(s.until),
            by: super::people::person(cfg, &s.by),
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
        Window::Monthly {
            day,
            months,
            time,
            duration,
        } => format!(
            "{day} of {months} at {} for {}",
            time.strftime("%H:%M"),
            humantime::format_duration(*duration)
        ),
        Window::Once { from, to } => format!("once, {from} to {to}"),
    }
}
