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
    match window {
        Window::Once { from, to } => (*from <= ts && ts < *to).then(|| from.as_millisecond()),
        Window::Weekly {
            weekday,
            time,
            duration,
        } => recent_starts(tz, ts, *time, |d| d.weekday() == *weekday)
            .filter(|start| now < crate::model::later(*start, *duration))
            .max(),
        Window::Daily { time, duration } => recent_starts(tz, ts, *time, |_| true)
            .filter(|start| now < crate::model::later(*start, *duration))
            .max(),
    }
}

/// The first moment after `now` at which the window opens or closes (`i64::MAX` when it
/// never will again), so callers re-check a window only then.
pub fn next_change(window: &Window, tz: &TimeZone, now: TimestampMs) -> TimestampMs {
    let Ok(ts) = Timestamp::from_millisecond(now) else {
        return TimestampMs::MAX;
    };
    let (time, duration, weekday) = match window {
        Window::Once { from, to } => {
            return [from.as_millisecond(), to.as_millisecond()]
                .into_iter()
                .find(|t| *t > now)
                .unwrap_or(TimestampMs::MAX);
        }
        Window::Weekly {
            weekday,
            time,
            duration,
        } => (*time, *duration, Some(*weekday)),
        Window::Daily { time, duration } => (*time, *duration, None),
    };
    let today = ts.to_zoned(tz.clone()).date();
    let dur = crate::model::millis(duration);
    (-15i64..=8)
        .filter_map(|offset| {
            let day = today.checked_add(offset.days()).ok()?;
            if weekday.is_some_and(|w| day.weekday() != w) {
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
        .flat_map(|start| [start, start.saturating_add(dur)])
        .filter(|t| *t > now)
        .min()
        .unwrap_or(TimestampMs::MAX)
}

/// Starts (ms) of the windows on the last 15 local days at `time` that are not after
/// `now`, for days that `keep` accepts. Local times are resolved in `tz`, so a window at
/// 09:00 stays at 09:00 across daylight-saving changes.
fn recent_starts(
    tz: &TimeZone,
    now: Timestamp,
    time: jiff::civil::Time,
    keep: impl Fn(jiff::civil::Date) -> bool,
) -> impl Iterator<Item = i64> {
    let today = now.to_zoned(tz.clone()).date();
    let tz = tz.clone();
    (0..15i64).filter_map(move |back| {
        let day = today.checked_sub(back.days()).ok()?;
        if !keep(day) {
            return None;
        }
        let start = day.to_datetime(time).to_zoned(tz.clone()).ok()?.timestamp();
        (start <= now).then(|| start.as_millisecond())
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
