//! Review periods: weeks (Monday to Monday), months and quarters in the site's time
//! zone, each named the way people write it (`2026-W48`, `2026-11`, `2026-Q4`).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::TimestampMs;

/// How often a periodic review falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Weekly,
    Monthly,
    Quarterly,
}

impl Every {
    pub const ALL: [&'static str; 3] = ["weekly", "monthly", "quarterly"];

    pub fn parse(s: &str) -> Option<Every> {
        match s {
            "weekly" => Some(Every::Weekly),
            "monthly" => Some(Every::Monthly),
            "quarterly" => Some(Every::Quarterly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Every::Weekly => "weekly",
            Every::Monthly => "monthly",
            Every::Quarterly => "quarterly",
        }
    }
}

/// One period: its name and its bounds (from inclusive, to exclusive), in UTC
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub label: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
}

/// The first day of the period that contains `day`.
fn start_of(every: Every, day: Date) -> Date {
    match every {
        Every::Weekly => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            day.checked_sub(back.days()).unwrap_or(day)
        }
        Every::Monthly => day.first_of_month(),
        Every::Quarterly => {
            let month = (day.month() - 1) / 3 * 3 + 1;
            Date::new(day.year(), month, 1).unwrap_or(day)
        }
    }
}

/// The first day of the period after the one starting on `start`.
fn next_start(every: Every, start: Date) -> Option<Date> {
    let step = match every {
        Every::Weekly => 1.week(),
        Every::Monthly => 1.month(),
        Every::Quarterly => 3.months(),
    };
    start.checked_add(step).ok()
}

fn label(every: Every, start: Date) -> String {
    match every {
        Every::Weekly => {
            let week = start.iso_week_date();
            format!("{:04}-W{:02}", week.year(), week.week())
        }
        Every::Monthly => format!("{:04}-{:02}", start.year(), start.month()),
        Every::Quarterly => format!("{:04}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
    }
}

/// Midnight at the start of `day` in `tz` (the first instant of the day where a
/// time-zone change skips midnight).
fn midnight(day: Date, tz: &TimeZone) -> Option<TimestampMs> {
    day.to_zoned(tz.clone()).ok().map(|z| z.timestamp().as_millisecond())
}

fn period(every: Every, start: Date, tz: &TimeZone) -> Option<Period> {
    let end = next_start(every, start)?;
    Some(Period {
        label: label(every, start),
        from: midnight(start, tz)?,
        to: midnight(end, tz)?,
    })
}

/// The period that contains `t`; `None` only outside the calendar's range.
pub fn containing(every: Every, t: TimestampMs, tz: &TimeZone) -> Option<Period> {
    let day = Timestamp::from_millisecond(t).ok()?.to_zoned(tz.clone()).date();
    period(every, start_of(every, day), tz)
}

/// The period right after `p`.
pub fn after(every: Every, p: &Period, tz: &TimeZone) -> Option<Period> {
    containing(every, p.to, tz)
}

/// The last period that has ended at `now`.
pub fn last_ended(every: Every, now: TimestampMs, tz: &TimeZone) -> Option<Period> {
    let current = containing(every, now, tz)?;
    containing(every, current.from.checked_sub(1)?, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> TimestampMs {
        s.parse::<Timestamp>().expect("time").as_millisecond()
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").expect("tz")
    }

    #[test]
    fn a_month_runs_from_the_sites_midnight_on_the_first_to_the_next_first() {
        let p = containing(Every::Monthly, ms("2026-11-15T12:00:00Z"), &berlin()).expect("period");
        assert_eq!(p.label, "2026-11");
        assert_eq!(p.from, ms("2026-10-31T23:00:00Z"));
        assert_eq!(p.to, ms("2026-11-30T23:00:00Z"));
        // The last second of November in Berlin is still November; midnight is December.
        assert_eq!(
            containing(Every::Monthly, ms("2026-11-30T22:59:59Z"), &berlin()).map(|p| p.label),
            Some("2026-11".into())
        );
        assert_eq!(
            containing(Every::Monthly, ms("2026-11-30T23:00:00Z"), &berlin()).map(|p| p.label),
            Some("2026-12".into())
        );
    }

    #[test]
    fn the_last_ended_period_is_the_one_before_the_current() {
        let tz = berlin();
        let p = last_ended(Every::Monthly, ms("2026-12-01T00:00:00Z"), &tz).expect("period");
        assert_eq!(p.label, "2026-11");
        let p = last_ended(Every::Monthly, ms("2026-11-30T22:59:59Z"), &tz).expect("period");
        assert_eq!(p.label, "2026-10");
        // October has 31 days and ends at the change back to winter time (25 hours on
        // the 25th): its bounds are the two midnights all the same.
        assert_eq!(p.from, ms("2026-09-30T22:00:00Z"));
        assert_eq!(p.to, ms("2026-10-31T23:00:00Z"));
    }

    #[test]
    fn weeks_run_monday_to_monday_and_are_named_by_iso_week() {
        let tz = TimeZone::UTC;
        // 2026-12-07 is a Monday.
        let p = containing(Every::Weekly, ms("2026-12-09T10:00:00Z"), &tz).expect("period");
        assert_eq!(p.label, "2026-W50");
        assert_eq!(p.from, ms("2026-12-07T00:00:00Z"));
        assert_eq!(p.to, ms("2026-12-14T00:00:00Z"));
        // The week of 2027-01-01 (a Friday) is week 53 of 2026.
        let p = containing(Every::Weekly, ms("2027-01-01T10:00:00Z"), &tz).expect("period");
        assert_eq!(p.label, "2026-W53");
        assert_eq!(after(Every::Weekly, &p, &tz).map(|p| p.label), Some("2027-W01".into()));
    }

    #[test]
    fn quarters_start_in_january_april_july_and_october() {
        let tz = TimeZone::UTC;
        let p = containing(Every::Quarterly, ms("2026-11-15T00:00:00Z"), &tz).expect("period");
        assert_eq!(p.label, "2026-Q4");
        assert_eq!(p.from, ms("2026-10-01T00:00:00Z"));
        assert_eq!(p.to, ms("2027-01-01T00:00:00Z"));
        assert_eq!(
            after(Every::Quarterly, &p, &tz).map(|p| p.label),
            Some("2027-Q1".into())
        );
    }
}
