//! InfluxDB v2: the points cryowatch writes and how a write's answer is classified.
//!
//! Points are serialised to line protocol by `sink::line` (escaped by InfluxDB 2.x's
//! rules). The request goes through the HTTP client the rest of cryowatch uses, which
//! keeps a refusal's status, body and `Retry-After` (a server answering 429 or 503 says
//! when to come back).
//!
//! Schema (see the README):
//! - `cryo_reading`, tags `site asset sensor quantity unit`, fields `value` (float,
//!   absent when the reading has none) and `quality` (string).
//! - `cryo_alarm`, tags `site asset sensor rule severity event`, fields `alarm`
//!   (integer), `state`, `actor`, `comment`, `text` (strings) and `value` (float).
//! - `cryo_threshold`, tags `site asset sensor rule kind severity`, field `threshold`.

use std::time::Duration;

use super::line::Point;
use crate::config::{Config, InfluxConfig, Precision};
use crate::model::TimestampMs;
use crate::store::mirror::{Queued, QueuedEvent};

pub const READING: &str = "cryo_reading";
pub const ALARM: &str = "cryo_alarm";
pub const THRESHOLD: &str = "cryo_threshold";

/// The tags of one sensor's readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorTags {
    pub site: String,
    pub asset: String,
    pub sensor: String,
    pub quantity: String,
    pub unit: String,
}

impl SensorTags {
    /// Tags of a configured sensor; `None` when the sensor is not in the configuration.
    pub fn of(config: &Config, sensor: &str) -> Option<SensorTags> {
        let s = config.sensors.iter().find(|s| s.id == sensor)?;
        Some(SensorTags {
            site: config.site.name.clone(),
            asset: config.assets.get(s.asset).map(|a| a.id.clone()).unwrap_or_default(),
            sensor: s.id.clone(),
            quantity: s.quantity.clone(),
            unit: s.unit.clone(),
        })
    }
}

/// A point's timestamp in the configured precision. In nanoseconds, the reading's
/// `seq` (readings of one sensor in the same millisecond) is added so that they stay
/// distinct points; in milliseconds they overwrite each other in InfluxDB.
pub fn timestamp(t: TimestampMs, seq: i64, precision: Precision) -> i64 {
    match precision {
        Precision::Milliseconds => t,
        Precision::Nanoseconds => t.saturating_mul(1_000_000).saturating_add(seq.clamp(0, 999_999)),
    }
}

/// A stored reading as a `cryo_reading` point.
pub fn reading_point(t: &SensorTags, r: &Queued, precision: Precision) -> Point {
    let mut p = Point::new(READING, timestamp(r.t, r.seq, precision))
        .tag("site", &t.site)
        .tag("asset", &t.asset)
        .tag("sensor", &t.sensor)
        .tag("quantity", &t.quantity)
        .tag("unit", &t.unit)
        .string("quality", r.quality.as_str());
    if let Some(v) = r.value {
        p = p.float("value", v);
    }
    p
}

/// An alarm transition as a `cryo_alarm` point. `asset` and `unit` come from the
/// configuration (empty when the sensor is no longer configured).
pub fn alarm_point(site: &str, asset: &str, unit: &str, e: &QueuedEvent, precision: Precision) -> Point {
    let ev = &e.event;
    let sensor = ev.sensor.as_deref().unwrap_or("");
    let severity = ev.severity.as_deref().unwrap_or("");
    let rule = ev.rule.as_deref().unwrap_or("");
    // Two transitions in one millisecond stay apart in nanosecond precision.
    let mut p = Point::new(ALARM, timestamp(ev.t, e.id % 1_000_000, precision))
        .tag("site", site)
        .tag("asset", asset)
        .tag("sensor", sensor)
        .tag("rule", rule)
        .tag("severity", severity)
        .tag("event", &ev.kind);
    if let Some(id) = ev.alarm {
        p = p.int("alarm", id);
    }
    if let Some(v) = ev.value {
        p = p.float("value", v);
    }
    let mut text = format!("{} {}", severity.to_uppercase(), ev.kind);
    if !sensor.is_empty() {
        text.push_str(&format!(": {sensor}"));
    }
    if let Some(v) = ev.value.filter(|v| v.is_finite()) {
        text.push_str(&format!(" {v} {unit}"));
    }
    if !rule.is_empty() {
        text.push_str(&format!(" (rule {rule})"));
    }
    if !ev.actor.is_empty() && ev.actor != "cryowatch" {
        text.push_str(&format!(" by {}", ev.actor));
    }
    if !ev.comment.is_empty() {
        text.push_str(&format!(": {}", ev.comment));
    }
    p.string("state", &ev.state)
        .string("actor", &ev.actor)
        .string("comment", &ev.comment)
        .string("text", text.trim())
}

