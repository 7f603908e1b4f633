//! The configuration file as written: serde structs, one per section, that refuse
//! unknown keys. Nothing here is checked beyond its TOML type; `validate` does that.
//!
//! Durations stay strings here so that a bad one is reported with its key path by
//! `validate`, together with every other problem, instead of aborting the parse.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub site: Option<Site>,
    pub store: Option<Store>,
    pub influx: Option<Influx>,
    pub mqtt: Option<Mqtt>,
    pub heartbeat: Option<Heartbeat>,
    pub standby: Option<Standby>,
    pub api: Option<Api>,
    pub modbus: Option<Modbus>,
    pub serial: Option<Serial>,
    #[serde(default)]
    pub ups: Vec<Ups>,
    #[serde(default)]
    pub asset: Vec<Asset>,
    #[serde(default)]
    pub sensor: Vec<Sensor>,
    #[serde(default)]
    pub rule: Vec<Rule>,
    #[serde(default)]
    pub maintenance: Vec<Maintenance>,
    #[serde(default)]
    pub contact: Vec<Contact>,
    #[serde(default)]
    pub schedule: Vec<Schedule>,
    #[serde(default)]
    pub escalation: Vec<Escalation>,
    #[serde(default)]
    pub route: Vec<Route>,
    #[serde(default)]
    pub group: Vec<Group>,
    #[serde(default)]
    pub test_page: Vec<TestPage>,
    #[serde(default)]
    pub channel: Vec<Channel>,
    #[serde(default)]
    pub reason: Vec<Reason>,
    pub quality: Option<Quality>,
    #[serde(default)]
    pub review: Vec<Review>,
    pub calibration: Option<Calibration>,
    pub alarm_check: Option<AlarmCheck>,
    #[serde(default)]
    pub alarm_check_schedule: Vec<AlarmCheckSchedule>,
    #[serde(default)]
    pub output: Vec<Output>,
}

/// `[[output]]`: a beacon or siren driven through a coil or holding register of a
/// `[[modbus.device]]`, on while an open alarm matches `when`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub id: String,
    pub device: String,
    pub coil: Option<u16>,
    pub register: Option<u16>,
    pub when: String,
    #[serde(default)]
    pub fail_safe: bool,
}

/// `[[alarm_check_schedule]]`: how often the assets' probes need a physical alarm check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmCheckSchedule {
    pub assets: Vec<String>,
    pub every: String,
}

/// `[alarm_check]`: physical alarm checks against a reference thermometer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmCheck {
    pub tolerance: Option<f64>,
    pub max_duration: Option<String>,
}

/// `[quality]`: reminders of open deviations, and what counts as a nuisance alarm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    #[serde(default)]
    pub notify: Vec<String>,
    pub close_within: Option<String>,
    pub nuisance_within: Option<String>,
}

/// `[[review]]`: a periodic review and sign-off of assets' reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub assets: Vec<String>,
    pub every: String,
    pub reviewers: Vec<String>,
    pub due_within: Option<String>,
}

/// `[[reason]]`: a reason code for corrective actions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: String,
    pub text: String,
    pub requires_comment: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub path: String,
    /// Longest time a received reading waits in memory before it is committed.
    pub flush_interval: Option<String>,
    /// Most readings committed in one transaction.
    pub batch_size: Option<usize>,
    /// How long raw readings are kept (default 10 years).
    pub retention: Option<String>,
    /// Raw readings older than this are reduced to per-minute min/max/mean, except
    /// during excursions (default: never reduced).
    pub reduce_after: Option<String>,
    /// Length of the blocks in which readings are sealed into the audit trail.
    pub seal_interval: Option<String>,
    /// How long after a block ends it is sealed (late readings after that reseal it).
    pub seal_grace: Option<String>,
}

/// `[standby]`: for `cryowatch standby` on a second machine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    /// The primary's `[heartbeat] mqtt_topic`.
    pub primary_topic: String,
    /// How long without a fresh `online` before the primary counts as down (default 3m).
    pub silent_after: Option<String>,
    /// Contacts told that the monitor is down (and back).
    #[serde(default)]
    pub notify: Vec<String>,
}

