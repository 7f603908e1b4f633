//! `cryowatch check --explain`: what the daemon will do with a configuration: what it
//! polls and how each value is decoded, the rules in effect, and (`paging`) whom it
//! pages, how, and whom each TLS peer trusts. A default the file does not write is
//! marked `(default)`.

mod paging;

use std::fmt::Write;

use crate::config::rules::{Condition, Origin, stale_after};
use crate::config::{ByteOrder, Config, ModbusPoint, Sensor, SensorSource, Transport};
use crate::sources::modbus::plan;

/// The explanation of `cfg`, at `now` (for who is on call).
pub fn explain(cfg: &Config) -> String {
    explain_at(cfg, jiff::Timestamp::now())
}

/// [`explain`] with who is on call at `now`.
pub fn explain_at(cfg: &Config, now: jiff::Timestamp) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "site {:?}, time zone {}, store {}",
        cfg.site.name,
        cfg.site.timezone.iana_name().unwrap_or("UTC"),
        cfg.store.path.display()
    );
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
            for (si, p) in &b.points {
                let _ = writeln!(s, "    {}: {}", cfg.sensors[*si].id, decoding(p));
            }
        }
    }
    serial(cfg, &mut s);
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
    for u in &cfg.ups {
        let _ = writeln!(
            s,
            "ups (NUT) {} = {} at {} every {}{}:",
            u.id,
            u.name,
            u.nut,
            dur(u.poll_interval),
            if u.username.is_some() { ", logged in" } else { "" }
        );
        for sensor in &cfg.sensors {
            if let SensorSource::Ups(p) = &sensor.source
                && p.ups == u.id
            {
                let _ = writeln!(s, "  {} <- {}", sensor.id, p.variable);
            }
        }
    }
    staleness(cfg, &mut s);
    rules(cfg, &mut s);
    paging::paging(cfg, now, &mut s);
    s
}

fn dur(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// How a Modbus point's registers become a value.
fn decoding(p: &ModbusPoint) -> String {
    let order = match p.byte_order {
        ByteOrder::Abcd => "ABCD",
        ByteOrder::Cdab => "CDAB",
        ByteOrder::Badc => "BADC",
        ByteOrder::Dcba => "DCBA",
    };
    let mut text = format!("{:?}", p.data_type).to_lowercase();
    if p.data_type != crate::config::DataType::Bool {
        let _ = write!(text, " byte order {order}");
    }
    let _ = write!(text, ", value = raw * {} + {}", p.scale, p.offset);
    if p.scale == 1.0 && p.offset == 0.0 {
        text.push_str(" (default scale 1, offset 0)");
    }
    if p.fault_values.is_empty() {
        text.push_str(", no fault values");
    } else {
        let v: Vec<String> = p.fault_values.iter().map(f64::to_string).collect();
        let _ = write!(text, ", fault values {} (read as sensor_fault)", v.join(", "));
    }
    text
}

/// Each serial device: its line, then each sensor's query and pattern in the order
/// they are asked, then the event patterns.
fn serial(cfg: &Config, s: &mut String) {
    for (i, d) in cfg.serial_devices.iter().enumerate() {
        let _ = writeln!(
            s,
            "serial device {} ({} @{}, lines end {:?}) every {:?}, timeout {:?} per answer:",
            d.id,
            d.port.display(),
            d.baud,
            String::from_utf8_lossy(&d.line_ending),
            d.poll_interval,
            d.timeout
        );
        for sensor in &cfg.sensors {
            let SensorSource::Serial(p) = &sensor.source else {
                continue;
            };
            let Some(q) = p.query.as_ref().filter(|_| p.device == i) else {
                continue;
            };
            let _ = writeln!(
                s,
                "  ask {:?} -> {}: first group of '{}' * {} + {}; sensor_fault on {}",
                String::from_utf8_lossy(&q.bytes),
                sensor.id,
                q.pattern.as_str(),
                q.scale,
                q.offset,
                match q.fault_patterns.len() {
                    0 => "nothing".to_string(),
                    _ => q
                        .fault_patterns
                        .iter()
                        .map(|f| format!("'{}'", f.as_str()))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            );
        }
        for e in cfg.serial_events.iter().filter(|e| e.device == i) {
            let values: Vec<String> = e.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(
                s,
                "  event '{}' -> {} ({})",
                e.pattern.as_str(),
                cfg.sensors.get(e.sensor).map_or("?", |x| x.id.as_str()),
                values.join(", ")
            );
        }
    }
}

/// When each sensor goes stale, and whether that is its own `stale_after` or a default.
fn staleness(cfg: &Config, s: &mut String) {
    let polled: Vec<&Sensor> = cfg.sensors.iter().filter(|x| !x.source.is_own()).collect();
    if polled.is_empty() {
        return;
    }
    let _ = writeln!(s, "stale after (no good reading for):");
    for sensor in polled {
        if matches!(&sensor.source, SensorSource::Serial(p) if p.query.is_none()) && sensor.stale_after.is_none() {
            let _ = writeln!(s, "  {} never by default (fed by events only)", sensor.id);
            continue;
        }
        let after = dur(stale_after(sensor, &cfg.devices, &cfg.ups));
        let why = match (&sensor.stale_after, &sensor.source) {
            (Some(_), _) => String::new(),
            (None, SensorSource::Mqtt(_)) => " (default for pushed data)".into(),
            (None, _) => " (default: 3 poll intervals, at least 30s)".into(),
        };
        let _ = writeln!(s, "  {} {after}{why}", sensor.id);
    }
}

/// The effective rules: written ones and the defaults left in place.
fn rules(cfg: &Config, s: &mut String) {
    let _ = writeln!(s, "rules ({}):", cfg.rules.len());
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
            Condition::Forecast {
                threshold,
                rising,
                window,
                horizon,
            } => format!(
                "{} {} to {threshold} {} within {} (a line through the last {})",
                sensor.id,
                if *rising { "rising" } else { "falling" },
                sensor.unit,
                dur(*horizon),
                dur(*window)
            ),
            Condition::NoEvent { equals, within } => {
                format!("{} not = {equals} for {}", sensor.id, dur(*within))
            }
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
