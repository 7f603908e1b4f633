//! The site's calendar: the month a moment belongs to, the months of a period, the hour
//! of day, and the occurrences of a `[[test_page]]` schedule in a period.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

use crate::config::rules::Window;
use crate::model::TimestampMs;

fn zoned(ms: TimestampMs, tz: &TimeZone) -> Option<jiff::Zoned> {
    Timestamp::from_millisecond(ms).ok().map(|t| t.to_zoned(tz.clone()))
}

/// `YYYY-MM` of `ms` in `tz` (`?` for a time that cannot be represented).
pub(super) fn month_of(ms: TimestampMs, tz: &TimeZone) -> String {
    zoned(ms, tz).map_or_else(|| "?".into(), |z| format!("{:04}-{:02}", z.year(), z.month()))
}

/// The hour of day of `ms` in `tz`.
pub(super) fn hour_of(ms: TimestampMs, tz: &TimeZone) -> Option<u8> {
    zoned(ms, tz).and_then(|z| u8::try_from(z.hour()).ok())
}

/// The months that `from..to` touches, in order.
pub(super) fn months(from: TimestampMs, to: TimestampMs, tz: &TimeZone) -> Vec<String> {
    let (Some(a), Some(b)) = (zoned(from, tz), zoned(to.saturating_sub(1).max(from), tz)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut d = a.date().first_of_month();
    let last = b.date().first_of_month();
    while d <= last {
        out.push(format!("{:04}-{:02}", d.year(), d.month()));
        match d.checked_add(1.month()) {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    out
}

/// The first moment of the month `back` months before the month of `now` in `tz` (0:
/// this month's); `now` itself if that cannot be represented.
pub fn months_back(now: TimestampMs, back: i32, tz: &TimeZone) -> TimestampMs {
    zoned(now, tz)
        .and_then(|z| z.date().first_of_month().checked_sub(back.months()).ok())
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map_or(now, |z| z.timestamp().as_millisecond())
}

/// The span of month `YYYY-MM` in `tz`: its first moment and the next month's.
pub(super) fn month_span(month: &str, tz: &TimeZone) -> Option<(TimestampMs, TimestampMs)> {
    let (y, m) = month.split_once('-')?;
    let first = jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, 1).ok()?;
    let next = first.checked_add(1.month()).ok()?;
    let at = |d: Date| -> Option<TimestampMs> { Some(d.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond()) };
    Some((at(first)?, at(next)?))
}

/// The start of every occurrence of `window` in `from..to`, in order. A one-off window
/// occurs once, at its start.
pub(super) fn occurrences(window: &Window, tz: &TimeZone, from: TimestampMs, to: TimestampMs) -> Vec<TimestampMs> {
    if let Window::Once { from: start, .. } = window {
        let t = start.as_millisecond();
        return if (from..to).contains(&t) { vec![t] } else { Vec::new() };
    }
    let Some((time, _)) = crate::alarm::suppress::recurrence(window) else {
        return Vec::new();
    };
    let (Some(a), Some(b)) = (zoned(from, tz), zoned(to, tz)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // From the day before, so a start just after `from` on a shifted day is not missed.
    let mut day: Option<Date> = a.date().checked_sub(1.day()).ok();
    while let Some(d) = day.filter(|d| *d <= b.date()) {
        if crate::alarm::suppress::opens_on(window, d)
            && let Ok(start) = d.to_datetime(time).to_zoned(tz.clone())
        {
            let t = start.timestamp().as_millisecond();
            if (from..to).contains(&t) {
                out.push(t);
            }
        }
        day = d.checked_add(1.day()).ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> TimestampMs {
        s.parse::<Timestamp>().expect("time").as_millisecond()
    }

    #[test]
    fn months_are_the_sites_months() {
        let tz = TimeZone::get("Europe/Berlin").expect("zone");
        // 2026-10-31T23:30Z is already November in Berlin.
        assert_eq!(month_of(ms("2026-10-31T23:30:00Z"), &tz), "2026-11");
        assert_eq!(
            months(ms("2026-09-30T22:00:00Z"), ms("2026-11-30T23:00:00Z"), &tz),
            ["2026-10", "2026-11"]
        );
        assert_eq!(hour_of(ms("2026-10-31T23:30:00Z"), &tz), Some(0));
        assert_eq!(
            month_span("2026-11", &tz),
            Some((ms("2026-10-31T23:00:00Z"), ms("2026-11-30T23:00:00Z")))
        );
        assert_eq!(month_span("2026-13", &tz), None);
        assert_eq!(
            months_back(ms("2026-11-15T12:00:00Z"), 2, &tz),
            ms("2026-08-31T22:00:00Z")
        );
    }

    #[test]
    fn a_weekly_test_page_occurs_once_a_week_at_its_local_time() {
        let tz = TimeZone::get("Europe/Berlin").expect("zone");
        let w = Window::Weekly {
            weekday: jiff::civil::Weekday::Monday,
            time: jiff::civil::time(10, 0, 0, 0),
            duration: std::time::Duration::from_secs(3600),
        };
        // November 2026 in Berlin: Mondays 2, 9, 16, 23 and 30, at 09:00 UTC.
        let got = occurrences(&w, &tz, ms("2026-10-31T23:00:00Z"), ms("2026-11-30T23:00:00Z"));
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], ms("2026-11-02T09:00:00Z"));
        assert_eq!(got[4], ms("2026-11-30T09:00:00Z"));
    }
}
