//! Suppression, pure: maintenance windows from the configuration and manual shelving.
//! A suppressed sensor's alarms are still raised, stored and shown; they are just not
//! escalated until the suppression ends.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::rules::{Maintenance, Window};
use crate::model::TimestampMs;

/// A manual shelving of one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Shelf {
    pub id: i64,
    pub sensor: usize,
    pub from: TimestampMs,
    pub until: TimestampMs,
    pub by: String,
    pub reason: String,
}

/// Is the window open at `now` (in the site time zone `tz`)?
pub fn window_open(window: &Window, tz: &TimeZone, now: TimestampMs) -> bool {
    open_since(window, tz, now).is_some()
}

/// The start of the window's latest opening at or before `now`, while it is open.
pub fn open_since(window: &Window, tz: &TimeZone, now: TimestampMs) -> Option<TimestampMs> {
    let ts = Timestamp::from_millisecond(now).ok()?;
    if let Window::Once { from, to } = window {
        return (*from <= ts && ts < *to).then(|| from.as_millisecond());
    }
    let (time, duration) = recurrence(window)?;
    starts(window, tz, ts, time, lookback(duration), 0)
        .take_while(|start| *start <= now)
        .filter(|start| now < crate::model::later(*start, duration))
        .last()
}

/// The first moment after `now` at which the window opens or closes (`i64::MAX` when it
/// never will again), so callers re-check a window only then.
pub fn next_change(window: &Window, tz: &TimeZone, now: TimestampMs) -> TimestampMs {
    let Ok(ts) = Timestamp::from_millisecond(now) else {
        return TimestampMs::MAX;
    };
    if let Window::Once { from, to } = window {
        return [from.as_millisecond(), to.as_millisecond()]
            .into_iter()
            .find(|t| *t > now)
            .unwrap_or(TimestampMs::MAX);
    }
    let Some((time, duration)) = recurrence(window) else {
        return TimestampMs::MAX;
    };
    let mut next = TimestampMs::MAX;
    for start in starts(window, tz, ts, time, lookback(duration), YEAR_AND_A_WEEK) {
        if start > now {
            // Later openings, and their ends, come after this one.
            return next.min(start);
        }
        let end = crate::model::later(start, duration);
        if end > now {
            next = next.min(end);
        }
    }
    next
}

/// Every recurring window opens at least once in this many days (a monthly window of
/// one month: its 1st Monday is 364 to 371 days after the last).
const YEAR_AND_A_WEEK: i64 = 373;

/// A recurring window's local time of opening and how long it stays open.
pub(crate) fn recurrence(window: &Window) -> Option<(jiff::civil::Time, std::time::Duration)> {
    match window {
        Window::Weekly { time, duration, .. }
        | Window::Daily { time, duration }
        | Window::Monthly { time, duration, .. } => Some((*time, *duration)),
        Window::Once { .. } => None,
    }
}

/// Whether a recurring window opens on the local day `day`.
pub(crate) fn opens_on(window: &Window, day: jiff::civil::Date) -> bool {
    match window {
        Window::Weekly { weekday, .. } => day.weekday() == *weekday,
        Window::Daily { .. } => true,
        Window::Monthly { day: on, months, .. } => months.contains(day.month()) && on.is(day),
        Window::Once { .. } => false,
    }
}

/// How many local days back an opening still open after `duration` can have started:
/// the duration's days and a margin for daylight-saving changes, at most a year and a
/// week (a longer window's latest opening is within it).
fn lookback(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs() / 86_400)
        .unwrap_or(i64::MAX)
        .saturating_add(2)
        .min(YEAR_AND_A_WEEK)
}

/// Starts (ms), in order, of the window's openings at `time` on the local days from
/// `back` days before `now`'s to `ahead` days after it, on the days it opens. Local
/// times are resolved in `tz`, so a window at 09:00 stays at 09:00 across
/// daylight-saving changes.
fn starts<'a>(
    window: &'a Window,
    tz: &TimeZone,
    now: Timestamp,
    time: jiff::civil::Time,
    back: i64,
    ahead: i64,
) -> impl Iterator<Item = TimestampMs> + 'a {
    let today = now.to_zoned(tz.clone()).date();
    let tz = tz.clone();
    (-back..=ahead).filter_map(move |offset| {
        let day = today.checked_add(offset.days()).ok()?;
        if !opens_on(window, day) {
            return None;
        }
        Some(
            day.to_datetime(time)
                .to_zoned(tz.clone())
                .ok()?
                .timestamp()
                .as_millisecond(),
        )
    })
}