/// `[heartbeat]`: signs of life for whoever watches the watcher.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Retained MQTT status topic (online / offline as Last Will); needs `[mqtt]`.
    pub mqtt_topic: Option<String>,
    /// URL fetched on every beat while the pipeline progresses (a dead-man service).
    pub url: Option<String>,
    /// How often (default 1m).
    pub interval: Option<String>,
    /// A daily "all OK" page at this time of day (site time zone, "08:00") ...
    pub all_ok_at: Option<String>,
    /// ... to these contacts: its absence tells them the monitor is dead.
    #[serde(default)]
    pub all_ok_to: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Influx {
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// Timestamp precision of the points written: "ns" (default) or "ms".
    pub precision: Option<String>,
    /// Most points in one write.
    pub batch_size: Option<usize>,
    /// Longest time a stored reading waits before a partial batch is sent.
    pub flush_interval: Option<String>,
    /// Time allowed for one write request.
    pub timeout: Option<String>,
    /// Longest wait between retries while InfluxDB is down or refuses.
    pub max_retry_interval: Option<String>,
    /// Oldest unmirrored reading older than this raises a warning condition.
    pub lag_warning: Option<String>,
    /// PEM file of CA certificates trusted for `https://` besides the system store.
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    pub url: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub keep_alive: Option<String>,
    /// Readings stamped further ahead of the daemon's clock are kept with their time but
    /// flagged, never evaluated and never a sensor's latest value (default 5m).
    pub max_clock_skew: Option<String>,
    /// PEM file of CA certificates trusted for `mqtts://` besides the system store.
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub listen: String,
    /// The address people reach the API at (behind a reverse proxy, for example):
    /// acknowledgement links in emails start with it. Default: `http://<listen>`.
    pub public_url: Option<String>,
    #[serde(default)]
    pub token: Vec<ApiToken>,
    /// Web sessions end after this long without a request. Default 15 minutes.
    pub idle_timeout: Option<String>,
    /// HTTP connections served at once; more are answered 503 and closed. Default 256.
    pub max_connections: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub id: String,
    pub role: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modbus {
    #[serde(default)]
    pub device: Vec<ModbusDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    pub id: String,
    pub transport: String,
    pub address: Option<String>,
    pub serial: Option<String>,
    pub baud: Option<u32>,
    pub parity: Option<String>,
    pub data_bits: Option<u8>,
    pub stop_bits: Option<u8>,
    pub unit: Option<u8>,
    pub poll_interval: Option<String>,
    pub timeout: Option<String>,
    pub max_connections: Option<u32>,
}

/// `[serial]`: devices speaking a line-based text protocol, and their unsolicited lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    #[serde(default)]
    pub device: Vec<SerialDevice>,
    #[serde(default)]
    pub event: Vec<SerialEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialDevice {
    pub id: String,
    pub port: String,
    pub baud: Option<u32>,
    pub parity: Option<String>,
    pub data_bits: Option<u8>,
    pub stop_bits: Option<u8>,
    pub line_ending: Option<String>,
    pub timeout: Option<String>,
    pub poll_interval: Option<String>,
}

/// `[[serial.event]]`: `values` stays a TOML value so that a non-number is reported
/// with its key path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialEvent {
    pub device: String,
    pub pattern: String,
    pub sensor: String,
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSerial {
    pub device: String,
    pub query: Option<String>,
    pub pattern: Option<String>,
    #[serde(default)]
    pub fault_patterns: Vec<String>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ups {
    pub id: String,
    pub nut: String,
    pub name: String,
    pub poll_interval: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub id: String,
    pub name: Option<String>,
    pub kind: String,
    pub location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    pub id: String,
    pub asset: String,
    pub quantity: Option<String>,
    pub unit: Option<String>,
    pub stale_after: Option<String>,
    pub valid_range: Option<Vec<f64>>,
    /// A discrete sensor's names of 0 and 1: `["closed", "OPEN"]`.
    pub states: Option<Vec<String>>,
    pub modbus: Option<SensorModbus>,
    pub mqtt: Option<SensorMqtt>,
    pub ups: Option<SensorUps>,
    pub serial: Option<SensorSerial>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorModbus {
    pub device: String,
    pub register: String,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: String,
    pub byte_order: Option<String>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    #[serde(default)]
    pub fault_values: Vec<f64>,
    /// Coils and discrete inputs: read 1 as 0 and 0 as 1 (a normally-closed contact).
    pub invert: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorMqtt {
    pub topic: String,
    pub format: Option<String>,
    pub json_path: Option<String>,
    pub timestamp_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorUps {
    pub ups: String,
    pub variable: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    /// Every kind but `all`/`any` reads one sensor; for those it is optional and only
    /// names the sensor the alarm is shown under.
    pub sensor: Option<String>,
    pub kind: String,
    pub threshold: Option<f64>,
    pub hysteresis: Option<f64>,
    pub delay: Option<String>,
    pub severity: Option<String>,
    pub escalation: Option<String>,
    pub latching: Option<bool>,
    pub window: Option<String>,
    /// `rate` and `forecast` rules: `rising` (default) or `falling`.
    pub direction: Option<String>,
    pub equals: Option<f64>,
    /// `forecast` rules: how far ahead the line may reach the threshold.
    pub horizon: Option<String>,
    /// `no_event` rules: how long the sensor may go without reading `equals`.
    pub within: Option<String>,
    /// `all` / `any` rules: the ids of the rules whose conditions are combined.
    #[serde(default)]
    pub of: Vec<String>,
    /// `false` turns a rule off (e.g. a default rule overridden by id).
    pub enabled: Option<bool>,
    /// `false`: the rule is only a condition for `all`/`any` rules and raises no alarm of
    /// its own.
    pub raise: Option<bool>,
    /// `"power"`: an alarm of this rule opens a site power incident that groups the
    /// alarms raised while it lasts. Rules on a UPS `on_battery` point do so by default.
    pub incident: Option<String>,
}

/// A scheduled test page: proof for auditors that the alarm path works.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPage {
    pub contact: String,
    /// `"Mon 10:00"` (weekly), `"10:00"` (daily) or monthly (`"1st Mon of
    /// Jan,Apr,Jul,Oct 10:00"`, `"15th 10:00"`), site time zone.
    pub every: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub id: String,
    pub sensors: Vec<String>,
    /// Recurring window start: `"Tue 09:00"` (weekly), `"09:00"` (daily) or monthly
    /// (`"last of Mar,Jun,Sep,Dec 17:00"`, `"2nd Tue 09:00"`), in the site time zone.
    pub every: Option<String>,
    pub duration: Option<String>,
    /// One-off window: RFC 3339 start and end.
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A named set of contacts, paged together by `group:ID`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    pub members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub id: String,
    pub rotation: String,
    pub handoff: String,
    /// When `members[0]` is on call from: RFC 3339, or a local date and time (or a
    /// date, meaning its midnight) in `[site].timezone`.
    pub start: Option<String>,
    pub members: Vec<String>,
    #[serde(default, rename = "override")]
    pub overrides: Vec<ScheduleOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOverride {
    pub contact: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub id: String,
    pub repeat: Option<u32>,
    pub repeat_interval: Option<String>,
    #[serde(default)]
    pub step: Vec<EscalationStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    pub after: String,
    pub notify: Vec<String>,
    #[serde(default)]
    pub via: Vec<String>,
}

/// Routes alarms that name no escalation: the first route whose match fits wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub escalation: String,
    pub asset: Option<String>,
    pub severity: Option<String>,
}

/// One notification channel. Which keys apply depends on `kind`; `validate` checks that.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub id: String,
    pub kind: String,
    // smtp
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub from: Option<String>,
    // twilio
    pub base_url: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub auth_token_env: Option<String>,
    pub auth_token_file: Option<String>,
    // gsm_modem
    pub serial: Option<String>,
    pub baud: Option<u32>,
    /// Call the contact and let it ring this long before each SMS (`"20s"`).
    pub ring: Option<String>,
    // webhook
    pub url: Option<String>,
    /// smtp, twilio, webhook: PEM file of CA certificates trusted besides the system
    /// store.
    pub ca_file: Option<String>,
    pub fallback: Option<String>,
}

/// `[calibration]`: when probes' calibrations fall due.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub warn_before: Option<Vec<String>>,
    /// The sensors whose calibration is watched (default: every temperature sensor).
    pub sensors: Option<Vec<String>>,
}
