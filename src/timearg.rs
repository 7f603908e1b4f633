//! Time arguments of the command line: RFC 3339, relative (`-24h`, `+10m`) or `now`.

use crate::model::TimestampMs;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "cannot read time {0:?}: expected RFC 3339 (2026-11-23T08:00:00Z), a date (2026-11-23), relative (-24h, -30m; at most 1000y) or now"
)]
pub struct BadTime(pub String);

/// Parses `text` relative to `now`; a bare date is midnight UTC.
pub fn parse(text: &str, now: TimestampMs) -> Result<TimestampMs, BadTime> {
    parse_in(text, now, &jiff::tz::TimeZone::UTC)
}

/// Parses `text` relative to `now`; a bare date is midnight in `tz` (reports, whose days
/// are the site's days).
pub fn parse_in(text: &str, now: TimestampMs, tz: &jiff::tz::TimeZone) -> Result<TimestampMs, BadTime> {
    let t = text.trim();
    let bad = || BadTime(text.to_string());
    if t == "now" {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix('-').or_else(|| t.strip_prefix('+')) {
        let d = crate::config::parse_duration(rest).map_err(|_| bad())?;
        let ms = crate::model::millis(d);
        let at = if t.starts_with('-') {
            now.checked_sub(ms)
        } else {
            now.checked_add(ms)
        };
        return at.ok_or_else(bad);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if t.len() == 10
        && let Ok(date) = t.parse::<jiff::civil::Date>()
    {
        return date
            .to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|_| bad());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_795_420_800_000; // 2026-11-23T08:00:00Z

    #[test]
    fn absolute_relative_and_now_are_understood() {
        assert_eq!(parse("now", NOW), Ok(NOW));
        assert_eq!(parse("-24h", NOW), Ok(NOW - 86_400_000));
        assert_eq!(parse("+30m", NOW), Ok(NOW + 1_800_000));
        assert_eq!(parse("2026-11-23T08:00:00Z", 0), Ok(NOW));
        assert_eq!(parse("2026-11-23T02:00:00-06:00", 0), Ok(NOW));
        assert_eq!(parse("2026-11-23", 0), Ok(NOW - 8 * 3_600_000));
    }

    /// What the README says of `report` and `oncall`: a bare date is the site's
    /// midnight, not UTC's.
    #[test]
    fn a_bare_date_is_midnight_in_the_zone_given() {
        let chicago = jiff::tz::TimeZone::get("America/Chicago").expect("zone");
        // 2026-11-23 00:00 CST is 06:00 UTC.
        assert_eq!(parse_in("2026-11-23", 0, &chicago), Ok(NOW - 2 * 3_600_000));
        assert_eq!(
            parse_in("2026-11-23", 0, &jiff::tz::TimeZone::UTC),
            parse("2026-11-23", 0)
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_text() {
        assert_eq!(parse("yesterday", NOW), Err(BadTime("yesterday".into())));
        assert!(parse("-", NOW).is_err());
        assert!(parse("-500000000y", NOW).is_err(), "longer than any duration accepted");
        assert!(parse("+1000y", i64::MAX - 1).is_err(), "past the end of the time line");
        assert!(
            parse("2026-11-22T00:00:00", NOW).is_err(),
            "a time without offset is ambiguous"
        );
    }
}
