//! Turns a [`RawConfig`] into a checked [`Config`], collecting every problem with its key
//! path instead of stopping at the first one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{self, RawConfig};
use super::*;

pub(super) struct Checker {
    pub problems: Vec<Problem>,
}

impl Checker {
    /// A peer's `ca_file` (relative to the configuration's directory), checked now: it
    /// must exist and hold PEM certificates valid today. `None` when not given or
    /// unusable (with a problem naming the file as written and what is wrong).
    pub fn ca_file(&mut self, path: &str, given: Option<&str>, base: &Path) -> Option<PathBuf> {
        let file = resolve(base, given?);
        match crate::tls::read_ca_file(&file, std::time::SystemTime::now()) {
            Ok(_) => Some(file),
            Err(e) => {
                self.err(path, format!("{}: {}", given.unwrap_or_default(), e.problem));
                None
            }
        }
    }

    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Parses a duration with [`parse_duration`]; `None` (with a problem) when it does
    /// not parse or is longer than [`MAX_DURATION`].
    pub fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    pub fn positive_duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match self.duration(path, text) {
            Some(d) if d.is_zero() => {
                self.err(path, "must be longer than zero");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    /// One of a fixed set of words.
    pub fn one_of<'a>(&mut self, path: &str, value: &str, allowed: &[&'a str]) -> Option<&'a str> {
        let found = allowed.iter().find(|a| **a == value).copied();
        if found.is_none() {
            self.err(
                path,
                format!("unknown value {value:?}; expected one of: {}", allowed.join(", ")),
            );
        }
        found
    }

    /// Resolves `<name>`, `<name>_env` or `<name>_file`; at most one may be given.
    pub fn secret(
        &mut self,
        path: &str,
        name: &str,
        inline: &Option<String>,
        env: &Option<String>,
        file: &Option<String>,
        base: &Path,
    ) -> Option<Secret> {
        let given = [inline.is_some(), env.is_some(), file.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            self.err(
                format!("{path}.{name}"),
                format!("give only one of {name}, {name}_env, {name}_file"),
            );
            return None;
        }
        if let Some(v) = inline {
            return Some(Secret(v.clone()));
        }
        if let Some(var) = env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(Secret(v)),
                Ok(_) => {
                    self.err(
                        format!("{path}.{name}_env"),
                        format!("environment variable {var:?} is empty"),
                    );
                    None
                }
                Err(_) => {
                    self.err(
                        format!("{path}.{name}_env"),
                        format!("environment variable {var:?} is not set"),
                    );
                    None
                }
            };
        }
        if let Some(f) = file {
            let p = resolve(base, f);
            return match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim_end_matches(['\n', '\r']).to_string())),
                Ok(_) => {
                    self.err(
                        format!("{path}.{name}_file"),
                        format!("secret file {:?} is empty", p.display().to_string()),
                    );
                    None
                }
                Err(e) => {
                    self.err(
                        format!("{path}.{name}_file"),
                        format!("cannot read secret file {:?}: {e}", p.display().to_string()),
                    );
                    None
                }
            };
        }
        None
    }

    /// Reports a name that holds a control character (a newline, tab, …): ids and units
    /// go into logs, CSV and InfluxDB's line protocol, where a newline starts a new
    /// record and cannot be escaped. Backslashes, commas, spaces, `=` and quotes are
    /// fine: every output escapes them. Returns whether `value` is clean.
    pub fn printable(&mut self, path: &str, value: &str) -> bool {
        if value.chars().count() > MAX_NAME {
            self.err(
                path.to_string(),
                format!(
                    "{} characters, at most {MAX_NAME}: names go into every page subject and SMS (starts {:?})",
                    value.chars().count(),
                    value.chars().take(40).collect::<String>()
                ),
            );
            return false;
        }
        match value.chars().find(|ch| ch.is_control()) {
            None => true,
            Some(ch) => {
                self.err(
                    path.to_string(),
                    format!(
                        "{value:?} contains the control character U+{:04X}; names go into logs, CSV \
                         and InfluxDB line protocol, which cannot carry one",
                        u32::from(ch)
                    ),
                );
                false
            }
        }
    }

    /// Reports every id used more than once in a section.
    pub fn unique_ids<'a>(&mut self, section: &str, ids: impl Iterator<Item = &'a str>) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            if id.trim().is_empty() {
                self.err(format!("{section}[{i}].id"), "must not be empty");
            } else if let Some(j) = first.get(id) {
                self.err(
                    format!("{section}[{i}].id"),
                    format!("duplicate id {id:?} (already used by {section}[{j}])"),
                );
            } else {
                self.printable(&format!("{section}[{i}].id"), id);
                first.insert(id, i);
            }
        }
    }
}

