//! Payload parsing and topic routing for the MQTT source. Pure functions.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::{MqttPoint, PayloadFormat};
use crate::model::{Quality, TimestampMs};

/// Why a payload gave no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload {0:?} is not a number")]
    NotANumber(String),
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("no value at json_path {0:?}")]
    MissingPath(String),
    #[error("value at json_path {path:?} is not a number: {found}")]
    WrongType { path: String, found: String },
}

/// A parsed value: a number, or an explicit "no value" (`null`) meaning a probe fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub value: Option<f64>,
    pub quality: Quality,
    /// Time from the payload, when `timestamp_path` is set and holds one.
    pub time: Option<TimestampMs>,
    /// Set when `timestamp_path` is configured but the payload's timestamp is unusable.
    pub bad_timestamp: bool,
}

/// Parses a payload for one sensor. `json` is the already-parsed document when the
/// payload is shared by several sensors.
pub fn parse(point: &MqttPoint, payload: &[u8], json: Option<&Value>) -> Result<Parsed, PayloadError> {
    match point.format {
        PayloadFormat::Number => {
            let text = std::str::from_utf8(payload).map_err(|_| PayloadError::NotUtf8)?.trim();
            let value = match text {
                "true" | "false" if !point.discrete => {
                    return Ok(Parsed {
                        value: None,
                        quality: Quality::SensorFault,
                        time: None,
                        bad_timestamp: false,
                    });
                }
                "true" => 1.0,
                "false" => 0.0,
                _ => text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| PayloadError::NotANumber(shorten(text)))?,
            };
            Ok(Parsed {
                value: Some(value),
                quality: Quality::Good,
                time: None,
                bad_timestamp: false,
            })
        }
        PayloadFormat::Json => {
            let owned;
            let doc = match json {
                Some(d) => d,
                None => {
                    owned = parse_json(payload)?;
                    &owned
                }
            };
            let path = point.json_path.as_deref().unwrap_or_default();
            let found = lookup(doc, path).ok_or_else(|| PayloadError::MissingPath(path.join(".")))?;
            let (value, quality) = match found {
                Value::Null => (None, Quality::SensorFault),
                Value::Bool(b) if point.discrete => (Some(f64::from(u8::from(*b))), Quality::Good),
                // true/false where a measurement belongs: the sender is not reading the
                // probe, so it is a probe fault, never a good 1 or 0.
                Value::Bool(_) => (None, Quality::SensorFault),
                Value::Number(n) => match n.as_f64() {
                    Some(v) if v.is_finite() => (Some(v), Quality::Good),
                    _ => {
                        return Err(PayloadError::WrongType {
                            path: path.join("."),
                            found: n.to_string(),
                        });
                    }
                },
                Value::String(s) => match s.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => (Some(v), Quality::Good),
                    _ => {
                        // As JSON, like every other value: a line break in the text
                        // stays an escape, so the log line stays one line.
                        return Err(PayloadError::WrongType {
                            path: path.join("."),
                            found: shorten(&found.to_string()),
                        });
                    }
                },
                other => {
                    return Err(PayloadError::WrongType {
                        path: path.join("."),
                        found: shorten(&other.to_string()),
                    });
                }
            };
            let (time, bad_timestamp) = match &point.timestamp_path {
                None => (None, false),
                Some(tp) => match lookup(doc, tp).and_then(timestamp) {
                    Some(t) => (Some(t), false),
                    None => (None, true),
                },
            };
            Ok(Parsed {
                value,
                quality,
                time,
                bad_timestamp,
            })
        }
    }
}

pub fn parse_json(payload: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(payload).map_err(|e| PayloadError::NotJson(e.to_string()))
}

