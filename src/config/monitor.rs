//! The monitor's own sensor: `cryowatch.record`, the integrity of the record, under the
//! built-in asset `cryowatch`. The daemon verifies its own record continuously
//! ([`crate::store::audit::watch`]) and stores the outcome as readings of this sensor (0 = the
//! record verifies, 1 = it does not), so a broken record raises the critical, latching
//! alarm `cryowatch.record:integrity` and is paged through the normal routes and
//! escalations like any other alarm. A written `[[rule]]` with that id replaces the
//! built-in one (to give it its own escalation, say).
//!
//! With an HTTP API the same asset has `cryowatch.security`: refused sign-ins (wrong
//! password, throttled or locked out) in the last [`SECURITY_WINDOW`], written by the
//! HTTP API. Past
//! [`SECURITY_THRESHOLD`] the warning `cryowatch.security:sign-ins` is raised and paged:
//! attempts at unauthorised use are detected and reported (21 CFR 11.300(d)).

use std::collections::HashSet;
use std::time::Duration;

use super::check::Checker;
use super::rules::{Condition, Origin, Rule, Severity};
use super::sensor::{Asset, Sensor, SensorSource};

/// The built-in asset: the monitor itself.
pub const ASSET: &str = "cryowatch";
/// The record-integrity sensor.
pub const RECORD_SENSOR: &str = "cryowatch.record";
/// Its alarm rule.
pub const RECORD_RULE: &str = "cryowatch.record:integrity";
/// The value of a reading of [`RECORD_SENSOR`] when verification failed.
pub const RECORD_BROKEN: f64 = 1.0;
/// The sign-in sensor: refused sign-ins in the last [`SECURITY_WINDOW`].
pub const SECURITY_SENSOR: &str = "cryowatch.security";
/// Its alarm rule.
pub const SECURITY_RULE: &str = "cryowatch.security:sign-ins";
/// The window [`SECURITY_SENSOR`] counts refused sign-ins over.
pub const SECURITY_WINDOW: Duration = Duration::from_secs(600);
/// More refused sign-ins than this in the window raise [`SECURITY_RULE`].
pub const SECURITY_THRESHOLD: f64 = 20.0;

/// Refuses written ids that the built-in asset and sensor use.
pub(super) fn check_reserved<'a>(
    c: &mut Checker,
    assets: impl Iterator<Item = &'a str>,
    sensors: impl Iterator<Item = &'a str>,
) {
    for (i, id) in assets.enumerate() {
        if id == ASSET {
            c.err(
                format!("asset[{i}].id"),
                format!("{ASSET:?} is the monitor's own asset (its record-integrity sensor); choose another id"),
            );
        }
    }
    for (i, id) in sensors.enumerate() {
        if id == RECORD_SENSOR || id.starts_with("cryowatch.") {
            c.err(
                format!("sensor[{i}].id"),
                format!(
                    "sensor ids starting with \"cryowatch.\" are the monitor's own ({RECORD_SENSOR}); choose another id"
                ),
            );
        }
    }
}

/// Appends the built-in asset and sensors (after everything written, so written indices
/// do not move); the sign-in watch only with an HTTP API (`api`), the one place sign-ins
/// are refused.
pub(super) fn add_sensor(assets: &mut Vec<Asset>, sensors: &mut Vec<Sensor>, api: bool) {
    assets.push(Asset {
        id: ASSET.to_string(),
        name: "cryowatch (this monitor)".to_string(),
        kind: "monitor".to_string(),
        location: String::new(),
    });
    sensors.push(Sensor {
        id: RECORD_SENSOR.to_string(),
        asset: assets.len() - 1,
        quantity: "record_integrity".to_string(),
        unit: String::new(),
        stale_after: None,
        valid_range: None,
        states: None,
        source: SensorSource::Monitor,
    });
    if !api {
        return;
    }
    sensors.push(Sensor {
        id: SECURITY_SENSOR.to_string(),
        asset: assets.len() - 1,
        quantity: "refused_sign_ins".to_string(),
        unit: "refused sign-ins in 10 min".to_string(),
        stale_after: None,
        valid_range: None,
        states: None,
        source: SensorSource::Security,
    });
}

/// Appends the built-in integrity and sign-in rules unless written rules took their ids.
pub(super) fn add_rule(rules: &mut Vec<Rule>, sensors: &[Sensor]) {
    let ids: HashSet<String> = rules.iter().map(|r| r.id.clone()).collect();
    if let Some(sensor) = sensors.iter().position(|s| s.id == SECURITY_SENSOR)
        && !ids.contains(SECURITY_RULE)
    {
        rules.push(Rule {
            id: SECURITY_RULE.to_string(),
            sensor,
            condition: Condition::High {
                threshold: SECURITY_THRESHOLD,
                hysteresis: SECURITY_THRESHOLD / 2.0,
            },
            severity: Severity::Warning,
            delay: Duration::ZERO,
            escalation: None,
            latching: false,
            raises: true,
            power_incident: false,
            restage: false,
            origin: Origin::Default(format!(
                "more than {SECURITY_THRESHOLD} refused sign-ins in {} are attempts at unauthorised use",
                humantime::format_duration(SECURITY_WINDOW)
            )),
        });
    }
    let Some(sensor) = sensors.iter().position(|s| s.id == RECORD_SENSOR) else {
        return;
    };
    if ids.contains(RECORD_RULE) {
        return;
    }
    rules.push(Rule {
        id: RECORD_RULE.to_string(),
        sensor,
        condition: Condition::State { equals: RECORD_BROKEN },
        severity: Severity::Critical,
        delay: Duration::ZERO,
        escalation: None,
        latching: true,
        raises: true,
        power_incident: false,
        restage: false,
        origin: Origin::Default("the monitor verifies its own record".to_string()),
    });
}
