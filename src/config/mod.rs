//! Configuration: load the TOML file (plus `CRYOWATCH__` environment overrides) into the
//! raw serde schema of [`raw`], then [`validate`] it into the checked types. Nothing
//! downstream re-checks: a `Config` is always internally consistent.
//!
//! One file per section: each turns its raw section into its checked types with one
//! function that records every problem with its key path (the shared `Checker`
//! and helpers are in `check`), and `validate` calls them in order and assembles the
//! [`Config`]. Secrets are resolved there, once; the checked types carry them.

mod api;
mod channel;
mod check;
mod heartbeat;
mod influx;
mod maintenance;
mod modbus;
pub mod monitor;
mod mqtt;
pub mod notify;
pub mod raw;
pub mod rules;
mod sensor;
mod site;
pub mod states;
mod store;
mod ups;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use api::{
    ApiToken, DEFAULT_API_IDLE_TIMEOUT, DEFAULT_API_MAX_CONNECTIONS, MAX_API_CONNECTIONS, OtherSections, Role,
};
pub use check::{MAX_DURATION, Secret, parse_duration};
pub use heartbeat::{HeartbeatConfig, StandbyConfig};
pub use influx::{InfluxConfig, Precision};
pub use modbus::{ByteOrder, DataType, ModbusDevice, ModbusPoint, Parity, RegisterKind, Transport, gateway_key};
pub use mqtt::{MqttConfig, MqttPoint, PayloadFormat};
pub use sensor::{Asset, Sensor, SensorSource};
pub use site::SiteConfig;
pub use store::StoreConfig;
pub use ups::{UpsDevice, UpsPoint};
pub use validate::validate;

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

/// Reads `file`, applies `CRYOWATCH__SECTION__KEY` environment overrides, and validates.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let raw = load_raw(file)?;
    let base = file.parent().unwrap_or(Path::new("."));
    validate(&raw, base).map_err(|problems| ConfigError {
        file: file.to_path_buf(),
        problems,
    })
}

/// Reads and parses without semantic checks. Syntax errors, unknown keys and wrong
/// TOML types are reported here.
pub fn load_raw(file: &Path) -> Result<raw::RawConfig, ConfigError> {
    let fail = |problem: Problem| ConfigError {
        file: file.to_path_buf(),
        problems: vec![problem],
    };
    if !file.is_file() {
        return Err(fail(Problem {
            path: String::new(),
            message: "cannot read the configuration file: it does not exist or is not a file".into(),
        }));
    }
    let built = config::Config::builder()
        .add_source(config::File::from(file).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("CRYOWATCH")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(|e| fail(clean_config_error(&e.to_string(), file)))?;
    built
        .try_deserialize::<raw::RawConfig>()
        .map_err(|e| fail(clean_config_error(&e.to_string(), file)))
}

/// Rewrites a `config` crate message into our `key.path: message` form on one line.
fn clean_config_error(message: &str, file: &Path) -> Problem {
    // Multi-line TOML syntax errors: keep the position line and the explanation.
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut text = if lines.len() > 1 {
        let last = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with('|') && !l.starts_with("in ") && !l.starts_with(|c: char| c.is_ascii_digit()));
        format!("{}: {}", lines[0], last.copied().unwrap_or(""))
    } else {
        message.to_string()
    };
    // The crate appends " in <file>"; the file is printed in front of every problem.
    if let Some(i) = text.rfind(" in ")
        && (text[i + 4..].contains(&*file.display().to_string())
            || file
                .file_name()
                .is_some_and(|n| text[i + 4..].ends_with(&*n.to_string_lossy())))
    {
        text.truncate(i);
    }
    let text = text.replace(" in :", ":").trim_end().to_string();
    // "... for key `sensor[0]modbus`" names the path: move it to the front.
    let (msg, key) = text.rsplit_once(" for key `").unwrap_or((&text, ""));
    let mut path = String::new();
    let key = key.trim_end_matches('`');
    let mut prev = ' ';
    for ch in key.chars() {
        if prev == ']' && ch != '.' && ch != '[' {
            path.push('.');
        }
        path.push(ch);
        prev = ch;
    }
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, ")
    {
        let full = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return Problem {
            path: full,
            message: format!("unknown key; {expected}"),
        };
    }
    Problem {
        path,
        message: msg.to_string(),
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
