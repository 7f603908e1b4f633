//! The MQTT payload parser (`sources::mqtt::payload`) on arbitrary payloads.
//!
//! Input: a first line describing the sensor, then the payload bytes:
//!
//! ```text
//! json probe.temp_c ts       (format, json_path, optional timestamp path)
//! {"probe":{"temp_c":-79.8},"ts":1795420800}
//! ```
//!
//! A first line that is not such a header makes the whole input a `number` payload.
#![no_main]

use cryowatch::config::{MqttPoint, PayloadFormat};
use cryowatch::model::Quality;
use cryowatch::sources::mqtt::payload::{PayloadError, lookup, matches, parse, parse_json};
use libfuzzer_sys::fuzz_target;

fn split_path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

/// The sensor described by the header line, and the payload after it.
fn point_and_payload(data: &[u8]) -> (MqttPoint, &[u8]) {
    let number = MqttPoint {
        topic: "lab/x".into(),
        format: PayloadFormat::Number,
        json_path: None,
        timestamp_path: None,
        discrete: false,
    };
    let Some(nl) = data.iter().position(|b| *b == b'\n') else {
        return (number, data);
    };
    let Ok(header) = std::str::from_utf8(&data[..nl]) else {
        return (number, data);
    };
    let mut words = header.split(' ');
    let format = match words.next() {
        Some("json") => PayloadFormat::Json,
        Some("number") => PayloadFormat::Number,
        _ => return (number, data),
    };
    // `cryowatch check` allows paths with `format = "json"` only.
    let json = format == PayloadFormat::Json;
    let point = MqttPoint {
        topic: "lab/x".into(),
        format,
        json_path: words.next().filter(|_| json).map(split_path),
        timestamp_path: words.next().filter(|_| json).map(split_path),
        discrete: words.next() == Some("discrete"),
    };
    (point, &data[nl + 1..])
}

fuzz_target!(|data: &[u8]| {
    let (point, payload) = point_and_payload(data);
    let got = parse(&point, payload, None);

    // Every outcome reads as one line in the log.
    if let Err(e) = &got {
        assert!(!e.to_string().contains('\n'), "multi-line error {e:?}");
    }

    match &got {
        Ok(p) => {
            match p.quality {
                // A good reading always carries a finite number.
                Quality::Good => assert!(
                    p.value.is_some_and(f64::is_finite),
                    "good reading without a finite value: {p:?}"
                ),
                // An explicit null is a probe fault: no value.
                Quality::SensorFault => assert_eq!(p.value, None, "fault with a value: {p:?}"),
                other => panic!("the payload parser made a {other:?} reading"),
            }
            // The timestamp is either read or flagged, and only when asked for.
            match &point.timestamp_path {
                None => assert!(p.time.is_none() && !p.bad_timestamp, "{p:?}"),
                Some(_) => assert!(p.time.is_some() != p.bad_timestamp, "{p:?}"),
            }
        }
        Err(PayloadError::NotUtf8) => {
            assert!(point.format == PayloadFormat::Number && std::str::from_utf8(payload).is_err());
        }
        Err(_) => {}
    }

    match point.format {
        PayloadFormat::Number => {
            // Plain numbers are exactly what Rust's float parser reads.
            if let Ok(text) = std::str::from_utf8(payload) {
                let text = text.trim();
                let want = match text {
                    // Booleans are values of discrete (state) inputs only.
                    "true" if point.discrete => Some(1.0),
                    "false" if point.discrete => Some(0.0),
                    "true" | "false" => None,
                    _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
                };
                assert_eq!(got.as_ref().ok().and_then(|p| p.value), want, "{text:?}");
            }
        }
        PayloadFormat::Json => {
            // A payload shared by several sensors is parsed once and handed over: the
            // result must be the same as parsing it for this sensor alone.
            match parse_json(payload) {
                Ok(doc) => {
                    let shared = parse(&point, payload, Some(&doc));
                    assert_eq!(got, shared, "shared document differs");
                    // A number found at the path is returned unchanged.
                    let path = point.json_path.as_deref().unwrap_or_default();
                    if let Some(serde_json::Value::Number(n)) = lookup(&doc, path)
                        && let Ok(p) = &got
                    {
                        assert_eq!(p.value, n.as_f64(), "number at the path changed");
                    }
                }
                Err(e) => assert_eq!(got, Err(e)),
            }
        }
    }

    // Topic routing: a topic without wildcards matches itself as a filter, and `#`
    // matches every topic that does not start with `$`.
    if let Ok(topic) = std::str::from_utf8(payload) {
        let levels: Vec<String> = topic.split('/').map(str::to_string).collect();
        if !topic.contains(['+', '#']) {
            assert!(matches(&levels, topic), "{topic:?} does not match itself");
        }
        assert_eq!(matches(&["#".to_string()], topic), !topic.starts_with('$'), "{topic:?}");
    }
});