/// A relative path in the config is relative to the config file's directory.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { base.join(p) }
}

/// Checks everything and builds the [`Config`] the daemon runs on. `base` is the
/// directory relative paths are resolved against (the config file's).
pub fn validate(raw: &RawConfig, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };

    let site = match &raw.site {
        Some(s) => {
            let tz_name = s.timezone.as_deref().unwrap_or("UTC");
            let timezone = jiff::tz::TimeZone::get(tz_name).unwrap_or_else(|_| {
                c.err("site.timezone", format!("unknown IANA time zone {tz_name:?}"));
                jiff::tz::TimeZone::UTC
            });
            c.printable("site.name", &s.name);
            SiteConfig {
                name: s.name.clone(),
                timezone,
            }
        }
        None => {
            c.err("site", "missing section [site] (name, timezone)");
            SiteConfig {
                name: String::new(),
                timezone: jiff::tz::TimeZone::UTC,
            }
        }
    };

    let store = match &raw.store {
        Some(s) => StoreConfig {
            path: resolve(base, &s.path),
            flush_interval: c.positive_duration(
                "store.flush_interval",
                s.flush_interval.as_deref(),
                Duration::from_millis(200),
            ),
            batch_size: match s.batch_size {
                Some(0) => {
                    c.err("store.batch_size", "must be at least 1");
                    1
                }
                Some(n) => n,
                None => 10_000,
            },
            retention: c.positive_duration("store.retention", s.retention.as_deref(), StoreConfig::TEN_YEARS),
            reduce_after: s
                .reduce_after
                .as_deref()
                .map(|t| c.positive_duration("store.reduce_after", Some(t), StoreConfig::TEN_YEARS)),
            seal_interval: c.positive_duration(
                "store.seal_interval",
                s.seal_interval.as_deref(),
                Duration::from_secs(600),
            ),
            seal_grace: c.positive_duration("store.seal_grace", s.seal_grace.as_deref(), Duration::from_secs(120)),
        },
        None => {
            c.err("store", "missing section [store] (path of the embedded store)");
            StoreConfig {
                path: PathBuf::new(),
                flush_interval: Duration::from_millis(200),
                batch_size: 10_000,
                retention: StoreConfig::TEN_YEARS,
                reduce_after: None,
                seal_interval: Duration::from_secs(600),
                seal_grace: Duration::from_secs(120),
            }
        }
    };

    if let Some(r) = store.reduce_after
        && r >= store.retention
    {
        c.err(
            "store.reduce_after",
            format!(
                "must be shorter than store.retention ({}): readings would be deleted before they are reduced",
                humantime::format_duration(store.retention)
            ),
        );
    }
    if store.seal_interval < Duration::from_secs(1) {
        c.err("store.seal_interval", "must be at least 1s");
    }
    // Readings are bound at commit until their block is sealed: deleting or reducing them
    // before that would be indistinguishable from tampering.
    let sealed_after = store.seal_interval.saturating_add(store.seal_grace);
    for (key, d) in [
        ("store.retention", Some(store.retention)),
        ("store.reduce_after", store.reduce_after),
    ] {
        if let Some(d) = d
            && d <= sealed_after
        {
            c.err(
                key,
                format!(
                    "must be longer than store.seal_interval + store.seal_grace ({}): readings would be removed before they are sealed",
                    humantime::format_duration(sealed_after)
                ),
            );
        }
    }

    let mqtt = raw.mqtt.as_ref().and_then(|m| mqtt_config(&mut c, m, base));
    let influx = raw.influx.as_ref().and_then(|i| influx_config(&mut c, i, base));
    let heartbeat = raw.heartbeat.as_ref().map(|h| {
        if let Some(t) = &h.mqtt_topic {
            if t.trim().is_empty() || t.contains(['+', '#']) {
                c.err(
                    "heartbeat.mqtt_topic",
                    format!("expected a topic without wildcards, found {t:?}"),
                );
            }
            if raw.mqtt.is_none() {
                c.err("heartbeat.mqtt_topic", "needs the [mqtt] section with the broker");
            }
        }
        if let Some(u) = &h.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            c.err(
                "heartbeat.url",
                format!("expected an http:// or https:// URL, found {u:?}"),
            );
        }
        let all_ok = match (&h.all_ok_at, h.all_ok_to.is_empty()) {
            (None, true) => None,
            (None, false) => {
                c.err(
                    "heartbeat.all_ok_at",
                    "missing: the time of day for the all-OK page, e.g. \"08:00\"",
                );
                None
            }
            (Some(_), true) => {
                c.err("heartbeat.all_ok_to", "missing: the contacts who get the all-OK page");
                None
            }
            (Some(t), false) => {
                for (i, n) in h.all_ok_to.iter().enumerate() {
                    if !raw.contact.iter().any(|k| &k.id == n) {
                        c.err(format!("heartbeat.all_ok_to[{i}]"), format!("unknown contact {n:?}"));
                    }
                }
                match t.parse::<jiff::civil::Time>() {
                    Ok(time) => Some((time, h.all_ok_to.clone())),
                    Err(_) => {
                        c.err(
                            "heartbeat.all_ok_at",
                            format!("expected a time of day like \"08:00\", found {t:?}"),
                        );
                        None
                    }
                }
            }
        };
        crate::config::HeartbeatConfig {
            all_ok,
            mqtt_topic: h.mqtt_topic.clone(),
            url: h.url.clone(),
            interval: c.positive_duration("heartbeat.interval", h.interval.as_deref(), Duration::from_secs(60)),
        }
    });
    let standby = raw.standby.as_ref().map(|s| {
        if s.primary_topic.trim().is_empty() || s.primary_topic.contains(['+', '#']) {
            c.err(
                "standby.primary_topic",
                format!(
                    "expected the primary's heartbeat topic, without wildcards; found {:?}",
                    s.primary_topic
                ),
            );
        }
        if raw.mqtt.is_none() {
            c.err(
                "standby",
                "needs the [mqtt] section with the broker the primary's heartbeat goes to",
            );
        }
        if heartbeat.as_ref().and_then(|h| h.mqtt_topic.as_deref()) == Some(s.primary_topic.as_str()) {
            c.err(
                "standby.primary_topic",
                "is this machine's own [heartbeat] mqtt_topic: give the standby its own",
            );
        }
        for (i, n) in s.notify.iter().enumerate() {
            if !raw.contact.iter().any(|k| &k.id == n) {
                c.err(format!("standby.notify[{i}]"), format!("unknown contact {n:?}"));
            }
        }
        crate::config::StandbyConfig {
            primary_topic: s.primary_topic.clone(),
            silent_after: c.positive_duration(
                "standby.silent_after",
                s.silent_after.as_deref(),
                Duration::from_secs(180),
            ),
            notify: s.notify.clone(),
        }
    });

    let raw_devices = raw.modbus.as_ref().map(|m| m.device.as_slice()).unwrap_or_default();
    c.unique_ids("modbus.device", raw_devices.iter().map(|d| d.id.as_str()));
    let devices: Vec<ModbusDevice> = raw_devices
        .iter()
        .enumerate()
        .map(|(i, d)| modbus_device(&mut c, &format!("modbus.device[{i}]"), d, base))
        .collect();
    check_shared_buses(&mut c, &devices);
    check_shared_gateways(&mut c, raw_devices, &devices);

    c.unique_ids("asset", raw.asset.iter().map(|a| a.id.as_str()));
    let assets: Vec<Asset> = raw
        .asset
        .iter()
        .enumerate()
        .map(|(i, a)| {
            c.one_of(&format!("asset[{i}].kind"), &a.kind, ASSET_KINDS);
            Asset {
                id: a.id.clone(),
                name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                kind: a.kind.clone(),
                location: a.location.clone().unwrap_or_default(),
            }
        })
        .collect();

    c.unique_ids("ups", raw.ups.iter().map(|u| u.id.as_str()));
    let ups_ids: HashSet<&str> = raw.ups.iter().map(|u| u.id.as_str()).collect();
    let mut ups = Vec::new();
    for (i, u) in raw.ups.iter().enumerate() {
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

    c.unique_ids("sensor", raw.sensor.iter().map(|s| s.id.as_str()));
    let ctx = SensorContext {
        devices: &devices,
        assets: &assets,
        ups: &ups_ids,
        mqtt: mqtt.is_some(),
    };
    let mut sensors: Vec<Sensor> = raw
        .sensor
        .iter()
        .enumerate()
        .filter_map(|(i, s)| sensor(&mut c, &format!("sensor[{i}]"), s, &ctx))
        .collect();
    super::monitor::check_reserved(
        &mut c,
        raw.asset.iter().map(|a| a.id.as_str()),
        raw.sensor.iter().map(|s| s.id.as_str()),
    );
    let mut assets = assets;
    super::monitor::add_sensor(&mut assets, &mut sensors, raw.api.is_some());

    let inputs = super::rules::RuleInputs {
        sensors: &sensors,
        assets: &assets,
        devices: &devices,
        ups: &ups,
        sensor_idx: sensors.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect(),
    };
    let mut rules = super::rules::check_rules(&mut c, raw, &inputs);
    super::monitor::add_rule(&mut rules, &sensors);
    let maintenance = super::rules::check_maintenance(&mut c, raw, &inputs);
    let test_pages = super::rules::check_test_pages(&mut c, raw);
    let sections = super::validate_alarms::check(&mut c, raw, base);

    if c.problems.is_empty() {
        Ok(Config {
            site,
            store,
            influx,
            heartbeat,
            standby,
            mqtt,
            devices,
            ups,
            assets,
            sensors,
            rules,
            maintenance,
            test_pages,
            notify: super::notify::build(raw, base),
            sections,
        })
    } else {
        Err(c.problems)
    }
}