fn shorten(s: &str) -> String {
    if s.len() <= 40 {
        return s.to_string();
    }
    let mut end = 40;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Follows a dotted path; numeric segments index arrays.
pub fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// RFC 3339 text, or epoch seconds / milliseconds (values above 10^11 are taken as ms).
/// A time outside what can be represented (before year -9999 or after 9999, e.g. epoch
/// `1e300`) is no time at all: `None`, like unreadable text.
pub fn timestamp(v: &Value) -> Option<TimestampMs> {
    let ms = match v {
        Value::String(s) => return s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond()),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() || f < 0.0 {
                return None;
            }
            if f > 1e11 { f.round() } else { (f * 1000.0).round() }
        }
        _ => return None,
    };
    // Checked: `as` would saturate 1e300 to i64::MAX, a time nothing can add to.
    let max = jiff::Timestamp::MAX.as_millisecond() as f64;
    if ms > max {
        return None;
    }
    jiff::Timestamp::from_millisecond(ms as i64)
        .ok()
        .map(|t| t.as_millisecond())
}

/// Maps a message's topic to the sensors subscribed to it.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Vec<usize>>,
    wildcard: Vec<(Vec<String>, usize)>,
}

impl Router {
    pub fn new(points: &[(usize, &MqttPoint)]) -> Router {
        let mut r = Router::default();
        for (sensor, p) in points {
            if p.topic.contains(['+', '#']) {
                r.wildcard
                    .push((p.topic.split('/').map(str::to_string).collect(), *sensor));
            } else {
                r.exact.entry(p.topic.clone()).or_default().push(*sensor);
            }
        }
        r
    }

    /// The distinct filters to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        let mut f: Vec<String> = self
            .exact
            .keys()
            .cloned()
            .chain(self.wildcard.iter().map(|(l, _)| l.join("/")))
            .collect();
        f.sort();
        f.dedup();
        f
    }

    pub fn route(&self, topic: &str, out: &mut Vec<usize>) {
        out.clear();
        if let Some(s) = self.exact.get(topic) {
            out.extend(s);
        }
        if !self.wildcard.is_empty() {
            for (filter, sensor) in &self.wildcard {
                if matches(filter, topic) {
                    out.push(*sensor);
                }
            }
        }
    }
}

