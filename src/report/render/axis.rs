//! Time axis ticks on round local times of the site's zone.
//!
//! Ticks fall on whole local minutes, hours, days, Mondays or months (so across a DST
//! change an "every 6 hours" axis still reads 00:00, 06:00, 12:00), and each label
//! carries the date only where the date changes.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Minutes(i64),
    Hours(i64),
    Days(i64),
    Weeks(i64),
    Months(i64),
}

const STEPS: [Step; 20] = [
    Step::Minutes(1),
    Step::Minutes(2),
    Step::Minutes(5),
    Step::Minutes(10),
    Step::Minutes(15),
    Step::Minutes(30),
    Step::Hours(1),
    Step::Hours(2),
    Step::Hours(3),
    Step::Hours(6),
    Step::Hours(12),
    Step::Days(1),
    Step::Days(2),
    Step::Weeks(1),
    Step::Weeks(2),
    Step::Months(1),
    Step::Months(2),
    Step::Months(3),
    Step::Months(6),
    Step::Months(12),
];

impl Step {
    fn approx_ms(self) -> i64 {
        match self {
            Step::Minutes(n) => n * MINUTE_MS,
            Step::Hours(n) => n * HOUR_MS,
            Step::Days(n) => n * DAY_MS,
            Step::Weeks(n) => n * 7 * DAY_MS,
            Step::Months(n) => n * 30 * DAY_MS,
        }
    }

    /// The smallest step giving at most `max_ticks` ticks over `span_ms`.
    fn choose(span_ms: i64, max_ticks: i64) -> Step {
        let max_ticks = max_ticks.max(1);
        STEPS
            .into_iter()
            .find(|step| span_ms / step.approx_ms() <= max_ticks)
            .unwrap_or_else(|| {
                let years = span_ms / Step::Months(12).approx_ms();
                Step::Months(12 * (years / max_ticks + 1))
            })
    }

    fn times(self, k: i64) -> Result<Span, jiff::Error> {
        match self {
            Step::Minutes(n) => Span::new().try_minutes(n * k),
            Step::Hours(n) => Span::new().try_hours(n * k),
            Step::Days(n) => Span::new().try_days(n * k),
            Step::Weeks(n) => Span::new().try_weeks(n * k),
            Step::Months(n) => Span::new().try_months(n * k),
        }
    }

    /// The last round time of this step at or before `dt`.
    fn floor(self, dt: DateTime) -> Result<DateTime, jiff::Error> {
        let date = dt.date();
        Ok(match self {
            Step::Minutes(n) => {
                let m = i64::from(dt.minute());
                date.at(dt.hour(), i8::try_from(m - m % n).unwrap_or(0), 0, 0)
            }
            Step::Hours(n) => {
                let h = i64::from(dt.hour());
                date.at(i8::try_from(h - h % n).unwrap_or(0), 0, 0, 0)
            }
            Step::Days(_) => date.at(0, 0, 0, 0),
            Step::Weeks(_) => {
                let back = Span::new().try_days(date.weekday().to_monday_zero_offset())?;
                date.checked_sub(back)?.at(0, 0, 0, 0)
            }
            Step::Months(n) => {
                let m0 = i64::from(date.month()) - 1;
                let month = i8::try_from(m0 - m0 % n.min(12) + 1).unwrap_or(1);
                Date::new(date.year(), month, 1)?.at(0, 0, 0, 0)
            }
        })
    }
}

/// Ticks for `from..=to` in `tz`: at most about `max_ticks` of them, each with its label.
pub(crate) fn ticks(from: i64, to: i64, tz: &TimeZone, max_ticks: i64) -> Vec<(i64, String)> {
    let step = Step::choose(to.saturating_sub(from), max_ticks);
    let times = tick_times(step, from, to, tz).unwrap_or_default();
    let mut labels = Vec::with_capacity(times.len());
    let mut previous: Option<jiff::Zoned> = None;
    for ms in times {
        let Ok(ts) = Timestamp::from_millisecond(ms) else {
            continue;
        };
        let z = ts.to_zoned(tz.clone());
        let new_day = previous.as_ref().is_none_or(|p| p.date() != z.date());
        let new_year = previous.as_ref().is_none_or(|p| p.year() != z.year());
        let format = match step {
            Step::Minutes(_) | Step::Hours(_) if new_day => "%d %b %H:%M",
            Step::Minutes(_) | Step::Hours(_) => "%H:%M",
            Step::Days(_) | Step::Weeks(_) if new_year => "%d %b %Y",
            Step::Days(_) | Step::Weeks(_) => "%d %b",
            Step::Months(_) => "%b %Y",
        };
        labels.push((ms, z.strftime(format).to_string()));
        previous = Some(z);
    }
    labels
}

fn tick_times(step: Step, from: i64, to: i64, tz: &TimeZone) -> Result<Vec<i64>, jiff::Error> {
    let start = Timestamp::from_millisecond(from)?.to_zoned(tz.clone());
    let anchor = step.floor(start.datetime())?;
    let mut out: Vec<i64> = Vec::new();
    for k in 0..10_000 {
        let Ok(dt) = anchor.checked_add(step.times(k)?) else {
            break;
        };
        let ms = tz.to_zoned(dt)?.timestamp().as_millisecond();
        if ms > to {
            break;
        }
        // A DST change can map two local times to one instant, or skip one.
        if ms >= from && out.last().is_none_or(|&last| ms > last) {
            out.push(ms);
        }
    }
    Ok(out)
}

/// A label for any instant, for values that are not ticks.
pub(crate) fn format_instant(ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// The zone's name for the axis title: its IANA name, or its UTC offset at `at_ms`.
pub(crate) fn zone_name(tz: &TimeZone, at_ms: i64) -> String {
    if let Some(name) = tz.iana_name() {
        return name.to_string();
    }
    match Timestamp::from_millisecond(at_ms) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("UTC%:z").to_string(),
        Err(_) => "UTC".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str, tz: &TimeZone) -> i64 {
        let dt: DateTime = s.parse().expect("test datetime");
        tz.to_zoned(dt).expect("valid local time").timestamp().as_millisecond()
    }

    #[test]
    fn a_day_is_labelled_at_round_local_hours() {
        let tz = TimeZone::get("Europe/Berlin").expect("bundled tzdb");
        let from = ms("2025-03-10T00:00", &tz);
        let to = ms("2025-03-11T00:00", &tz);
        let t = ticks(from, to, &tz, 8);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "10 Mar 00:00",
                "03:00",
                "06:00",
                "09:00",
                "12:00",
                "15:00",
                "18:00",
                "21:00",
                "11 Mar 00:00"
            ]
        );
    }

    #[test]
    fn ticks_stay_on_local_hours_across_a_dst_change() {
        let tz = TimeZone::get("Europe/Berlin").expect("bundled tzdb");
        let from = ms("2025-03-29T00:00", &tz);
        let to = ms("2025-04-01T00:00", &tz);
        let t = ticks(from, to, &tz, 8);
        assert!(
            t.iter().all(|(_, l)| l.ends_with("00:00") || l.ends_with("12:00")),
            "{t:?}"
        );
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_year_is_labelled_by_month() {
        let tz = TimeZone::UTC;
        let t = ticks(ms("2024-01-01T00:00", &tz), ms("2025-01-01T00:00", &tz), &tz, 7);
        assert_eq!(t.first().map(|(_, l)| l.as_str()), Some("Jan 2024"));
        assert!(t.len() <= 7, "{t:?}");
        assert_eq!(zone_name(&tz, 0), "UTC");
    }
}
