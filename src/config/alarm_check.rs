//! `[alarm_check]`: how far the reference thermometer may be from a rule's threshold
//! when the alarm triggered (`tolerance`, in the sensor's unit), and how long a physical
//! alarm check may run before it ends as abandoned (`max_duration`);
//! `[[alarm_check_schedule]]`: how often the probes of which assets need a check. The
//! rules a check proves are a sensor's high and low rules ([`checked_rules`]).

use std::time::Duration;

use super::check::Checker;
use super::raw;
use super::rules::{Condition, Rule};
use super::sensor::{Asset, Sensor};
use crate::model::period::Every;

/// A rule an alarm check proves: its id, its threshold, and whether it is a high rule.
pub type CheckedRule = (String, f64, bool);

/// The high and low rules of sensor `sensor` (an index into the sensors) that raise
/// alarms: what a physical alarm check of its probe proves. None for the monitor's own
/// sensors.
pub fn checked_rules(sensors: &[Sensor], rules: &[Rule], sensor: usize) -> Vec<CheckedRule> {
    let probe = sensors.get(sensor).is_some_and(|s| !s.source.is_own());
    if !probe {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|r| r.sensor == sensor && r.raises)
        .filter_map(|r| match r.condition {
            Condition::High { threshold, .. } => Some((r.id.clone(), threshold, true)),
            Condition::Low { threshold, .. } => Some((r.id.clone(), threshold, false)),
            _ => None,
        })
        .collect()
}

/// `[[alarm_check_schedule]]`: the probes of `assets` (each sensor with a high or low
/// rule) need a finished alarm check in every period of `every`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSchedule {
    pub assets: Vec<String>,
    pub every: Every,
}

/// Default of `[alarm_check] tolerance`, in the sensor's unit.
pub const DEFAULT_TOLERANCE: f64 = 1.0;

/// Default of `[alarm_check] max_duration`.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(2 * 3600);

/// `[alarm_check]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmCheckConfig {
    /// A check passes when |reference − threshold| is at most this.
    pub tolerance: f64,
    /// A check not finished this long after it started is abandoned.
    pub max_duration: Duration,
    /// `[[alarm_check_schedule]]`: which assets' probes need a check, and how often.
    pub schedules: Vec<CheckSchedule>,
}

impl Default for AlarmCheckConfig {
    fn default() -> Self {
        AlarmCheckConfig {
            tolerance: DEFAULT_TOLERANCE,
            max_duration: DEFAULT_MAX_DURATION,
            schedules: Vec::new(),
        }
    }
}

/// Checks `[alarm_check]`: a finite tolerance not below zero; a positive duration no
/// longer than the longest shelving (the check holds its sensor's paging for as long).
pub(super) fn alarm_check(
    c: &mut Checker,
    raw: Option<&raw::AlarmCheck>,
    schedules: &[raw::AlarmCheckSchedule],
    known: Known<'_>,
) -> AlarmCheckConfig {
    let schedules = check_schedules(c, schedules, known);
    let Some(a) = raw else {
        return AlarmCheckConfig {
            schedules,
            ..AlarmCheckConfig::default()
        };
    };
    let tolerance = match a.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(t) if t.is_finite() && t >= 0.0 => t,
        Some(t) => {
            c.err(
                "alarm_check.tolerance",
                format!("expected a number of at least 0, found {t}"),
            );
            DEFAULT_TOLERANCE
        }
    };
    let max_duration = c.positive_duration(
        "alarm_check.max_duration",
        a.max_duration.as_deref(),
        DEFAULT_MAX_DURATION,
    );
    if max_duration > crate::alarm::engine::MAX_SHELVE {
        c.err(
            "alarm_check.max_duration",
            format!(
                "at most {} (the longest shelving: the check holds its sensor's paging that long), found {:?}",
                humantime::format_duration(crate::alarm::engine::MAX_SHELVE),
                a.max_duration.as_deref().unwrap_or_default()
            ),
        );
    }
    AlarmCheckConfig {
        tolerance,
        max_duration,
        schedules,
    }
}

/// What a schedule is checked against.
#[derive(Clone, Copy)]
pub(super) struct Known<'a> {
    pub assets: &'a [Asset],
    pub sensors: &'a [Sensor],
    pub rules: &'a [Rule],
}

/// Checks `[[alarm_check_schedule]]`: known assets, each in one schedule only, each with
/// a probe that has a high or low rule to check; a period people name.
fn check_schedules(c: &mut Checker, raw: &[raw::AlarmCheckSchedule], known: Known<'_>) -> Vec<CheckSchedule> {
    let mut named: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let p = format!("alarm_check_schedule[{i}]");
        if s.assets.is_empty() {
            c.err(format!("{p}.assets"), "must name at least one asset");
        }
        let mut assets = Vec::new();
        for (k, a) in s.assets.iter().enumerate() {
            let Some(ai) = known.assets.iter().position(|x| x.id == *a) else {
                let ids: Vec<&str> = known
                    .assets
                    .iter()
                    .map(|x| x.id.as_str())
                    .filter(|id| *id != super::monitor::ASSET)
                    .collect();
                c.err(
                    format!("{p}.assets[{k}]"),
                    format!("unknown asset {a:?}; declared: {}", ids.join(", ")),
                );
                continue;
            };
            if named.contains(&a.as_str()) {
                c.err(
                    format!("{p}.assets[{k}]"),
                    format!("asset {a:?} is already in an [[alarm_check_schedule]]"),
                );
                continue;
            }
            named.push(a);
            let checkable = known
                .sensors
                .iter()
                .enumerate()
                .any(|(si, x)| x.asset == ai && !checked_rules(known.sensors, known.rules, si).is_empty());
            if !checkable {
                c.err(
                    format!("{p}.assets[{k}]"),
                    format!("asset {a:?} has no sensor with a high or low rule: there is no alarm to check"),
                );
                continue;
            }
            assets.push(a.clone());
        }
        let every = Every::parse(&s.every).unwrap_or_else(|| {
            c.err(
                format!("{p}.every"),
                format!("expected one of {}, found {:?}", Every::ALL.join(", "), s.every),
            );
            Every::Quarterly
        });
        out.push(CheckSchedule { assets, every });
    }
    out
}