/// MQTT filter matching; topics starting with `$` are not matched by wildcards at the
/// first level, as the MQTT specification says.
pub fn matches(filter: &[String], topic: &str) -> bool {
    if topic.starts_with('$') && filter.first().is_some_and(|f| f == "+" || f == "#") {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter {
        match f.as_str() {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            lit => {
                if levels.next() != Some(lit) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(format: PayloadFormat, path: Option<&str>, ts: Option<&str>) -> MqttPoint {
        let split = |s: &str| s.split('.').map(str::to_string).collect();
        MqttPoint {
            topic: "t".into(),
            format,
            json_path: path.map(split),
            timestamp_path: ts.map(split),
            discrete: false,
        }
    }

    #[test]
    fn numbers_parse_and_garbage_is_refused() {
        let p = point(PayloadFormat::Number, None, None);
        assert_eq!(parse(&p, b" -80.5\n", None).map(|x| x.value), Ok(Some(-80.5)));
        assert_eq!(parse(&p, b"abc", None), Err(PayloadError::NotANumber("abc".into())));
        assert!(matches!(parse(&p, b"NaN", None), Err(PayloadError::NotANumber(_))));
        assert_eq!(parse(&p, &[0xff, 0xfe], None), Err(PayloadError::NotUtf8));
    }

    #[test]
    fn json_paths_reach_nested_objects_and_array_items() {
        let p = point(PayloadFormat::Json, Some("sensors.1.value"), None);
        let got = parse(&p, br#"{"sensors":[{"value":1},{"value":-79.8}]}"#, None).expect("parses");
        assert_eq!(got.value, Some(-79.8));
        let missing = point(PayloadFormat::Json, Some("probe.temp_c"), None);
        assert_eq!(
            parse(&missing, br#"{"probe":{}}"#, None),
            Err(PayloadError::MissingPath("probe.temp_c".into()))
        );
        assert!(matches!(
            parse(&missing, br#"{"x":"#, None),
            Err(PayloadError::NotJson(_))
        ));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/mqtt_payload.rs): a string value holding a
    /// line break was logged as two lines.
    #[test]
    fn a_string_that_is_not_a_number_is_reported_on_one_line() {
        let p = point(PayloadFormat::Json, Some("v"), None);
        let err = parse(&p, br#"{"v":"\nu1615"}"#, None).expect_err("not a number");
        assert_eq!(err.to_string(), r#"value at json_path "v" is not a number: "\nu1615""#);
    }

    #[test]
    fn a_null_value_is_a_sensor_fault() {
        let p = point(PayloadFormat::Json, Some("probe.temp_c"), None);
        let got = parse(&p, br#"{"probe":{"temp_c":null,"fault":"open"}}"#, None).expect("parses");
        assert_eq!((got.value, got.quality), (None, Quality::SensorFault));
    }

    #[test]
    fn timestamps_are_read_as_rfc3339_seconds_or_milliseconds() {
        let p = point(PayloadFormat::Json, Some("v"), Some("ts"));
        let t = |doc: &[u8]| parse(&p, doc, None).expect("parses").time;
        assert_eq!(
            t(br#"{"v":1,"ts":"2026-11-23T08:00:00.123Z"}"#),
            Some(1_795_420_800_123)
        );
        assert_eq!(t(br#"{"v":1,"ts":1795420800.5}"#), Some(1_795_420_800_500));
        assert_eq!(t(br#"{"v":1,"ts":1795420800123}"#), Some(1_795_420_800_123));
        let bad = parse(&p, br#"{"v":1,"ts":"yesterday"}"#, None).expect("value still parses");
        assert!(bad.bad_timestamp && bad.time.is_none());
    }

    #[test]
    fn a_timestamp_that_cannot_be_represented_is_no_time_not_the_end_of_time() {
        let p = point(PayloadFormat::Json, Some("v"), Some("ts"));
        for doc in [
            &br#"{"v":1,"ts":1e300}"#[..],
            br#"{"v":1,"ts":9.2e18}"#,
            br#"{"v":1,"ts":-1e300}"#,
            br#"{"v":1,"ts":"+10000-01-01T00:00:00Z"}"#,
        ] {
            let r = parse(&p, doc, None).expect("value still parses");
            assert!(
                r.bad_timestamp && r.time.is_none(),
                "{}: {r:?}",
                String::from_utf8_lossy(doc)
            );
        }
        let far = parse(&p, br#"{"v":1,"ts":"2099-01-01T00:00:00Z"}"#, None).expect("parses");
        assert_eq!(far.time, Some(4_070_908_800_000), "far ahead but representable: kept");
    }

    #[test]
    fn wildcards_match_like_the_mqtt_specification() {
        let f = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        assert!(matches(&f("lab/+/telemetry"), "lab/freezer-7/telemetry"));
        assert!(!matches(&f("lab/+/telemetry"), "lab/freezer-7/x/telemetry"));
        assert!(matches(&f("lab/#"), "lab/a/b"));
        assert!(matches(&f("lab/#"), "lab"));
        assert!(!matches(&f("+/x"), "$SYS/x"));
        assert!(!matches(&f("a/b"), "a/b/c"));
    }

    #[test]
    fn the_router_sends_one_topic_to_every_sensor_on_it() {
        let a = MqttPoint {
            topic: "lab/f7".into(),
            format: PayloadFormat::Number,
            json_path: None,
            timestamp_path: None,
            discrete: false,
        };
        let b = MqttPoint {
            topic: "lab/+".into(),
            format: PayloadFormat::Number,
            json_path: None,
            timestamp_path: None,
            discrete: false,
        };
        let r = Router::new(&[(3, &a), (5, &b)]);
        let mut out = Vec::new();
        r.route("lab/f7", &mut out);
        assert_eq!(out, vec![3, 5]);
        r.route("lab/f9", &mut out);
        assert_eq!(out, vec![5]);
        r.route("other", &mut out);
        assert!(out.is_empty());
        assert_eq!(r.filters(), vec!["lab/+".to_string(), "lab/f7".to_string()]);
    }
}