pub(super) const ASSET_KINDS: &[&str] = &[
    "ln2_dewar",
    "freezer_minus150",
    "freezer_minus80",
    "freezer_minus20",
    "refrigerator",
    "room",
    "ups",
    "other",
];

fn mqtt_config(c: &mut Checker, m: &raw::Mqtt, base: &Path) -> Option<MqttConfig> {
    let password = c.secret("mqtt", "password", &m.password, &m.password_env, &m.password_file, base);
    let keep_alive = c.positive_duration("mqtt.keep_alive", m.keep_alive.as_deref(), Duration::from_secs(30));
    let max_clock_skew = c.positive_duration(
        "mqtt.max_clock_skew",
        m.max_clock_skew.as_deref(),
        MqttConfig::DEFAULT_MAX_CLOCK_SKEW,
    );
    if m.client_id.trim().is_empty() {
        c.err(
            "mqtt.client_id",
            "must not be empty: the persistent session is bound to it",
        );
    }
    let (tls, rest) = if let Some(r) = m.url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = m.url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        c.err(
            "mqtt.url",
            format!("expected mqtt://host:port or mqtts://host:port, found {:?}", m.url),
        );
        return None;
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h.to_string(), p),
            Err(_) => {
                c.err("mqtt.url", format!("port {p:?} is not a number from 0 to 65535"));
                return None;
            }
        },
        None => (rest.to_string(), if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        c.err("mqtt.url", "host is empty");
        return None;
    }
    let ca_file = c.ca_file("mqtt.ca_file", m.ca_file.as_deref(), base);
    if m.ca_file.is_some() && !tls {
        c.err("mqtt.ca_file", "only applies to an mqtts:// url");
    }
    Some(MqttConfig {
        host,
        port,
        tls,
        client_id: m.client_id.clone(),
        username: m.username.clone(),
        password,
        keep_alive,
        max_clock_skew,
        ca_file,
    })
}

