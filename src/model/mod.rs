//! Plain data types shared by every stage of the pipeline. No I/O here.

use std::fmt;

mod alarm;
pub mod changes;
pub mod period;
pub use alarm::{AlarmId, AlarmState, Severity};

/// Milliseconds since the Unix epoch, UTC. Every reading is stamped with one.
pub type TimestampMs = i64;

/// How much a reading can be trusted. Stored as a small integer; `Good` is 0 so the
/// common case takes no space in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// A value read from a working probe.
    Good,
    /// The device could not be reached or answered with an error; there is no value.
    CommError,
    /// The device answered, but the value is a sentinel for a broken probe.
    SensorFault,
    /// No good reading arrived within the sensor's `stale_after`.
    Stale,
}

impl Quality {
    pub const ALL: [Quality; 4] = [Quality::Good, Quality::CommError, Quality::SensorFault, Quality::Stale];

    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::CommError => "comm_error",
            Quality::SensorFault => "sensor_fault",
            Quality::Stale => "stale",
        }
    }

    /// The code stored in the embedded store. Never renumber: it is on disk.
    pub fn code(self) -> i64 {
        match self {
            Quality::Good => 0,
            Quality::CommError => 1,
            Quality::SensorFault => 2,
            Quality::Stale => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Quality> {
        Quality::ALL.into_iter().find(|q| q.code() == code)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation of one sensor. `value` is `None` when the quality says there is no
/// value to give (a failed poll).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index of the sensor in the validated configuration.
    pub sensor: usize,
    pub time: TimestampMs,
    pub value: Option<f64>,
    pub quality: Quality,
    /// The time was stamped by the source (a payload timestamp), not on arrival: the
    /// same reading delivered twice then has the same time and is stored once.
    pub source_time: bool,
    /// Kept in the record but not believed: never evaluated by the alarm rules and never
    /// a sensor's latest value.
    pub flag: Option<Flag>,
}

/// Why a stored reading is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Stamped more than `mqtt.max_clock_skew` ahead of the daemon's clock.
    AheadOfClock,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::AheadOfClock => "ahead_of_clock",
        }
    }
}

impl Reading {
    pub fn good(sensor: usize, time: TimestampMs, value: f64) -> Reading {
        Reading {
            sensor,
            time,
            value: Some(value),
            quality: Quality::Good,
            source_time: false,
            flag: None,
        }
    }

    pub fn bad(sensor: usize, time: TimestampMs, quality: Quality) -> Reading {
        Reading {
            sensor,
            time,
            value: None,
            quality,
            source_time: false,
            flag: None,
        }
    }
}

/// The current wall-clock time in UTC milliseconds.
pub fn now_ms() -> TimestampMs {
    jiff::Timestamp::now().as_millisecond()
}

/// A duration in milliseconds, saturating at `i64::MAX` instead of wrapping. Durations
/// from the configuration are at most [`crate::config::MAX_DURATION`]; this keeps any
/// other from turning into a negative span.
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `t + d`, saturating at the end of the time line instead of wrapping into the past.
pub fn later(t: TimestampMs, d: std::time::Duration) -> TimestampMs {
    t.saturating_add(millis(d))
}

/// `t - d`, saturating at the start of the time line instead of wrapping into the future.
pub fn earlier(t: TimestampMs, d: std::time::Duration) -> TimestampMs {
    t.saturating_sub(millis(d))
}

/// A unit as people write it on a page or a report: `degC` → `°C`, `percent` → `%`;
/// anything else as configured.
pub fn unit_symbol(unit: &str) -> &str {
    match unit {
        "degC" | "C" | "celsius" => "°C",
        "degF" | "F" => "°F",
        "K" | "kelvin" => "K",
        "percent" | "pct" => "%",
        other => other,
    }
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds, e.g. `2026-11-23T08:00:00.123Z`.
pub fn format_rfc3339(ms: TimestampMs) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// `ms` in the site's time zone, for people: `2026-11-23 09:00 CET`.
pub fn site_time(ms: TimestampMs, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_codes_round_trip_and_good_is_zero() {
        for q in Quality::ALL {
            assert_eq!(Quality::from_code(q.code()), Some(q));
        }
        assert_eq!(Quality::Good.code(), 0);
        assert_eq!(Quality::from_code(99), None);
    }

    #[test]
    fn time_plus_or_minus_a_huge_duration_saturates_instead_of_wrapping() {
        let huge = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(millis(huge), i64::MAX);
        assert_eq!(later(1_000, huge), i64::MAX);
        assert_eq!(earlier(1_000, huge), 1_000 - i64::MAX);
        assert_eq!(earlier(-1_000, huge), i64::MIN);
        let minute = std::time::Duration::from_secs(60);
        assert_eq!((later(0, minute), earlier(0, minute)), (60_000, -60_000));
    }

    #[test]
    fn timestamps_format_as_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(1_795_420_800_123), "2026-11-23T08:00:00.123Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
