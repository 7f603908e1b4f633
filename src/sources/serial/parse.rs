//! From bytes on the line to readings, without I/O: splitting the received bytes into
//! lines, an answer line into a sensor's reading, an unsolicited line into an event's.

use crate::config::{Query, SerialEvent};
use crate::model::{Quality, Reading, TimestampMs};

/// The longest line kept; a line that never ends is cut here so noise cannot grow the
/// buffer without bound.
const MAX_LINE: usize = 4096;

/// Collects received bytes and hands out complete lines. A line ends at the last byte
/// of the device's line ending (`\r` or `\n`); line-ending characters around a line
/// are dropped and empty lines skipped, so `"\r\n"` endings work with `"\r"` too.
#[derive(Debug)]
pub struct Lines {
    end: u8,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(line_ending: &[u8]) -> Lines {
        Lines {
            end: line_ending.last().copied().unwrap_or(b'\r'),
            buf: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_LINE && !self.buf.contains(&self.end) {
            self.buf.drain(..self.buf.len() - MAX_LINE);
        }
    }

    /// The next complete, non-empty line, as text (invalid UTF-8 replaced).
    pub fn next_line(&mut self) -> Option<String> {
        while let Some(at) = self.buf.iter().position(|b| *b == self.end) {
            let line: Vec<u8> = self.buf.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_matches(|c| c == '\r' || c == '\n');
            if !text.is_empty() {
                return Some(text.to_string());
            }
        }
        None
    }

    /// Forgets what has been received and not yet read as a line.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// What an answer line says, or `None` for no answer in time: the value scaled
/// (`good`), a fault pattern matched (`sensor_fault`), or nothing readable
/// (`comm_error`). Fault patterns are tried first.
pub fn answer(line: Option<&str>, q: &Query) -> (Option<f64>, Quality) {
    let Some(line) = line else {
        return (None, Quality::CommError);
    };
    if q.fault_patterns.iter().any(|f| f.is_match(line)) {
        return (None, Quality::SensorFault);
    }
    let value = q
        .pattern
        .captures(line)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().trim().parse::<f64>().ok())
        .map(|raw| raw * q.scale + q.offset)
        .filter(|v| v.is_finite());
    match value {
        Some(v) => (Some(v), Quality::Good),
        None => (None, Quality::CommError),
    }
}

/// The reading of `sensor` from its answer line (`None`: no answer in time).
pub fn reading(sensor: usize, time: TimestampMs, line: Option<&str>, q: &Query) -> Reading {
    match answer(line, q) {
        (Some(v), Quality::Good) => Reading::good(sensor, time, v),
        (_, quality) => Reading::bad(sensor, time, quality),
    }
}

/// What an unsolicited line means to the device's events.
#[derive(Debug, PartialEq)]
pub enum Unsolicited {
    /// A reading of the event's sensor.
    Reading(Reading),
    /// An event pattern matched, but its first group is none of `values`.
    UnknownValue { sensor: usize, text: String },
    /// No event pattern matched.
    Unmatched,
}

/// Matches `line` against `events` in order; the first that matches decides.
pub fn event(line: &str, events: &[SerialEvent], time: TimestampMs) -> Unsolicited {
    for e in events {
        let Some(c) = e.pattern.captures(line) else { continue };
        let text = c.get(1).map_or("", |m| m.as_str());
        return match e.values.iter().find(|(k, _)| k == text) {
            Some((_, v)) => Unsolicited::Reading(Reading::good(e.sensor, time, *v)),
            None => Unsolicited::UnknownValue {
                sensor: e.sensor,
                text: text.to_string(),
            },
        };
    }
    Unsolicited::Unmatched
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    fn query() -> Query {
        Query {
            bytes: b"004 TEMPA?\r".to_vec(),
            pattern: Regex::new(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$").expect("pattern"),
            fault_patterns: vec![Regex::new(r"^\s*ERR").expect("fault pattern")],
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn fill() -> SerialEvent {
        SerialEvent {
            device: 0,
            pattern: Regex::new("^004 EVT FILL (START|END)").expect("event pattern"),
            sensor: 7,
            values: vec![("START".into(), 1.0), ("END".into(), 0.0)],
        }
    }

    #[test]
    fn a_number_matching_the_pattern_is_a_good_reading() {
        assert_eq!(answer(Some("-197.10"), &query()), (Some(-197.1), Quality::Good));
        assert_eq!(answer(Some("  -5 "), &query()), (Some(-5.0), Quality::Good));
    }

    #[test]
    fn scale_and_offset_apply_to_the_raw_value() {
        let q = Query {
            scale: 0.1,
            offset: -273.15,
            ..query()
        };
        let (v, quality) = answer(Some("761"), &q);
        assert_eq!(quality, Quality::Good);
        assert!((v.unwrap_or_default() - (76.1 - 273.15)).abs() < 1e-9);
    }

    #[test]
    fn a_fault_pattern_match_is_a_sensor_fault() {
        assert_eq!(answer(Some("ERR 3"), &query()), (None, Quality::SensorFault));
    }

    #[test]
    fn a_garbled_or_missing_answer_is_a_comm_error() {
        assert_eq!(answer(Some("#?%!x"), &query()), (None, Quality::CommError));
        assert_eq!(answer(Some("-197.1.2"), &query()), (None, Quality::CommError));
        assert_eq!(answer(None, &query()), (None, Quality::CommError));
    }

    #[test]
    fn a_group_that_is_not_a_number_is_a_comm_error() {
        let q = Query {
            pattern: Regex::new("^T=(.*)$").expect("pattern"),
            ..query()
        };
        assert_eq!(answer(Some("T=abc"), &q), (None, Quality::CommError));
        assert_eq!(answer(Some("T=-1.5"), &q), (Some(-1.5), Quality::Good));
    }

    #[test]
    fn a_readings_quality_follows_its_answer() {
        let r = reading(3, 1000, Some("-196.5"), &query());
        assert_eq!(
            (r.sensor, r.time, r.value, r.quality),
            (3, 1000, Some(-196.5), Quality::Good)
        );
        let r = reading(3, 1000, None, &query());
        assert_eq!((r.value, r.quality), (None, Quality::CommError));
    }

    #[test]
    fn an_event_line_maps_its_group_through_values() {
        let events = [fill()];
        assert_eq!(
            event("004 EVT FILL START", &events, 5),
            Unsolicited::Reading(Reading::good(7, 5, 1.0))
        );
        assert_eq!(
            event("004 EVT FILL END", &events, 6),
            Unsolicited::Reading(Reading::good(7, 6, 0.0))
        );
    }

    #[test]
    fn an_event_with_an_unknown_value_or_no_match_is_reported_as_such() {
        let events = [SerialEvent {
            pattern: Regex::new("^004 EVT FILL ([A-Z]+)").expect("pattern"),
            ..fill()
        }];
        assert_eq!(
            event("004 EVT FILL PAUSE", &events, 5),
            Unsolicited::UnknownValue {
                sensor: 7,
                text: "PAUSE".into()
            }
        );
        assert_eq!(event("002 EVT FILL START", &events, 5), Unsolicited::Unmatched);
    }

    #[test]
    fn lines_are_split_at_the_line_ending_and_empty_ones_skipped() {
        let mut l = Lines::new(b"\r");
        l.push(b"-197.10\r\n004 EVT");
        assert_eq!(l.next_line().as_deref(), Some("-197.10"));
        assert_eq!(l.next_line(), None);
        l.push(b" FILL START\r");
        assert_eq!(l.next_line().as_deref(), Some("004 EVT FILL START"));
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn crlf_lines_split_at_the_newline() {
        let mut l = Lines::new(b"\r\n");
        l.push(b"12.5\r\n\r\n13\r\n");
        assert_eq!(l.next_line().as_deref(), Some("12.5"));
        assert_eq!(l.next_line().as_deref(), Some("13"));
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn a_line_that_never_ends_is_cut_to_the_longest_line() {
        let mut l = Lines::new(b"\r");
        l.push(&vec![b'x'; 3 * MAX_LINE]);
        l.push(b"\r");
        assert_eq!(l.next_line().map(|s| s.len()), Some(MAX_LINE));
    }
}
