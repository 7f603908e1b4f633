//! What a discrete sensor's two values mean to a person. The store keeps 0 and 1; people
//! read `closed` / `OPEN`, `on mains` / `ON BATTERY`. A sensor names them with
//! `states = ["<name of 0>", "<name of 1>"]`; without it the names follow from what the
//! sensor is (the last part of its id, then its unit): a lid, door or valve, mains and
//! battery, a generator, a transfer switch, a compressor, an alarm contact; else
//! `off` / `ON`. By convention the state that needs attention is in capitals.

use super::check::Checker;
use super::modbus::DataType;
use super::raw;
use super::{Config, Sensor, SensorSource};

/// Whether a sensor reads a discrete state: quantity `state`, a Modbus bit or `bool`,
/// or a UPS flag.
pub(super) fn is_discrete(quantity: &str, source: &SensorSource) -> bool {
    quantity == "state"
        || match source {
            SensorSource::Modbus(m) => m.register.is_bit() || m.data_type == DataType::Bool,
            SensorSource::Ups(u) => matches!(u.variable.as_str(), "on_battery" | "low_battery"),
            _ => false,
        }
}

/// Checks `states` of the sensor at key path `p`; the names of a discrete sensor's two
/// values (given, else derived), `None` for a measurement.
pub(super) fn states(c: &mut Checker, p: &str, s: &raw::Sensor, discrete: bool) -> Option<[String; 2]> {
    let path = format!("{p}.states");
    match (&s.states, discrete) {
        (Some(_), false) => {
            c.err(
                path,
                "names the two values of a discrete sensor (quantity = \"state\", a coil, a discrete input or type \"bool\"); this sensor measures",
            );
            None
        }
        (Some(names), true) => match names.as_slice() {
            [off, on] if !off.trim().is_empty() && !on.trim().is_empty() && off != on => {
                c.printable(&path, off);
                c.printable(&path, on);
                Some([off.clone(), on.clone()])
            }
            _ => {
                c.err(
                    path,
                    format!("expected two different names, [\"<name of 0>\", \"<name of 1>\"], found {names:?}"),
                );
                None
            }
        },
        (None, true) => {
            let [off, on] = default_names(&s.id, s.unit.as_deref().unwrap_or(""));
            Some([off.to_string(), on.to_string()])
        }
        (None, false) => None,
    }
}

/// The names of 0 and 1 for a sensor with `id` and `unit` that names none.
pub fn default_names(id: &str, unit: &str) -> [&'static str; 2] {
    let last = id.rsplit(['.', '/']).next().unwrap_or(id).to_lowercase();
    let unit = unit.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| last.contains(w));
    if has(&["lid", "door", "hatch", "cover"]) {
        ["closed", "OPEN"]
    } else if has(&["valve"]) {
        ["closed", "open"]
    } else if has(&["low_battery", "battery_low", "lowbatt"]) {
        ["battery ok", "BATTERY LOW"]
    } else if has(&["on_battery", "onbatt", "battery"]) {
        ["on mains", "ON BATTERY"]
    } else if last == "ats" || last.starts_with("ats_") || has(&["_ats", "transfer", "on_generator"]) {
        ["on mains", "on generator"]
    } else if has(&["mains", "power", "utility"]) {
        ["MAINS LOST", "on mains"]
    } else if has(&["generator", "genset"]) {
        ["stopped", "running"]
    } else if has(&["compressor", "fan", "pump", "running"]) {
        ["STOPPED", "running"]
    } else if has(&["alarm", "fault", "leak", "flood"]) {
        ["ok", "ALARM"]
    } else {
        match unit.as_str() {
            "open" => ["closed", "OPEN"],
            "on_battery" => ["on mains", "ON BATTERY"],
            "running" => ["stopped", "running"],
            _ => ["off", "ON"],
        }
    }
}

/// The name of `value` among a discrete sensor's `states`: 0 is its first state,
/// anything else its second.
pub fn name_of(states: &[String; 2], value: f64) -> &str {
    let [off, on] = states;
    if value == 0.0 { off } else { on }
}

impl Sensor {
    /// The name of `value` for a discrete sensor (see [`name_of`]); `None` for a
    /// measurement.
    pub fn state_name(&self, value: f64) -> Option<&str> {
        Some(name_of(self.states.as_ref()?, value))
    }

    /// `value` as a person reads it: a discrete sensor's state name, else the number
    /// with the sensor's unit.
    pub fn describe(&self, value: Option<f64>) -> String {
        match value {
            None => "no value".to_string(),
            Some(v) => match self.state_name(v) {
                Some(name) => name.to_string(),
                None => format!("{v:.1} {}", self.unit).trim_end().to_string(),
            },
        }
    }
}

impl Config {
    /// [`Sensor::describe`] of the sensor `id`; the bare number for an unknown sensor.
    pub fn describe_value(&self, id: &str, value: Option<f64>) -> String {
        match self.sensors.iter().find(|s| s.id == id) {
            Some(s) => s.describe(value),
            None => value.map_or_else(|| "no value".to_string(), |v| format!("{v:.1}")),
        }
    }

    /// The state name of `value` for the sensor `id`, when it is discrete.
    pub fn state_name(&self, id: &str, value: f64) -> Option<&str> {
        self.sensors.iter().find(|s| s.id == id)?.state_name(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_what_the_sensor_is() {
        assert_eq!(default_names("dewar-1.lid", "open"), ["closed", "OPEN"]);
        assert_eq!(default_names("freezer-7.door", ""), ["closed", "OPEN"]);
        assert_eq!(
            default_names("ups-1.on_battery", "on_battery"),
            ["on mains", "ON BATTERY"]
        );
        assert_eq!(default_names("ups-1.low_battery", ""), ["battery ok", "BATTERY LOW"]);
        assert_eq!(default_names("ups-1.generator", "running"), ["stopped", "running"]);
        assert_eq!(
            default_names("ups-1.ats_on_generator", ""),
            ["on mains", "on generator"]
        );
        assert_eq!(default_names("freezer-7.compressor", "running"), ["STOPPED", "running"]);
        assert_eq!(default_names("room.mains_ok", ""), ["MAINS LOST", "on mains"]);
        assert_eq!(default_names("dewar-1.fill_valve", "open"), ["closed", "open"]);
        assert_eq!(default_names("x.contact", "open"), ["closed", "OPEN"]);
        assert_eq!(default_names("x.relay", ""), ["off", "ON"]);
    }
}