/// The `high`/`low` thresholds of every raising rule as `cryo_threshold` points at `t`.
pub fn threshold_points(config: &Config, t: TimestampMs, precision: Precision) -> Vec<Point> {
    use crate::config::rules::Condition;
    config
        .rules
        .iter()
        .filter(|r| r.raises)
        .filter_map(|r| {
            let (kind, threshold) = match r.condition {
                Condition::High { threshold, .. } => ("high", threshold),
                Condition::Low { threshold, .. } => ("low", threshold),
                _ => return None,
            };
            let sensor = config.sensors.get(r.sensor)?;
            let asset = config.assets.get(sensor.asset).map(|a| a.id.as_str()).unwrap_or("");
            Some(
                Point::new(THRESHOLD, timestamp(t, 0, precision))
                    .tag("site", &config.site.name)
                    .tag("asset", asset)
                    .tag("sensor", &sensor.id)
                    .tag("rule", &r.id)
                    .tag("kind", kind)
                    .tag("severity", r.severity.as_str())
                    .float("threshold", threshold),
            )
        })
        .collect()
}

/// What became of one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: InfluxDB has the points.
    Written,
    /// Not reached, 429 or 5xx: try the same batch again, after `after` if the server
    /// said so.
    Retry { after: Option<Duration>, reason: String },
    /// 413: the batch is too large; send it in smaller parts.
    TooLarge { reason: String },
    /// 401, 403, 404: credentials or destination refused. Every batch would meet the
    /// same answer: keep the data, warn, and try again later.
    Refused { status: u16, reason: String },
    /// Any other 4xx: this batch's content is refused; retrying cannot help.
    Rejected { status: u16, reason: String },
}

