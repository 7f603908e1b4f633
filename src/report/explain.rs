//! `cryowatch check --explain`: what the daemon will do with a configuration.

use std::fmt::Write;

use crate::config::rules::{Condition, Origin};
use crate::config::{Config, SensorSource, Transport};
use crate::sources::modbus::plan;

pub fn explain(cfg: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "site {:?}, store {}", cfg.site.name, cfg.store.path.display());
    for (i, d) in cfg.devices.iter().enumerate() {
        let points: Vec<_> = cfg
            .sensors
            .iter()
            .enumerate()
            .filter_map(|(si, sensor)| match &sensor.source {
                SensorSource::Modbus(p) if p.device == i => Some((si, p.clone())),
                _ => None,
            })
            .collect();
        let at = match &d.transport {
            Transport::Tcp { address } => format!("tcp {address}"),
            Transport::Rtu { serial, baud, .. } => format!("rtu {} @{baud}", serial.display()),
        };
        let _ = writeln!(
            s,
            "modbus device {} ({at}, unit {}) every {:?}, timeout {:?}:",
            d.id, d.unit, d.poll_interval, d.timeout
        );
        for b in plan::plan(&points) {
            let ids: Vec<&str> = b.points.iter().map(|(si, _)| cfg.sensors[*si].id.as_str()).collect();
            let _ = writeln!(
                s,
                "  read {} {}..{} ({} {}) -> {}",
                b.kind.as_str(),
                b.start,
                u32::from(b.start) + u32::from(b.count) - 1,
                b.count,
                if b.kind.is_bit() { "bits" } else { "registers" },
                ids.join(", ")
            );
        }
    }
    if let Some(m) = &cfg.mqtt {
        let _ = writeln!(
            s,
            "mqtt {}:{} as client {:?} (persistent session, QoS 1):",
            m.host, m.port, m.client_id
        );
        for sensor in &cfg.sensors {
            if let SensorSource::Mqtt(p) = &sensor.source {
                let path = p
                    .json_path
                    .as_ref()
                    .map(|j| format!(" json {}", j.join(".")))
                    .unwrap_or_default();
                let _ = writeln!(s, "  {} <- {}{path}", sensor.id, p.topic);
            }
        }
    }
    for sensor in &cfg.sensors {
        if let SensorSource::Ups(u) = &sensor.source {
            let _ = writeln!(
                s,
                "  {} <- ups {} {} (read by the UPS source)",
                sensor.id, u.ups, u.variable
            );
        }
    }
    rules(cfg, &mut s);
    s
}

/// The effective rules: written ones and the defaults left in place.
fn rules(cfg: &Config, s: &mut String) {
    let _ = writeln!(s, "rules ({}):", cfg.rules.len());
    let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
    for r in &cfg.rules {
        let sensor = &cfg.sensors[r.sensor];
        let name = |i: &usize| cfg.rules[*i].id.as_str();
        let what = match &r.condition {
            Condition::High { threshold, hysteresis } => {
                format!(
                    "{} > {threshold} {} (clears <= {})",
                    sensor.id,
                    sensor.unit,
                    threshold - hysteresis
                )
            }
            Condition::Low { threshold, hysteresis } => {
                format!(
                    "{} < {threshold} {} (clears >= {})",
                    sensor.id,
                    sensor.unit,
                    threshold + hysteresis
                )
            }
            Condition::Rate {
                per_minute,
                window,
                rising,
                ..
            } => format!(
                "{} {} faster than {per_minute} {}/min over {}",
                sensor.id,
                if *rising { "rising" } else { "falling" },
                sensor.unit,
                dur(*window)
            ),
            Condition::Stale { after } => format!("{} has no good reading for {}", sensor.id, dur(*after)),
            Condition::Fault => format!("{} reports a probe fault", sensor.id),
            Condition::State { equals } => format!("{} = {equals}", sensor.id),
            Condition::All(ch) => format!("all of [{}]", ch.iter().map(name).collect::<Vec<_>>().join(", ")),
            Condition::Any(ch) => format!("any of [{}]", ch.iter().map(name).collect::<Vec<_>>().join(", ")),
        };
        let mut flags = Vec::new();
        if !r.delay.is_zero() {
            flags.push(format!("for {}", dur(r.delay)));
        }
        if r.latching {
            flags.push("latching".into());
        }
        if !r.raises {
            flags.push("condition only".into());
        }
        if r.power_incident {
            flags.push("opens a power incident".into());
        }
        if let Some(e) = &r.escalation {
            flags.push(format!("escalation {e}"));
        }
        let origin = match &r.origin {
            Origin::Written(i) => format!("rule[{i}]"),
            Origin::Default(why) => format!("default: {why}"),
        };
        let _ = writeln!(
            s,
            "  {} [{}] {what}{}{} ({origin})",
            r.id,
            r.severity,
            if flags.is_empty() { "" } else { "; " },
            flags.join(", ")
        );
    }
    for m in &cfg.maintenance {
        let sensors: Vec<&str> = m.sensors.iter().map(|&i| cfg.sensors[i].id.as_str()).collect();
        let _ = writeln!(
            s,
            "maintenance {} {:?} suppresses {}",
            m.id,
            m.window,
            sensors.join(", ")
        );
    }
}