/// Why `sensor` is suppressed at `now`, if it is: the first shelving or window found.
pub fn reason(
    sensor: usize,
    now: TimestampMs,
    windows: &[Maintenance],
    shelves: &[Shelf],
    tz: &TimeZone,
) -> Option<String> {
    if let Some(s) = shelves
        .iter()
        .find(|s| s.sensor == sensor && s.from <= now && now < s.until)
    {
        return Some(format!("shelved by {}: {}", s.by, s.reason));
    }
    windows
        .iter()
        .find(|m| m.sensors.contains(&sensor) && window_open(&m.window, tz, now))
        .map(|m| format!("maintenance {}: {}", m.id, m.reason))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::civil::{Time, Weekday};

    use super::*;
    use crate::config::rules::{MonthDay, Months};

    fn ms(s: &str) -> TimestampMs {
        s.parse::<Timestamp>().expect("time").as_millisecond()
    }

    fn chicago() -> TimeZone {
        TimeZone::get("America/Chicago").expect("tz")
    }

    #[test]
    fn a_weekly_window_opens_on_its_day_in_the_site_time_zone() {
        let w = Window::Weekly {
            weekday: Weekday::Tuesday,
            time: Time::constant(9, 0, 0, 0),
            duration: Duration::from_secs(45 * 60),
        };
        // Tue 2026-11-24 09:00 America/Chicago is 15:00 UTC.
        assert!(!window_open(&w, &chicago(), ms("2026-11-24T14:59:00Z")));
        assert!(window_open(&w, &chicago(), ms("2026-11-24T15:00:00Z")));
        assert!(window_open(&w, &chicago(), ms("2026-11-24T15:44:59Z")));
        assert!(!window_open(&w, &chicago(), ms("2026-11-24T15:45:00Z")));
        assert!(!window_open(&w, &chicago(), ms("2026-11-25T15:10:00Z")), "Wednesday");
        // In July (daylight saving) 09:00 local is 14:00 UTC.
        assert!(window_open(&w, &chicago(), ms("2026-07-07T14:10:00Z")));
    }

    #[test]
    fn the_next_change_is_the_next_opening_or_closing() {
        let w = Window::Weekly {
            weekday: Weekday::Tuesday,
            time: Time::constant(9, 0, 0, 0),
            duration: Duration::from_secs(45 * 60),
        };
        let tz = chicago();
        assert_eq!(
            next_change(&w, &tz, ms("2026-11-23T12:00:00Z")),
            ms("2026-11-24T15:00:00Z")
        );
        assert_eq!(
            next_change(&w, &tz, ms("2026-11-24T15:00:00Z")),
            ms("2026-11-24T15:45:00Z")
        );
        assert_eq!(
            next_change(&w, &tz, ms("2026-11-24T15:45:00Z")),
            ms("2026-12-01T15:00:00Z")
        );
        let once = Window::Once {
            from: "2026-12-01T08:00:00Z".parse().expect("t"),
            to: "2026-12-01T10:00:00Z".parse().expect("t"),
        };
        assert_eq!(next_change(&once, &tz, ms("2026-12-01T11:00:00Z")), TimestampMs::MAX);
    }

    #[test]
    fn open_since_names_the_start_of_the_current_opening() {
        let w = Window::Daily {
            time: Time::constant(10, 0, 0, 0),
            duration: Duration::from_secs(600),
        };
        let tz = TimeZone::UTC;
        assert_eq!(
            open_since(&w, &tz, ms("2026-11-24T10:05:00Z")),
            Some(ms("2026-11-24T10:00:00Z"))
        );
        assert_eq!(open_since(&w, &tz, ms("2026-11-24T10:10:00Z")), None);
    }

    #[test]
    fn a_daily_window_crossing_midnight_is_open_after_midnight() {
        let w = Window::Daily {
            time: Time::constant(23, 30, 0, 0),
            duration: Duration::from_secs(3600),
        };
        assert!(window_open(&w, &TimeZone::UTC, ms("2026-11-24T00:15:00Z")));
        assert!(!window_open(&w, &TimeZone::UTC, ms("2026-11-24T00:31:00Z")));
    }

    #[test]
    fn a_one_off_window_is_open_between_from_and_to() {
        let w = Window::Once {
            from: "2026-12-01T08:00:00Z".parse().expect("t"),
            to: "2026-12-01T10:00:00Z".parse().expect("t"),
        };
        assert!(window_open(&w, &TimeZone::UTC, ms("2026-12-01T09:00:00Z")));
        assert!(!window_open(&w, &TimeZone::UTC, ms("2026-12-01T10:00:00Z")));
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").expect("tz")
    }

    fn quarterly(day: MonthDay, first: i8, time: Time) -> Window {
        Window::Monthly {
            day,
            months: Months::of([first, first + 3, first + 6, first + 9]),
            time,
            duration: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_quarterly_window_opens_on_its_first_monday_and_next_change_crosses_the_year() {
        // 1st Monday of Jan, Apr, Jul, Oct at 10:00 Berlin: 2026-10-05 (summer time,
        // 08:00 UTC), then 2027-01-04 (winter time, 09:00 UTC).
        let w = quarterly(MonthDay::Nth(1, Weekday::Monday), 1, Time::constant(10, 0, 0, 0));
        let tz = berlin();
        assert_eq!(open_since(&w, &tz, ms("2026-10-05T07:59:59Z")), None);
        assert_eq!(
            open_since(&w, &tz, ms("2026-10-05T08:00:00Z")),
            Some(ms("2026-10-05T08:00:00Z"))
        );
        assert_eq!(
            open_since(&w, &tz, ms("2026-10-05T08:59:59Z")),
            Some(ms("2026-10-05T08:00:00Z"))
        );
        assert_eq!(open_since(&w, &tz, ms("2026-10-05T09:00:00Z")), None);
        assert_eq!(open_since(&w, &tz, ms("2026-10-12T08:30:00Z")), None, "2nd Monday");
        assert_eq!(open_since(&w, &tz, ms("2026-11-02T09:30:00Z")), None, "not in November");
        assert_eq!(
            next_change(&w, &tz, ms("2026-10-05T08:30:00Z")),
            ms("2026-10-05T09:00:00Z")
        );
        assert_eq!(
            next_change(&w, &tz, ms("2026-10-05T09:00:00Z")),
            ms("2027-01-04T09:00:00Z")
        );
        assert_eq!(
            open_since(&w, &tz, ms("2027-01-04T09:10:00Z")),
            Some(ms("2027-01-04T09:00:00Z"))
        );
    }

    #[test]
    fn a_window_stays_at_its_local_time_through_the_daylight_saving_week() {
        let tz = berlin();
        // Summer time begins on Sunday 2026-03-29: 10:00 is 09:00 UTC before, 08:00 after.
        let weekly = Window::Weekly {
            weekday: Weekday::Sunday,
            time: Time::constant(10, 0, 0, 0),
            duration: Duration::from_secs(3600),
        };
        assert_eq!(
            next_change(&weekly, &tz, ms("2026-03-23T00:00:00Z")),
            ms("2026-03-29T08:00:00Z")
        );
        let last_sunday = Window::Monthly {
            day: MonthDay::Last(Weekday::Sunday),
            months: Months::of([3]),
            time: Time::constant(10, 0, 0, 0),
            duration: Duration::from_secs(3600),
        };
        assert!(
            !window_open(&last_sunday, &tz, ms("2026-03-22T09:30:00Z")),
            "not the last Sunday"
        );
        assert!(
            !window_open(&last_sunday, &tz, ms("2026-03-29T09:00:00Z")),
            "09:00 UTC is 11:00 local"
        );
        assert_eq!(
            open_since(&last_sunday, &tz, ms("2026-03-29T08:30:00Z")),
            Some(ms("2026-03-29T08:00:00Z"))
        );
        // The last day of each quarter at 17:00: 15:00 UTC in March, 16:00 UTC in December,
        // and from New Year's Eve the next opening is next March's.
        let quarter_end = quarterly(MonthDay::LastDay, 3, Time::constant(17, 0, 0, 0));
        assert_eq!(
            open_since(&quarter_end, &tz, ms("2026-03-31T15:00:00Z")),
            Some(ms("2026-03-31T15:00:00Z"))
        );
        assert_eq!(
            open_since(&quarter_end, &tz, ms("2026-12-31T16:20:00Z")),
            Some(ms("2026-12-31T16:00:00Z"))
        );
        assert_eq!(
            next_change(&quarter_end, &tz, ms("2026-12-31T16:20:00Z")),
            ms("2026-12-31T17:00:00Z")
        );
        assert_eq!(
            next_change(&quarter_end, &tz, ms("2026-12-31T17:00:00Z")),
            ms("2027-03-31T15:00:00Z")
        );
    }

    #[test]
    fn a_window_longer_than_two_weeks_is_still_open_at_its_end() {
        let w = Window::Monthly {
            day: MonthDay::Day(1),
            months: Months::ALL,
            time: Time::constant(0, 0, 0, 0),
            duration: Duration::from_secs(20 * 86_400),
        };
        assert_eq!(
            open_since(&w, &TimeZone::UTC, ms("2026-07-20T12:00:00Z")),
            Some(ms("2026-07-01T00:00:00Z"))
        );
        assert_eq!(
            next_change(&w, &TimeZone::UTC, ms("2026-07-20T12:00:00Z")),
            ms("2026-07-21T00:00:00Z")
        );
        assert!(!window_open(&w, &TimeZone::UTC, ms("2026-07-25T00:00:00Z")));
    }

    #[test]
    fn a_shelf_suppresses_its_sensor_until_it_expires() {
        let s = Shelf {
            id: 1,
            sensor: 2,
            from: 100,
            until: 200,
            by: "alice".into(),
            reason: "probe swap".into(),
        };
        let tz = TimeZone::UTC;
        let shelves = std::slice::from_ref(&s);
        assert_eq!(
            reason(2, 150, &[], shelves, &tz).as_deref(),
            Some("shelved by alice: probe swap")
        );
        assert_eq!(reason(2, 200, &[], shelves, &tz), None);
        assert_eq!(reason(1, 150, &[], shelves, &tz), None);
    }
}
