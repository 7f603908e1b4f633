//! Who is on call, pure: daily and weekly rotations that hand off at a local time in the
//! site time zone (so a 08:00 handoff stays at 08:00 across daylight-saving changes),
//! and overrides that take precedence.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::notify::{Rotation, Schedule};

/// The first rotation period starts at the first handoff on or after this date.
const EPOCH: Date = jiff::civil::date(2024, 1, 1);

/// The contact on call for `schedule` at `now`.
pub fn on_call<'a>(schedule: &'a Schedule, tz: &TimeZone, now: Timestamp) -> Option<&'a str> {
    if let Some(o) = schedule.overrides.iter().find(|o| o.from <= now && now < o.to) {
        return Some(&o.contact);
    }
    if schedule.members.is_empty() {
        return None;
    }
    let period = period_index(schedule, tz, now)?;
    let n = schedule.members.len() as i64;
    schedule.members.get(period.rem_euclid(n) as usize).map(String::as_str)
}

/// How many handoffs have happened between the epoch and `now`.
fn period_index(schedule: &Schedule, tz: &TimeZone, now: Timestamp) -> Option<i64> {
    let local = now.to_zoned(tz.clone());
    let today = local.date();
    // The last handoff day on or before today, and whether today's handoff time passed.
    let (step_days, handoff_day) = match (schedule.rotation, schedule.handoff_day) {
        (Rotation::Weekly, Some(day)) => {
            let back = (today.weekday().to_monday_zero_offset() - day.to_monday_zero_offset()).rem_euclid(7);
            (7, today.checked_sub((back as i64).days()).ok()?)
        }
        _ => (1, today),
    };
    let handoff_at = |d: Date| -> Option<Timestamp> {
        DateTime::from_parts(d, schedule.handoff_time)
            .to_zoned(tz.clone())
            .ok()
            .map(|z| z.timestamp())
    };
    let mut last = handoff_day;
    if handoff_at(last)? > now {
        last = last.checked_sub(step_days.days()).ok()?;
    }
    let epoch = match (schedule.rotation, schedule.handoff_day) {
        (Rotation::Weekly, Some(day)) => {
            let ahead = (day.to_monday_zero_offset() - EPOCH.weekday().to_monday_zero_offset()).rem_euclid(7);
            EPOCH.checked_add((ahead as i64).days()).ok()?
        }
        _ => EPOCH,
    };
    let days = (last - epoch).get_days() as i64;
    Some(days.div_euclid(step_days))
}

#[cfg(test)]
mod tests {
    use jiff::civil::{Time, Weekday};

    use super::*;
    use crate::config::notify::Override;

    fn weekly() -> Schedule {
        Schedule {
            id: "s".into(),
            rotation: Rotation::Weekly,
            handoff_day: Some(Weekday::Monday),
            handoff_time: Time::constant(8, 0, 0, 0),
            members: vec!["alice".into(), "bob".into()],
            overrides: vec![],
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn chicago() -> TimeZone {
        TimeZone::get("America/Chicago").expect("tz")
    }

    #[test]
    fn a_weekly_rotation_hands_off_on_its_day_and_time() {
        let s = weekly();
        let tz = chicago();
        let before = on_call(&s, &tz, at("2026-11-23T13:59:00Z")); // Mon 07:59 CST
        let after = on_call(&s, &tz, at("2026-11-23T14:00:00Z")); // Mon 08:00 CST
        assert_ne!(before, after);
        assert_eq!(after, on_call(&s, &tz, at("2026-11-29T20:00:00Z")), "same week");
        assert_eq!(before, on_call(&s, &tz, at("2026-11-30T14:00:00Z")), "next week back");
    }

    #[test]
    fn the_handoff_stays_at_local_time_across_a_dst_change() {
        let s = weekly();
        let tz = chicago();
        // DST ends Sun 2026-11-01: Monday 2026-11-02 08:00 CST is 14:00 UTC, the Monday
        // before (CDT) 08:00 was 13:00 UTC.
        assert_ne!(
            on_call(&s, &tz, at("2026-11-02T13:30:00Z")),
            on_call(&s, &tz, at("2026-11-02T14:00:00Z")),
            "07:30 CST is before the handoff"
        );
        assert_ne!(
            on_call(&s, &tz, at("2026-10-26T12:59:00Z")),
            on_call(&s, &tz, at("2026-10-26T13:00:00Z")),
            "08:00 CDT is 13:00 UTC"
        );
    }

    #[test]
    fn a_daily_rotation_changes_every_day() {
        let mut s = weekly();
        s.rotation = Rotation::Daily;
        s.handoff_day = None;
        let tz = TimeZone::UTC;
        let a = on_call(&s, &tz, at("2026-11-23T09:00:00Z"));
        let b = on_call(&s, &tz, at("2026-11-24T09:00:00Z"));
        let c = on_call(&s, &tz, at("2026-11-25T07:00:00Z"));
        assert_ne!(a, b);
        assert_eq!(b, c, "before the handoff it is still yesterday's person");
    }

    #[test]
    fn an_override_wins_while_it_lasts() {
        let mut s = weekly();
        s.overrides.push(Override {
            contact: "carol".into(),
            from: at("2026-12-24T23:00:00Z"),
            to: at("2026-12-26T14:00:00Z"),
        });
        let tz = chicago();
        assert_eq!(on_call(&s, &tz, at("2026-12-25T12:00:00Z")), Some("carol"));
        assert_ne!(on_call(&s, &tz, at("2026-12-26T14:00:00Z")), Some("carol"));
    }
}