fn influx_config(c: &mut Checker, i: &raw::Influx, base: &Path) -> Option<InfluxConfig> {
    let mut ok = true;
    if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
        c.err(
            "influx.url",
            format!("expected an http:// or https:// URL, found {:?}", i.url),
        );
        ok = false;
    }
    for (key, v) in [("influx.org", &i.org), ("influx.bucket", &i.bucket)] {
        if v.trim().is_empty() {
            c.err(key, "must not be empty");
            ok = false;
        }
    }
    let token = c.secret("influx", "token", &i.token, &i.token_env, &i.token_file, base);
    if token.is_none() && i.token.is_none() && i.token_env.is_none() && i.token_file.is_none() {
        c.err("influx.token", "missing: give token, token_env or token_file");
    }
    let precision = match i.precision.as_deref() {
        None | Some("ns") => Precision::Nanoseconds,
        Some("ms") => Precision::Milliseconds,
        Some(other) => {
            c.err(
                "influx.precision",
                format!("unknown value {other:?}; expected one of: ns, ms"),
            );
            Precision::Nanoseconds
        }
    };
    let batch_size = match i.batch_size {
        Some(0) => {
            c.err("influx.batch_size", "must be at least 1");
            1
        }
        Some(n) => n,
        None => 5_000,
    };
    let d = |c: &mut Checker, key: &str, v: &Option<String>, default: u64| {
        c.positive_duration(&format!("influx.{key}"), v.as_deref(), Duration::from_millis(default))
    };
    let flush_interval = d(c, "flush_interval", &i.flush_interval, 1_000);
    let timeout = d(c, "timeout", &i.timeout, 10_000);
    let max_retry_interval = d(c, "max_retry_interval", &i.max_retry_interval, 60_000);
    let lag_warning = d(c, "lag_warning", &i.lag_warning, 600_000);
    let ca_file = c.ca_file("influx.ca_file", i.ca_file.as_deref(), base);
    if i.ca_file.is_some() && !i.url.starts_with("https://") {
        c.err("influx.ca_file", "only applies to an https:// url");
    }
    Some(InfluxConfig {
        url: i.url.trim_end_matches('/').to_string(),
        org: i.org.clone(),
        bucket: i.bucket.clone(),
        token: token?,
        precision,
        batch_size,
        flush_interval,
        timeout,
        max_retry_interval,
        lag_warning,
        ca_file,
    })
    .filter(|_| ok)
}

