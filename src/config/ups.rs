//! `[[ups]]`, UPSes read through NUT's upsd, and `[sensor.ups]`, a sensor's variable of
//! one of them.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::check::{Checker, Secret};
use super::raw;

/// A UPS served by NUT's upsd (`[[ups]]`).
#[derive(Debug, Clone)]
pub struct UpsDevice {
    pub id: String,
    /// upsd `host:port`.
    pub nut: String,
    /// The UPS name known to upsd.
    pub name: String,
    pub poll_interval: Duration,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct UpsPoint {
    pub ups: String,
    pub variable: String,
}

/// Checks `[[ups]]`.
pub(super) fn ups(c: &mut Checker, raw: &[raw::Ups], base: &Path) -> Vec<UpsDevice> {
    c.unique_ids("ups", raw.iter().map(|u| u.id.as_str()));
    let mut ups = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let p = format!("ups[{i}]");
        if !u.nut.contains(':') {
            c.err(
                format!("{p}.nut"),
                format!("expected host:port of upsd, found {:?}", u.nut),
            );
        }
        let poll_interval = c.positive_duration(
            &format!("{p}.poll_interval"),
            u.poll_interval.as_deref(),
            Duration::from_secs(5),
        );
        let password = c.secret(&p, "password", &u.password, &u.password_env, &u.password_file, base);
        ups.push(UpsDevice {
            id: u.id.clone(),
            nut: u.nut.clone(),
            name: u.name.clone(),
            poll_interval,
            username: u.username.clone(),
            password,
        });
    }
    ups
}

/// Checks a sensor's `[sensor.ups]` at key path `p`; `declared` holds the UPS ids.
pub(super) fn point(c: &mut Checker, p: &str, u: &raw::SensorUps, declared: &HashSet<&str>) -> UpsPoint {
    if !declared.contains(u.ups.as_str()) {
        c.err(
            format!("{p}.ups"),
            format!("unknown ups {:?}; declare it in an [[ups]]", u.ups),
        );
    }
    c.one_of(
        &format!("{p}.variable"),
        &u.variable,
        &["on_battery", "low_battery", "runtime", "charge", "input_voltage"],
    );
    UpsPoint {
        ups: u.ups.clone(),
        variable: u.variable.clone(),
    }
}
