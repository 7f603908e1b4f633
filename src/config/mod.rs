//! Configuration: load the TOML file (plus `CRYOWATCH__` environment overrides) into the
//! raw serde schema of [`raw`], then [`validate`] it into the checked types below. Nothing
//! downstream re-checks: a `Config` is always internally consistent.

pub mod monitor;
pub mod notify;
pub mod raw;
pub mod rules;
mod validate;
mod validate_alarms;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// The longest duration accepted anywhere a duration is given (configuration, `--for`,
/// relative times, the API): 1000 years (humantime years of 365.25 days). Longer ones
/// cannot be added to a time without leaving the range of dates the store, the reports
/// and the time library can represent (years up to 9999), so "keep forever" is written
/// as e.g. `"1000y"`.
pub const MAX_DURATION: Duration = Duration::from_secs(1000 * 31_557_600);

/// Parses a duration given from outside ("30s", "10m", "1000y"): humantime syntax, at
/// most [`MAX_DURATION`]. The error says what was expected and what was found.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => Err(format!(
            "duration {text:?} is too long: at most 1000 years (\"1000y\") is accepted"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "cannot parse duration {text:?} ({e}); write e.g. \"500ms\", \"30s\", \"10m\", \"2h\""
        )),
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

/// A secret resolved from inline text, an environment variable or a file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
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
    /// Sections that later stages use; parsed and checked, kept as written.
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

    /// Sensor ids with their indices, for lookups on hot paths.
    pub fn sensor_map(&self) -> HashMap<String, usize> {
        self.sensors
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub timezone: jiff::tz::TimeZone,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub flush_interval: Duration,
    pub batch_size: usize,
    /// Raw readings older than this are deleted (after being reduced, when
    /// `reduce_after` is set).
    pub retention: Duration,
    /// Raw readings older than this are reduced to per-minute min/max/mean, except
    /// during excursions.
    pub reduce_after: Option<Duration>,
    pub seal_interval: Duration,
    pub seal_grace: Duration,
}

impl StoreConfig {
    /// Ten years, the default retention of raw readings.
    pub const TEN_YEARS: Duration = Duration::from_secs(10 * 31_557_600);
}

/// `[standby]`, checked.
#[derive(Debug, Clone)]
pub struct StandbyConfig {
    pub primary_topic: String,
    pub silent_after: Duration,
    /// Contact ids.
    pub notify: Vec<String>,
}

/// `[heartbeat]`, checked.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    pub mqtt_topic: Option<String>,
    pub url: Option<String>,
    pub interval: Duration,
    /// The daily "all OK" page: time of day (site zone) and contact ids.
    pub all_ok: Option<(jiff::civil::Time, Vec<String>)>,
}

/// Timestamp precision of the points written to InfluxDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Milliseconds,
}

impl Precision {
    /// The `precision` query parameter of `/api/v2/write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "ns",
            Precision::Milliseconds => "ms",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// Base URL, without a trailing slash.
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Secret,
    pub precision: Precision,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub timeout: Duration,
    pub max_retry_interval: Duration,
    pub lag_warning: Duration,
    /// CA certificates trusted for `https://` besides the system store.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub keep_alive: Duration,
    /// `max_clock_skew`: how far ahead of the daemon's clock a reading's own time may be
    /// before it is flagged ([`Config::max_clock_skew`]).
    pub max_clock_skew: Duration,
    /// CA certificates trusted for `mqtts://` besides the system store.
    pub ca_file: Option<PathBuf>,
}

impl MqttConfig {
    pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        address: String,
    },
    Rtu {
        serial: PathBuf,
        baud: u32,
        parity: Parity,
        data_bits: u8,
        stop_bits: u8,
    },
}