fn modbus_device(c: &mut Checker, p: &str, d: &raw::ModbusDevice, base: &Path) -> ModbusDevice {
    let poll_interval = c.positive_duration(
        &format!("{p}.poll_interval"),
        d.poll_interval.as_deref(),
        Duration::from_secs(5),
    );
    let timeout = c.positive_duration(&format!("{p}.timeout"), d.timeout.as_deref(), Duration::from_secs(1));
    let transport = match d.transport.as_str() {
        "tcp" => {
            for (key, given) in [
                ("serial", d.serial.is_some()),
                ("baud", d.baud.is_some()),
                ("parity", d.parity.is_some()),
                ("data_bits", d.data_bits.is_some()),
                ("stop_bits", d.stop_bits.is_some()),
            ] {
                if given {
                    c.err(format!("{p}.{key}"), "only applies to transport = \"rtu\"");
                }
            }
            let address = match d.address.as_deref().map(str::trim) {
                Some(a)
                    if a.rsplit_once(':')
                        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok()) =>
                {
                    a.to_string()
                }
                Some(a) => {
                    c.err(format!("{p}.address"), format!("expected host:port, found {a:?}"));
                    a.to_string()
                }
                None => {
                    c.err(
                        format!("{p}.address"),
                        "missing: transport = \"tcp\" needs address = \"host:port\"",
                    );
                    String::new()
                }
            };
            Transport::Tcp { address }
        }
        "rtu" => {
            if d.address.is_some() {
                c.err(
                    format!("{p}.address"),
                    "only applies to transport = \"tcp\"; use serial for rtu",
                );
            }
            if d.max_connections.is_some() {
                c.err(
                    format!("{p}.max_connections"),
                    "only applies to transport = \"tcp\"; the devices on one serial line always share its one port",
                );
            }
            let serial = match &d.serial {
                Some(s) => resolve(base, s),
                None => {
                    c.err(
                        format!("{p}.serial"),
                        "missing: transport = \"rtu\" needs serial = \"/dev/ttyUSB0\"",
                    );
                    PathBuf::new()
                }
            };
            let parity = match d
                .parity
                .as_deref()
                .map(|v| c.one_of(&format!("{p}.parity"), v, &["none", "even", "odd"]))
            {
                Some(Some("even")) => Parity::Even,
                Some(Some("odd")) => Parity::Odd,
                _ => Parity::None,
            };
            let data_bits = d.data_bits.unwrap_or(8);
            if !(5..=8).contains(&data_bits) {
                c.err(
                    format!("{p}.data_bits"),
                    format!("must be 5, 6, 7 or 8, found {data_bits}"),
                );
            }
            let stop_bits = d.stop_bits.unwrap_or(1);
            if !(1..=2).contains(&stop_bits) {
                c.err(format!("{p}.stop_bits"), format!("must be 1 or 2, found {stop_bits}"));
            }
            let baud = d.baud.unwrap_or(9600);
            if baud == 0 {
                c.err(format!("{p}.baud"), "must be greater than zero");
            }
            Transport::Rtu {
                serial,
                baud,
                parity,
                data_bits,
                stop_bits,
            }
        }
        other => {
            c.err(
                format!("{p}.transport"),
                format!("unknown value {other:?}; expected one of: tcp, rtu"),
            );
            Transport::Tcp { address: String::new() }
        }
    };
    let unit = d.unit.unwrap_or(1);
    if matches!(transport, Transport::Rtu { .. }) && !(1..=247).contains(&unit) {
        c.err(
            format!("{p}.unit"),
            format!("an RTU unit id must be 1..=247, found {unit}"),
        );
    }
    let max_connections = match d.max_connections {
        Some(0) => {
            c.err(
                format!("{p}.max_connections"),
                "must be at least 1 (connections opened to the device's address)",
            );
            ModbusDevice::DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => ModbusDevice::DEFAULT_MAX_CONNECTIONS,
    };
    ModbusDevice {
        id: d.id.clone(),
        transport,
        unit,
        poll_interval,
        timeout,
        max_connections,
    }
}

