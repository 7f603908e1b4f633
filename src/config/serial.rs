//! `[[serial.device]]`, serial lines speaking a line-based text protocol (LN2 freezer
//! controllers: `004 TEMPA?\r` → `-197.10`), `[sensor.serial]`, a sensor's query on one
//! of them, and `[[serial.event]]`, unsolicited lines that become readings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use super::check::{Checker, resolve};
use super::modbus::Parity;
use super::raw;
use super::sensor::Sensor;
use super::sensor::SensorSource;

/// A serial line and how it is spoken (`[[serial.device]]`).
#[derive(Debug, Clone)]
pub struct SerialDevice {
    pub id: String,
    pub port: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    /// What ends an answer line (`"\r"`, `"\n"` or `"\r\n"`; default `"\r"`).
    pub line_ending: Vec<u8>,
    /// How long an answer may take.
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// A sensor read from a serial device: polled with a query, or fed by events only.
#[derive(Debug, Clone)]
pub struct SerialPoint {
    /// Index into [`super::Config::serial_devices`].
    pub device: usize,
    /// The device's poll interval (what `stale_after` defaults to three times of).
    pub poll_interval: Duration,
    pub query: Option<Query>,
}

/// What a polled sensor sends and how its answer is read.
#[derive(Debug, Clone)]
pub struct Query {
    /// The exact bytes sent.
    pub bytes: Vec<u8>,
    /// Its first group is the value.
    pub pattern: Regex,
    /// An answer matching one of these is `sensor_fault`.
    pub fault_patterns: Vec<Regex>,
    pub scale: f64,
    pub offset: f64,
}

/// `[[serial.event]]`: an unsolicited line matching `pattern` becomes a reading of
/// `sensor`, the value its first group's text maps to in `values`.
#[derive(Debug, Clone)]
pub struct SerialEvent {
    pub device: usize,
    pub pattern: Regex,
    /// Index into [`super::Config::sensors`].
    pub sensor: usize,
    pub values: Vec<(String, f64)>,
}

const LINE_ENDINGS: &[&str] = &["\r", "\n", "\r\n"];

/// Checks `[[serial.device]]`.
pub(super) fn devices(c: &mut Checker, raw: &[raw::SerialDevice], base: &Path) -> Vec<SerialDevice> {
    c.unique_ids("serial.device", raw.iter().map(|d| d.id.as_str()));
    raw.iter()
        .enumerate()
        .map(|(i, d)| device(c, &format!("serial.device[{i}]"), d, base))
        .collect()
}

fn device(c: &mut Checker, p: &str, d: &raw::SerialDevice, base: &Path) -> SerialDevice {
    let poll_interval = c.positive_duration(
        &format!("{p}.poll_interval"),
        d.poll_interval.as_deref(),
        Duration::from_secs(10),
    );
    let timeout = c.positive_duration(
        &format!("{p}.timeout"),
        d.timeout.as_deref(),
        Duration::from_millis(500),
    );
    if d.port.trim().is_empty() {
        c.err(format!("{p}.port"), "must name the serial port, e.g. \"/dev/ttyUSB1\"");
    }
    let (baud, parity, data_bits, stop_bits) =
        super::modbus::line_settings(c, p, (d.baud, d.parity.as_deref(), d.data_bits, d.stop_bits));
    let line_ending = match d.line_ending.as_deref() {
        None => b"\r".to_vec(),
        Some(e) if LINE_ENDINGS.contains(&e) => e.as_bytes().to_vec(),
        Some(e) => {
            c.err(
                format!("{p}.line_ending"),
                format!("expected \"\\r\", \"\\n\" or \"\\r\\n\", found {e:?}"),
            );
            b"\r".to_vec()
        }
    };
    SerialDevice {
        id: d.id.clone(),
        port: resolve(base, &d.port),
        baud,
        parity,
        data_bits,
        stop_bits,
        line_ending,
        timeout,
        poll_interval,
    }
}

/// Compiles the regular expression at `path`, which must have a first group when
/// `group` says so.
fn regex(c: &mut Checker, path: &str, text: &str, group: bool) -> Option<Regex> {
    match Regex::new(text) {
        Ok(r) if group && r.captures_len() < 2 => {
            c.err(
                path,
                format!("{text:?} has no group: its first group (…) is what is read"),
            );
            None
        }
        Ok(r) => Some(r),
        Err(e) => {
            let why = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            c.err(path, format!("not a valid regular expression ({why}): {text:?}"));
            None
        }
    }
}

/// Checks a sensor's `[sensor.serial]` at key path `p` against the checked `devices`.
pub(super) fn point(
    c: &mut Checker,
    p: &str,
    s: &raw::SensorSerial,
    devices: &[SerialDevice],
    sensor_id: &str,
) -> Option<SerialPoint> {
    let device = devices.iter().position(|d| d.id == s.device);
    if device.is_none() {
        c.err(
            format!("{p}.device"),
            format!(
                "unknown serial device {:?} (sensor {sensor_id:?}); declare it in a [[serial.device]]",
                s.device
            ),
        );
    }
    let query = match &s.query {
        None => {
            for (key, given) in [
                ("pattern", s.pattern.is_some()),
                ("fault_patterns", !s.fault_patterns.is_empty()),
                ("scale", s.scale.is_some()),
                ("offset", s.offset.is_some()),
            ] {
                if given {
                    c.err(
                        format!("{p}.{key}"),
                        "only applies to a polled sensor (one with a query); without a query the sensor is fed by [[serial.event]]",
                    );
                }
            }
            None
        }
        Some(q) => {
            if q.is_empty() {
                c.err(format!("{p}.query"), "must not be empty: it is the exact text sent");
            }
            let pattern = match &s.pattern {
                Some(t) => regex(c, &format!("{p}.pattern"), t, true),
                None => {
                    c.err(
                        format!("{p}.pattern"),
                        "missing: a polled sensor needs pattern = '<regex>' whose first group is the value",
                    );
                    None
                }
            };
            let fault_patterns: Vec<Regex> = (s.fault_patterns.iter().enumerate())
                .filter_map(|(k, t)| regex(c, &format!("{p}.fault_patterns[{k}]"), t, false))
                .collect();
            let scale = s.scale.unwrap_or(1.0);
            let offset = s.offset.unwrap_or(0.0);
            for (key, v) in [("scale", scale), ("offset", offset)] {
                if !v.is_finite() {
                    c.err(format!("{p}.{key}"), format!("must be a finite number, found {v}"));
                }
            }
            Some(Query {
                bytes: q.as_bytes().to_vec(),
                pattern: pattern?,
                fault_patterns,
                scale,
                offset,
            })
        }
    };
    let device = device?;
    Some(SerialPoint {
        device,
        poll_interval: devices[device].poll_interval,
        query,
    })
}

/// Checks `[[serial.event]]` against the checked devices and sensors: the sensor must be
/// a `[sensor.serial]` sensor of the event's device.
pub(super) fn events(
    c: &mut Checker,
    raw: &[raw::SerialEvent],
    devices: &[SerialDevice],
    sensors: &[Sensor],
) -> Vec<SerialEvent> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, e)| event(c, &format!("serial.event[{i}]"), e, devices, sensors))
        .collect()
}