/// A TCP address as devices sharing connections compare it: blanks around it and its
/// port dropped, the host in lower case (host names are case-insensitive), not resolved.
pub fn gateway_key(address: &str) -> String {
    let a = address.trim();
    match a.rsplit_once(':') {
        Some((host, port)) => format!("{}:{}", host.trim().to_ascii_lowercase(), port.trim()),
        None => a.to_ascii_lowercase(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: String,
    pub transport: Transport,
    pub unit: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// `max_connections`: at most this many connections are opened to the device's TCP
    /// address, shared by every device there (1 for RTU, where it is refused).
    pub max_connections: usize,
}

impl ModbusDevice {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1;
}

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
pub struct Asset {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub id: String,
    pub asset: usize,
    pub quantity: String,
    pub unit: String,
    pub stale_after: Option<Duration>,
    /// Values outside it are not believed: a good reading outside is stored as
    /// `sensor_fault` (`valid_range`, else a default for the quantity and unit).
    pub valid_range: Option<(f64, f64)>,
    pub source: SensorSource,
}

#[derive(Debug, Clone)]
pub enum SensorSource {
    Modbus(ModbusPoint),
    Mqtt(MqttPoint),
    Ups(UpsPoint),
    /// The monitor's own state ([`monitor`]), written by the daemon itself.
    Monitor,
    /// Refused sign-ins ([`monitor::SECURITY_SENSOR`]), written by the HTTP API.
    Security,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    Coil,
    Discrete,
    Holding,
    Input,
}

impl RegisterKind {
    /// Bit-addressed kinds (coils, discrete inputs) hold one bit per address.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    Bool,
}

impl DataType {
    /// 16-bit registers the value occupies (1 address for `bool`).
    pub fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 | DataType::Bool => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Big-endian words, big-endian bytes in each word (Modbus' usual order).
    Abcd,
    /// Word order reversed (low word first), bytes big-endian within each word.
    Cdab,
    /// Word order big-endian, bytes swapped within each word.
    Badc,
    /// Fully little-endian.
    Dcba,
}

#[derive(Debug, Clone)]
pub struct ModbusPoint {
    pub device: usize,
    pub register: RegisterKind,
    pub address: u16,
    pub data_type: DataType,
    pub byte_order: ByteOrder,
    pub scale: f64,
    pub offset: f64,
    pub fault_values: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Number,
    Json,
}

#[derive(Debug, Clone)]
pub struct MqttPoint {
    pub topic: String,
    pub format: PayloadFormat,
    pub json_path: Option<Vec<String>>,
    pub timestamp_path: Option<Vec<String>>,
    /// The sensor is a discrete state (quantity `state`): `true`/`false` are its values.
    /// For a measured quantity a boolean is no reading of it.
    pub discrete: bool,
}

#[derive(Debug, Clone)]
pub struct UpsPoint {
    pub ups: String,
    pub variable: String,
}

/// Sections checked for consistency but not yet acted on by the daemon.
#[derive(Debug, Clone)]
pub struct OtherSections {
    pub contacts: Vec<String>,
    pub escalations: Vec<String>,
    pub channels: Vec<String>,
    pub api_listen: Option<SocketAddr>,
    /// Where acknowledgement links point: `[api].public_url`, else `http://<listen>`.
    pub api_public_url: Option<String>,
    /// Bearer tokens of the HTTP API (`[[api.token]]`).
    pub api_tokens: Vec<ApiToken>,
    /// `[api].idle_timeout`: a web session unused this long has ended.
    pub api_idle_timeout: Duration,
    /// `[api].max_connections`: HTTP connections served at once.
    pub api_max_connections: usize,
}

/// Default of `[api].idle_timeout`.
pub const DEFAULT_API_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default of `[api].max_connections`.
pub const DEFAULT_API_MAX_CONNECTIONS: usize = 256;
/// Most HTTP connections `[api].max_connections` may allow.
pub const MAX_API_CONNECTIONS: u64 = 16_384;

impl Default for OtherSections {
    fn default() -> Self {
        OtherSections {
            contacts: Vec::new(),
            escalations: Vec::new(),
            channels: Vec::new(),
            api_listen: None,
            api_public_url: None,
            api_tokens: Vec::new(),
            api_idle_timeout: DEFAULT_API_IDLE_TIMEOUT,
            api_max_connections: DEFAULT_API_MAX_CONNECTIONS,
        }
    }
}

/// What an API caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read status, alarms, history.
    Viewer,
    /// Also acknowledge and shelve.
    Operator,
    /// Also manage users.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A bearer token of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub role: Role,
    pub secret: Secret,
}
