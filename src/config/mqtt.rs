//! `[mqtt]`, the broker, and `[sensor.mqtt]`, a sensor's topic and payload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{Checker, Secret};
use super::raw;

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
    /// before it is flagged ([`super::Config::max_clock_skew`]).
    pub max_clock_skew: Duration,
    /// CA certificates trusted for `mqtts://` besides the system store.
    pub ca_file: Option<PathBuf>,
}

impl MqttConfig {
    pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
}

/// Checks `[mqtt]`; `None` when the broker's URL is unusable.
pub(super) fn mqtt(c: &mut Checker, m: &raw::Mqtt, base: &Path) -> Option<MqttConfig> {
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

/// Checks a sensor's `[sensor.mqtt]` at key path `p`; `None` when its format is unknown.
pub(super) fn point(c: &mut Checker, p: &str, m: &raw::SensorMqtt) -> Option<MqttPoint> {
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
fn check_topic_filter(topic: &str) -> Result<(), &'static str> {
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