fn event(
    c: &mut Checker,
    p: &str,
    e: &raw::SerialEvent,
    devices: &[SerialDevice],
    sensors: &[Sensor],
) -> Option<SerialEvent> {
    let device = devices.iter().position(|d| d.id == e.device);
    if device.is_none() {
        c.err(
            format!("{p}.device"),
            format!(
                "unknown serial device {:?}; declare it in a [[serial.device]]",
                e.device
            ),
        );
    }
    let pattern = regex(c, &format!("{p}.pattern"), &e.pattern, true);
    let sensor = match sensors.iter().position(|s| s.id == e.sensor) {
        None => {
            c.err(
                format!("{p}.sensor"),
                format!(
                    "unknown sensor {:?}; declare it in a [[sensor]] with [sensor.serial]",
                    e.sensor
                ),
            );
            None
        }
        Some(si) => match &sensors[si].source {
            SensorSource::Serial(sp) if Some(sp.device) == device => Some(si),
            SensorSource::Serial(_) => {
                c.err(
                    format!("{p}.sensor"),
                    format!(
                        "sensor {:?} reads another serial device; an event of {:?} feeds a [sensor.serial] sensor with device = {:?}",
                        e.sensor, e.device, e.device
                    ),
                );
                None
            }
            _ => {
                c.err(
                    format!("{p}.sensor"),
                    format!(
                        "sensor {:?} is not a serial sensor; give it [sensor.serial] with device = {:?}",
                        e.sensor, e.device
                    ),
                );
                None
            }
        },
    };
    if e.values.is_empty() {
        c.err(
            format!("{p}.values"),
            "must map the first group's text to a number, e.g. { START = 1, END = 0 }",
        );
    }
    let mut values = Vec::new();
    for (k, v) in &e.values {
        match v.as_f64().filter(|x| x.is_finite()) {
            Some(x) => values.push((k.clone(), x)),
            None => c.err(format!("{p}.values.{k}"), format!("must be a number, found {v}")),
        }
    }
    Some(SerialEvent {
        device: device?,
        pattern: pattern?,
        sensor: sensor?,
        values,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::rules::Condition;
    use crate::config::{Config, SensorSource};

    fn example() -> Config {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tec3000.example.toml");
        crate::config::load(&file).expect("the example is valid")
    }

    fn stale_rules(cfg: &Config, sensor: &str) -> Vec<Duration> {
        let si = cfg.sensor_index(sensor).expect("sensor");
        (cfg.rules.iter())
            .filter(|r| r.sensor == si)
            .filter_map(|r| match r.condition {
                Condition::Stale { after } => Some(after),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn polled_sensors_go_stale_after_three_poll_intervals_and_event_sensors_not_by_default() {
        let cfg = example();
        // poll_interval 10s: three of them, at least 30 s.
        assert_eq!(stale_rules(&cfg, "freezer-1.temp"), [Duration::from_secs(30)]);
        assert!(stale_rules(&cfg, "freezer-4.filling").is_empty());
    }

    #[test]
    fn queries_are_sent_as_written_and_events_map_to_their_sensor() {
        let cfg = example();
        let d = &cfg.serial_devices[0];
        assert_eq!(
            (d.line_ending.as_slice(), d.timeout),
            (&b"\r"[..], Duration::from_millis(500))
        );
        let si = cfg.sensor_index("freezer-4.temp").expect("sensor");
        let SensorSource::Serial(p) = &cfg.sensors[si].source else {
            panic!("freezer-4.temp is a serial sensor")
        };
        let q = p.query.as_ref().expect("a polled sensor");
        assert_eq!(q.bytes, b"004 TEMPA?\r");
        let e = &cfg.serial_events[0];
        assert_eq!(cfg.sensors[e.sensor].id, "freezer-4.filling");
        let mut values = e.values.clone();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(values, [("END".to_string(), 0.0), ("START".to_string(), 1.0)]);
    }
}
