//! `[heartbeat]`, the monitor's signs of life, and `[standby]`, what `cryowatch standby`
//! on a second machine watches of them.

use std::time::Duration;

use super::check::{Checker, Declared};
use super::raw;

/// `[heartbeat]`, checked.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    pub mqtt_topic: Option<String>,
    pub url: Option<String>,
    pub interval: Duration,
    /// The daily "all OK" page: time of day (site zone) and contact ids.
    pub all_ok: Option<(jiff::civil::Time, Vec<String>)>,
}

/// `[standby]`, checked.
#[derive(Debug, Clone)]
pub struct StandbyConfig {
    pub primary_topic: String,
    pub silent_after: Duration,
    /// Contact ids.
    pub notify: Vec<String>,
}

/// Checks `[heartbeat]`; `mqtt` tells whether the file has an `[mqtt]` section.
pub(super) fn heartbeat(c: &mut Checker, h: &raw::Heartbeat, mqtt: bool, declared: &Declared) -> HeartbeatConfig {
    if let Some(t) = &h.mqtt_topic {
        if t.trim().is_empty() || t.contains(['+', '#']) {
            c.err(
                "heartbeat.mqtt_topic",
                format!("expected a topic without wildcards, found {t:?}"),
            );
        }
        if !mqtt {
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
                if !declared.contacts.contains(n.as_str()) {
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
    HeartbeatConfig {
        all_ok,
        mqtt_topic: h.mqtt_topic.clone(),
        url: h.url.clone(),
        interval: c.positive_duration("heartbeat.interval", h.interval.as_deref(), Duration::from_secs(60)),
    }
}

/// Checks `[standby]`; `mqtt` tells whether the file has an `[mqtt]` section,
/// `heartbeat` is this machine's own.
pub(super) fn standby(
    c: &mut Checker,
    s: &raw::Standby,
    mqtt: bool,
    heartbeat: Option<&HeartbeatConfig>,
    declared: &Declared,
) -> StandbyConfig {
    if s.primary_topic.trim().is_empty() || s.primary_topic.contains(['+', '#']) {
        c.err(
            "standby.primary_topic",
            format!(
                "expected the primary's heartbeat topic, without wildcards; found {:?}",
                s.primary_topic
            ),
        );
    }
    if !mqtt {
        c.err(
            "standby",
            "needs the [mqtt] section with the broker the primary's heartbeat goes to",
        );
    }
    if heartbeat.and_then(|h| h.mqtt_topic.as_deref()) == Some(s.primary_topic.as_str()) {
        c.err(
            "standby.primary_topic",
            "is this machine's own [heartbeat] mqtt_topic: give the standby its own",
        );
    }
    for (i, n) in s.notify.iter().enumerate() {
        if !declared.contacts.contains(n.as_str()) {
            c.err(format!("standby.notify[{i}]"), format!("unknown contact {n:?}"));
        }
    }
    StandbyConfig {
        primary_topic: s.primary_topic.clone(),
        silent_after: c.positive_duration(
            "standby.silent_after",
            s.silent_after.as_deref(),
            Duration::from_secs(180),
        ),
        notify: s.notify.clone(),
    }
}