/// Devices at one TCP address share its connections (a gateway may serve one client at
/// a time): they must agree on how many there may be.
fn check_shared_gateways(c: &mut Checker, raw: &[raw::ModbusDevice], devices: &[ModbusDevice]) {
    let mut first: HashMap<String, usize> = HashMap::new();
    let value_of = |i: usize| match raw[i].max_connections {
        Some(n) => n.to_string(),
        None => format!("{} (not set: the default)", ModbusDevice::DEFAULT_MAX_CONNECTIONS),
    };
    for (i, d) in devices.iter().enumerate() {
        let Transport::Tcp { address } = &d.transport else {
            continue;
        };
        let key = gateway_key(address);
        match first.get(&key) {
            None => {
                first.insert(key, i);
            }
            Some(&j) if devices[j].max_connections != d.max_connections => {
                c.err(
                    format!("modbus.device[{i}].max_connections"),
                    format!(
                        "{} disagrees with modbus.device[{j}].max_connections = {} of device {:?} at \
                         the same address {key}; devices at one TCP address share its connections: \
                         give them all the same max_connections",
                        value_of(i),
                        value_of(j),
                        devices[j].id
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

/// Devices on one serial line share the port: their line settings must agree.
fn check_shared_buses(c: &mut Checker, devices: &[ModbusDevice]) {
    let mut first: HashMap<&Path, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let Transport::Rtu { serial, .. } = &d.transport else {
            continue;
        };
        match first.get(serial.as_path()) {
            None => {
                first.insert(serial, i);
            }
            Some(&j) => {
                let other = &devices[j];
                let line = |t: &Transport| match t {
                    Transport::Rtu {
                        baud,
                        parity,
                        data_bits,
                        stop_bits,
                        ..
                    } => Some((*baud, *parity, *data_bits, *stop_bits)),
                    Transport::Tcp { .. } => None,
                };
                if line(&d.transport) != line(&other.transport) {
                    c.err(
                        format!("modbus.device[{i}]"),
                        format!(
                            "shares serial {} with {:?} but baud/parity/data_bits/stop_bits differ",
                            serial.display(),
                            other.id
                        ),
                    );
                }
                if d.unit == other.unit {
                    c.err(
                        format!("modbus.device[{i}].unit"),
                        format!(
                            "unit {} is already used on serial {} by {:?}",
                            d.unit,
                            serial.display(),
                            other.id
                        ),
                    );
                }
            }
        }
    }
}

struct SensorContext<'a> {
    devices: &'a [ModbusDevice],
    assets: &'a [Asset],
    ups: &'a HashSet<&'a str>,
    mqtt: bool,
}

/// The longest id, unit or site name accepted.
const MAX_NAME: usize = 200;

const QUANTITIES: &[&str] = &["temperature", "level", "state", "voltage", "runtime", "charge", "other"];

fn sensor(c: &mut Checker, p: &str, s: &raw::Sensor, ctx: &SensorContext) -> Option<Sensor> {
    if let Some(unit) = &s.unit {
        c.printable(&format!("{p}.unit"), unit);
    }
    let asset = ctx.assets.iter().position(|a| a.id == s.asset);
    if asset.is_none() {
        c.err(
            format!("{p}.asset"),
            format!(
                "unknown asset {:?} (sensor {:?}); declare it in an [[asset]]",
                s.asset, s.id
            ),
        );
    }
    let quantity = s.quantity.clone().unwrap_or_else(|| "other".into());
    c.one_of(&format!("{p}.quantity"), &quantity, QUANTITIES);
    let stale_after = s
        .stale_after
        .as_deref()
        .map(|t| c.positive_duration(&format!("{p}.stale_after"), Some(t), Duration::from_secs(60)));
    let sources = [s.modbus.is_some(), s.mqtt.is_some(), s.ups.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if sources != 1 {
        c.err(p, format!("sensor {:?} needs exactly one source table: [sensor.modbus], [sensor.mqtt] or [sensor.ups] (found {sources})", s.id));
        return None;
    }
    let source = if let Some(m) = &s.modbus {
        SensorSource::Modbus(modbus_point(c, &format!("{p}.modbus"), m, ctx.devices, &s.id)?)
    } else if let Some(m) = &s.mqtt {
        if !ctx.mqtt {
            c.err(
                format!("{p}.mqtt"),
                format!(
                    "sensor {:?} reads MQTT but there is no [mqtt] section with the broker",
                    s.id
                ),
            );
        }
        let mut point = mqtt_point(c, &format!("{p}.mqtt"), m)?;
        point.discrete = quantity == "state";
        SensorSource::Mqtt(point)
    } else {
        let u = s.ups.as_ref()?;
        if !ctx.ups.contains(u.ups.as_str()) {
            c.err(
                format!("{p}.ups.ups"),
                format!("unknown ups {:?}; declare it in an [[ups]]", u.ups),
            );
        }
        c.one_of(
            &format!("{p}.ups.variable"),
            &u.variable,
            &["on_battery", "low_battery", "runtime", "charge", "input_voltage"],
        );
        SensorSource::Ups(UpsPoint {
            ups: u.ups.clone(),
            variable: u.variable.clone(),
        })
    };
    Some(Sensor {
        id: s.id.clone(),
        asset: asset?,
        valid_range: valid_range(c, p, s, &quantity),
        quantity,
        unit: s.unit.clone().unwrap_or_default(),
        stale_after,
        source,
    })
}

/// The plausible values of a sensor: `valid_range`, else the physical limits of its
/// quantity in its unit (a temperature below absolute zero, a charge above 100 %).
fn valid_range(c: &mut Checker, p: &str, s: &raw::Sensor, quantity: &str) -> Option<(f64, f64)> {
    if let Some(r) = &s.valid_range {
        return match r.as_slice() {
            [lo, hi] if lo.is_finite() && hi.is_finite() && lo < hi => Some((*lo, *hi)),
            _ => {
                c.err(
                    format!("{p}.valid_range"),
                    format!("expected [low, high] with low < high, both finite; found {r:?}"),
                );
                None
            }
        };
    }
    let unit = s.unit.as_deref().unwrap_or("").trim().to_lowercase();
    match quantity {
        "temperature" => Some(match unit.as_str() {
            "degf" | "°f" | "f" | "fahrenheit" => (-459.67, 400.0),
            "k" | "kelvin" => (0.0, 500.0),
            _ => (-273.15, 200.0),
        }),
        "charge" => Some((0.0, 100.0)),
        "runtime" => Some((0.0, 10_000_000.0)),
        "voltage" => Some((0.0, 100_000.0)),
        _ => None,
    }
}

fn modbus_point(
    c: &mut Checker,
    p: &str,
    m: &raw::SensorModbus,
    devices: &[ModbusDevice],
    sensor_id: &str,
) -> Option<ModbusPoint> {
    let device = devices.iter().position(|d| d.id == m.device);
    if device.is_none() {
        c.err(
            format!("{p}.device"),
            format!(
                "unknown modbus device {:?} (sensor {sensor_id:?}); declare it in a [[modbus.device]]",
                m.device
            ),
        );
    }
    let register = match c.one_of(
        &format!("{p}.register"),
        &m.register,
        &["coil", "discrete", "holding", "input"],
    ) {
        Some("coil") => RegisterKind::Coil,
        Some("discrete") => RegisterKind::Discrete,
        Some("holding") => RegisterKind::Holding,
        Some("input") => RegisterKind::Input,
        _ => return None,
    };
    let data_type = match c.one_of(
        &format!("{p}.type"),
        &m.data_type,
        &["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool"],
    )? {
        "u16" => DataType::U16,
        "i16" => DataType::I16,
        "u32" => DataType::U32,
        "i32" => DataType::I32,
        "u64" => DataType::U64,
        "i64" => DataType::I64,
        "f32" => DataType::F32,
        "f64" => DataType::F64,
        _ => DataType::Bool,
    };
    if register.is_bit() && data_type != DataType::Bool {
        c.err(
            format!("{p}.type"),
            format!("type {:?} does not fit register kind {:?}: coils and discrete inputs hold single bits; use type = \"bool\"", m.data_type, m.register),
        );
    }
    let words = data_type.words();
    let last = u32::from(m.address) + u32::from(words) - 1;
    if last > u32::from(u16::MAX) {
        c.err(
            format!("{p}.address"),
            format!(
                "type {:?} at address {} needs registers {}..={last}, past the last Modbus address 65535",
                m.data_type, m.address, m.address
            ),
        );
    }
    let byte_order = match m.byte_order.as_deref() {
        None => ByteOrder::Abcd,
        Some(b) => match c.one_of(&format!("{p}.byte_order"), b, &["ABCD", "CDAB", "BADC", "DCBA"]) {
            Some("CDAB") => ByteOrder::Cdab,
            Some("BADC") => ByteOrder::Badc,
            Some("DCBA") => ByteOrder::Dcba,
            _ => ByteOrder::Abcd,
        },
    };
    if register.is_bit() && m.byte_order.is_some() {
        c.err(format!("{p}.byte_order"), "does not apply to coils and discrete inputs");
    }
    let scale = m.scale.unwrap_or(1.0);
    if scale == 0.0 || !scale.is_finite() {
        c.err(
            format!("{p}.scale"),
            format!("must be a finite number other than 0, found {scale}"),
        );
    }
    let offset = m.offset.unwrap_or(0.0);
    if !offset.is_finite() {
        c.err(format!("{p}.offset"), "must be a finite number");
    }
    Some(ModbusPoint {
        device: device?,
        register,
        address: m.address,
        data_type,
        byte_order,
        scale,
        offset,
        fault_values: m.fault_values.clone(),
    })
}

fn mqtt_point(c: &mut Checker, p: &str, m: &raw::SensorMqtt) -> Option<MqttPoint> {
    if let Err(why) = check_topic_filter(&m.topic) {
        c.err(
            format!("{p}.topic"),
            format!("invalid topic filter {:?}: {why}", m.topic),
        );
    }
    let format = match m
        .format
        .as_deref()
        .map(|f| c.one_of(&format!("{p}.format"), f, &["number", "json"]))
    {
        None | Some(Some("number")) => PayloadFormat::Number,
        Some(Some(_)) => PayloadFormat::Json,
        Some(None) => return None,
    };
    let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
    let path_ok = |s: &str| !s.is_empty() && s.split('.').all(|seg| !seg.is_empty());
    for (key, v) in [("json_path", &m.json_path), ("timestamp_path", &m.timestamp_path)] {
        if let Some(v) = v {
            if format == PayloadFormat::Number {
                c.err(format!("{p}.{key}"), "only applies to format = \"json\"");
            } else if !path_ok(v) {
                c.err(
                    format!("{p}.{key}"),
                    format!("invalid dotted path {v:?}; write e.g. \"probe.temp_c\" or \"sensors.0.value\""),
                );
            }
        }
    }
    if format == PayloadFormat::Json && m.json_path.is_none() {
        c.err(
            format!("{p}.json_path"),
            "missing: format = \"json\" needs json_path, the dotted path of the value",
        );
    }
    Some(MqttPoint {
        topic: m.topic.clone(),
        format,
        json_path: m.json_path.as_deref().map(split),
        timestamp_path: m.timestamp_path.as_deref().map(split),
        discrete: false,
    })
}

/// MQTT filter rules: `#` only as the whole last level, `+` only as a whole level.
pub fn check_topic_filter(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("empty topic");
    }
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("'#' must be the whole last level");
        }
        if l.contains('+') && *l != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Found by fuzzing (fuzz/fuzz_targets/config_edit.rs): a variable name holding a
    /// line break made a problem span two lines of `check`'s one-line-per-problem output.
    #[test]
    fn a_secret_variable_name_with_a_line_break_is_reported_on_one_line() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("cryowatch.toml");
        std::fs::write(
            &file,
            "[site]\nname = \"lab\"\n\n[store]\npath = \"cw.db\"\n\n[mqtt]\n\
             url = \"mqtt://127.0.0.1:1883\"\nclient_id = \"cw\"\npassword_env = \"NO\\nSUCH\"\n",
        )
        .expect("write the configuration");
        let problems = crate::config::load(&file).expect_err("the file is refused").problems;
        assert!(
            problems
                .iter()
                .any(|p| p.path == "mqtt.password_env" && p.message == r#"environment variable "NO\nSUCH" is not set"#),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| !p.to_string().contains('\n')), "{problems:?}");
    }
}
