//! `[calibration]`: the probes whose calibration is watched, and how long before its due
//! date a warning is raised.
//!
//! Each watched sensor gets a sensor of the monitor, `cryowatch.calibration.<sensor>`,
//! whose readings are the days left until the probe's calibration is due (negative once
//! overdue), written by the daemon from the calibration register
//! ([`crate::store::quality::calibration`]); a probe with no calibration on record has no
//! readings. Its rules are one family: `<sensor>:calibration` raises a warning at the
//! first `warn_before` (90 days by default), the later ones (30 days) join it, and
//! `<sensor>:calibration-due` upgrades it to an alarm on the due date. A new record
//! moves the due date and clears it.

use std::time::Duration;

use super::check::Checker;
use super::raw;
use super::rules::{Condition, Origin, Rule, Severity};
use super::sensor::{Asset, Sensor, SensorSource};

/// Default `warn_before`: three months and one month.
pub const DEFAULT_WARN_BEFORE: [Duration; 2] = [Duration::from_secs(90 * 86_400), Duration::from_secs(30 * 86_400)];

/// The prefix of the calibration sensors' ids.
pub const SENSOR_PREFIX: &str = "cryowatch.calibration.";

/// `[calibration]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationConfig {
    /// Longest first.
    pub warn_before: Vec<Duration>,
    /// Indices of the watched sensors.
    pub sensors: Vec<usize>,
}

/// The id of the calibration sensor of `sensor`.
pub fn sensor_id(sensor: &str) -> String {
    format!("{SENSOR_PREFIX}{sensor}")
}

const DAY: f64 = 86_400.0;

/// Checks `[calibration]` against the written `sensors`.
pub(super) fn calibration(
    c: &mut Checker,
    raw: Option<&raw::Calibration>,
    sensors: &[Sensor],
) -> Option<CalibrationConfig> {
    let raw = raw?;
    let mut warn_before: Vec<Duration> = match &raw.warn_before {
        None => DEFAULT_WARN_BEFORE.to_vec(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let p = format!("calibration.warn_before[{i}]");
                let d = c.positive_duration(&p, Some(d), Duration::ZERO);
                (!d.is_zero()).then_some(d)
            })
            .collect(),
    };
    warn_before.sort_unstable_by(|a, b| b.cmp(a));
    warn_before.dedup();
    let written = |s: &Sensor| !s.source.is_own();
    let watched = match &raw.sensors {
        None => sensors
            .iter()
            .enumerate()
            .filter(|(_, s)| written(s) && s.quantity == "temperature")
            .map(|(i, _)| i)
            .collect(),
        Some(ids) => {
            let mut out = Vec::new();
            for (k, id) in ids.iter().enumerate() {
                match sensors.iter().position(|s| &s.id == id && written(s)) {
                    Some(i) if !out.contains(&i) => out.push(i),
                    Some(_) => c.err(
                        format!("calibration.sensors[{k}]"),
                        format!("sensor {id:?} is named twice"),
                    ),
                    None => c.err(format!("calibration.sensors[{k}]"), format!("unknown sensor {id:?}")),
                }
            }
            out
        }
    };
    Some(CalibrationConfig {
        warn_before,
        sensors: watched,
    })
}

/// Appends a calibration sensor (under the monitor's asset, `monitor_asset`) for each
/// watched sensor; `cfg.sensors` become the indices of those sensors.
pub(super) fn add_sensors(cfg: &mut CalibrationConfig, sensors: &mut Vec<Sensor>, monitor_asset: usize) {
    for si in cfg.sensors.iter_mut() {
        let watched = *si;
        sensors.push(Sensor {
            id: sensor_id(&sensors[watched].id),
            asset: monitor_asset,
            quantity: "calibration_days_left".to_string(),
            unit: "days".to_string(),
            stale_after: None,
            valid_range: None,
            states: None,
            source: SensorSource::Calibration(watched),
        });
        *si = sensors.len() - 1;
    }
}

/// Appends the rules of each calibration sensor.
pub(super) fn add_rules(cfg: &CalibrationConfig, rules: &mut Vec<Rule>, sensors: &[Sensor]) {
    for &si in &cfg.sensors {
        let SensorSource::Calibration(watched) = sensors[si].source else {
            continue;
        };
        let probe = &sensors[watched].id;
        let rule = |id: String, days: f64, severity: Severity, restage: bool, why: String| Rule {
            id,
            sensor: si,
            condition: Condition::Low {
                threshold: days,
                hysteresis: 0.0,
            },
            severity,
            delay: Duration::ZERO,
            escalation: None,
            latching: false,
            raises: true,
            power_incident: false,
            restage,
            origin: Origin::Default(why),
        };
        for (k, d) in cfg.warn_before.iter().enumerate() {
            let days = d.as_secs_f64() / DAY;
            let id = if k == 0 {
                format!("{probe}:calibration")
            } else {
                format!("{probe}:calibration-{}", humantime::format_duration(*d))
            };
            // Each later stage pages again, even when the earlier warning was acknowledged.
            rules.push(rule(
                id,
                days,
                Severity::Warning,
                k > 0,
                format!(
                    "the calibration of {probe} is due within {}",
                    humantime::format_duration(*d)
                ),
            ));
        }
        rules.push(rule(
            format!("{probe}:calibration-due"),
            0.0,
            Severity::Alarm,
            false,
            format!("the calibration of {probe} is overdue"),
        ));
    }
}

/// The monitor's asset in `assets`.
pub(super) fn monitor_asset(assets: &[Asset]) -> Option<usize> {
    assets.iter().position(|a| a.id == super::monitor::ASSET)
}