/// Writes line protocol to InfluxDB v2's `/api/v2/write`.
pub struct Writer {
    client: reqwest::Client,
    url: String,
    token: String,
    query: [(&'static str, String); 3],
}

/// The InfluxDB client cannot be set up (an unusable `ca_file`, no TLS provider).
#[derive(Debug, thiserror::Error)]
#[error("InfluxDB client: {0}")]
pub struct SetupError(String);

impl Writer {
    /// A client trusting the system store and `influx.ca_file`.
    pub fn new(cfg: &InfluxConfig) -> Result<Writer, SetupError> {
        let trust = crate::tls::Trust::load(cfg.ca_file.as_deref()).map_err(|e| SetupError(format!("ca_file {e}")))?;
        let client = trust
            .http_client()
            .map_err(SetupError)?
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("cryowatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(crate::http::chain(&e)))?;
        Ok(Writer {
            client,
            url: format!("{}/api/v2/write", cfg.url),
            token: cfg.token.0.clone(),
            query: [
                ("org", cfg.org.clone()),
                ("bucket", cfg.bucket.clone()),
                ("precision", cfg.precision.as_str().to_string()),
            ],
        })
    }

    pub async fn write(&self, body: Vec<u8>) -> Outcome {
        let sent = self
            .client
            .post(&self.url)
            .query(&self.query)
            .header("Authorization", format!("Token {}", self.token))
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("InfluxDB not reached: {}", crate::http::failure_text(e)),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, crate::model::now_ms()));
        let influx_error = response
            .headers()
            .get("X-Influxdb-Error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = crate::http::read_limited(&mut response, 2048).await.unwrap_or_default();
        let mut reason = format!("HTTP {status}");
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if !text.is_empty() {
            reason.push_str(": ");
            reason.push_str(&text.chars().take(500).collect::<String>());
        }
        if let Some(e) = influx_error.filter(|e| !text.contains(e.as_str())) {
            reason.push_str(&format!(" ({e})"));
        }
        classify(status, retry_after, reason)
    }
}

/// Telegraf's v2 output classes: 2xx written; 413 split; 429 and 5xx retry (honouring
/// `Retry-After`); 401/403 (and 404, a missing org or bucket) refused; other 4xx reject
/// the batch.
pub fn classify(status: u16, retry_after: Option<Duration>, reason: String) -> Outcome {
    match status {
        200..=299 => Outcome::Written,
        413 => Outcome::TooLarge { reason },
        401 | 403 | 404 => Outcome::Refused { status, reason },
        408 | 429 | 500..=599 => Outcome::Retry {
            after: retry_after,
            reason,
        },
        400..=499 => Outcome::Rejected { status, reason },
        _ => Outcome::Retry { after: None, reason },
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date. Absurd waits are capped at an hour.
pub fn parse_retry_after(v: &str, now: TimestampMs) -> Option<Duration> {
    let v = v.trim();
    let wait = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp().as_millisecond();
        Duration::from_millis(at.saturating_sub(now).max(0) as u64)
    };
    Some(wait.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quality;
    use crate::sink::line::line;

    fn tags_of() -> SensorTags {
        SensorTags {
            site: "Lab B".into(),
            asset: "dewar-1".into(),
            sensor: "dewar-1.temp".into(),
            quantity: "temperature".into(),
            unit: "degC".into(),
        }
    }

    #[test]
    fn a_reading_is_one_escaped_line_with_its_seq_in_the_nanoseconds() {
        let r = Queued {
            id: 1,
            sensor: 1,
            t: 1_700_000_000_123,
            seq: 2,
            value: Some(-190.25),
            quality: Quality::Good,
        };
        let p = reading_point(&tags_of(), &r, Precision::Nanoseconds);
        assert_eq!(
            line(&p),
            "cryo_reading,asset=dewar-1,quantity=temperature,sensor=dewar-1.temp,site=Lab\\ B,unit=degC quality=\"good\",value=-190.25 1700000000123000002\n"
        );
        let p = reading_point(&tags_of(), &r, Precision::Milliseconds);
        assert!(line(&p).ends_with(" 1700000000123\n"));
    }

    #[test]
    fn a_reading_without_a_finite_value_keeps_its_quality_only() {
        for value in [None, Some(f64::NAN), Some(f64::INFINITY)] {
            let r = Queued {
                id: 1,
                sensor: 1,
                t: 5,
                seq: 0,
                value,
                quality: Quality::CommError,
            };
            let got = line(&reading_point(&tags_of(), &r, Precision::Milliseconds));
            assert!(got.contains(" quality=\"comm_error\" 5\n"), "{got}");
            assert!(!got.contains("value="), "{got}");
        }
    }

    #[test]
    fn an_alarm_transition_carries_a_readable_text() {
        let e = QueuedEvent {
            id: 7,
            event: crate::store::alarms::EventRow {
                t: 10,
                alarm: Some(3),
                rule: Some("dewar-1-warm".into()),
                sensor: Some("dewar-1.temp".into()),
                kind: "acknowledged".into(),
                state: "acknowledged".into(),
                severity: Some("critical".into()),
                value: Some(-140.5),
                actor: "alice".into(),
                comment: "lid \"closed\"".into(),
            },
        };
        let got = line(&alarm_point("Lab", "dewar-1", "degC", &e, Precision::Nanoseconds));
        assert!(got.starts_with("cryo_alarm,asset=dewar-1,event=acknowledged,rule=dewar-1-warm,sensor=dewar-1.temp,severity=critical,site=Lab "), "{got}");
        assert!(got.contains("alarm=3i"), "{got}");
        assert!(
            got.contains(
                r#"text="CRITICAL acknowledged: dewar-1.temp -140.5 degC (rule dewar-1-warm) by alice: lid \"closed\"""#
            ),
            "{got}"
        );
        assert!(got.ends_with(" 10000007\n"), "{got}");
    }

    #[test]
    fn answers_are_classified_as_telegraf_does() {
        let r = || "x".to_string();
        assert_eq!(classify(204, None, r()), Outcome::Written);
        assert!(matches!(classify(413, None, r()), Outcome::TooLarge { .. }));
        for s in [401, 403, 404] {
            assert!(matches!(classify(s, None, r()), Outcome::Refused { .. }), "{s}");
        }
        for s in [400, 422, 406] {
            assert!(matches!(classify(s, None, r()), Outcome::Rejected { .. }), "{s}");
        }
        let wait = Some(Duration::from_secs(7));
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(
                classify(s, wait, r()),
                Outcome::Retry {
                    after: wait,
                    reason: r()
                }
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("30", 0), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("999999", 0), Some(Duration::from_secs(3600)));
        let now = jiff::Timestamp::from_second(1_700_000_000)
            .expect("ts")
            .as_millisecond();
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:15:00 GMT", now),
            Some(Duration::from_secs(100))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
