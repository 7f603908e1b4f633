//! Configuration: load the TOML file (plus `CRYOWATCH__` environment overrides) into the
//! raw serde schema of [`raw`], then [`validate`] it into the checked types. Nothing
//! downstream re-checks: a `Config` is always internally consistent.
//!
//! One file per section: each turns its raw section into its checked types with one
//! function that records every problem with its key path (the shared `Checker`
//! and helpers are in `check`), and `validate` calls them in order and assembles the
//! [`Config`]. Secrets are resolved there, once; the checked types carry them.

pub mod access;
mod alarm_check;
mod api;
pub mod calibration;
mod channel;
mod check;
mod every;
mod heartbeat;
mod influx;
mod maintenance;
mod modbus;
pub mod monitor;
mod mqtt;
pub mod notify;
pub mod output;
mod parse;
mod quality;
pub mod raw;
pub mod rules;
mod sensor;
pub mod serial;
mod site;
pub mod states;
mod store;
mod trend;
mod ups;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use alarm_check::{AlarmCheckConfig, CheckSchedule, CheckedRule, checked_rules};
pub use api::{
    ApiToken, DEFAULT_API_IDLE_TIMEOUT, DEFAULT_API_MAX_CONNECTIONS, MAX_API_CONNECTIONS, OtherSections, Role,
};
pub use check::{MAX_DURATION, Secret, parse_duration};
pub use heartbeat::{HeartbeatConfig, StandbyConfig};
pub use influx::{InfluxConfig, Precision};
pub use modbus::{ByteOrder, DataType, ModbusDevice, ModbusPoint, Parity, RegisterKind, Transport, gateway_key};
pub use mqtt::{MqttConfig, MqttPoint, PayloadFormat};
pub use output::{Output, OutputTarget, When};
pub use parse::{load, load_for_reading, load_raw};
pub use quality::{QualityConfig, Reason, Review};
pub use sensor::{Asset, Sensor, SensorSource};
pub use serial::{Query, SerialDevice, SerialEvent, SerialPoint};
pub use site::SiteConfig;
pub use store::StoreConfig;
pub use ups::{UpsDevice, UpsPoint};
pub use validate::{Secrets, validate, validate_with};

/// One problem found in a configuration, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, array items by index: `sensor[2].modbus.type`. Empty when the
    /// problem concerns the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be used: every problem, each on its own line,
/// prefixed by the file it came from.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.file.display(), p)?;
        }
        Ok(())
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub store: StoreConfig,
    /// The optional InfluxDB v2 mirror.
    pub influx: Option<InfluxConfig>,
    /// Signs of life of the daemon itself.
    pub heartbeat: Option<HeartbeatConfig>,
    /// What `cryowatch standby` watches.
    pub standby: Option<StandbyConfig>,
    pub mqtt: Option<MqttConfig>,
    pub devices: Vec<ModbusDevice>,
    /// `[[serial.device]]`: lines speaking a text protocol.
    pub serial_devices: Vec<SerialDevice>,
    /// `[[serial.event]]`: unsolicited lines that become readings.
    pub serial_events: Vec<SerialEvent>,
    /// UPSes read through NUT's upsd.
    pub ups: Vec<UpsDevice>,
    pub assets: Vec<Asset>,
    pub sensors: Vec<Sensor>,
    /// Written rules that are enabled, then the defaults they leave in place.
    pub rules: Vec<rules::Rule>,
    pub maintenance: Vec<rules::Maintenance>,
    /// Scheduled test pages.
    pub test_pages: Vec<rules::TestSchedule>,
    /// Contacts, groups, schedules, escalations, routes, channels.
    pub notify: notify::NotifyConfig,
    /// `[api]`: the HTTP API's address, limits and tokens.
    pub sections: OtherSections,
    /// `[[reason]]`: reason codes for corrective actions.
    pub reasons: Vec<Reason>,
    /// `[quality]`: reminders of open deviations.
    pub quality: QualityConfig,
    /// `[calibration]`: the probes whose calibration is watched.
    pub calibration: Option<calibration::CalibrationConfig>,
    /// `[alarm_check]`: the tolerance and longest duration of physical alarm checks.
    pub alarm_check: AlarmCheckConfig,
    /// `[[output]]`: beacons and sirens on Modbus coils or registers, driven by the open alarms.
    pub outputs: Vec<Output>,
}

impl Config {
    /// How far ahead of the clock a reading may be stamped and still be a sensor's
    /// latest value: `mqtt.max_clock_skew` (only MQTT readings carry their own time).
    pub fn max_clock_skew(&self) -> Duration {
        self.mqtt
            .as_ref()
            .map_or(MqttConfig::DEFAULT_MAX_CLOCK_SKEW, |m| m.max_clock_skew)
    }

    /// The newest time a reading may have and still be a sensor's latest value at `now`.
    pub fn latest_bound(&self, now: crate::model::TimestampMs) -> crate::model::TimestampMs {
        crate::model::later(now, self.max_clock_skew())
    }

    pub fn sensor_index(&self, id: &str) -> Option<usize> {
        self.sensors.iter().position(|s| s.id == id)
    }
}
