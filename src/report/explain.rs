//! `cryowatch check --explain`: what the daemon will do with a configuration.

use std::fmt::Write;

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
    s
}
