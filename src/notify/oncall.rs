//! Who is on call, pure: daily and weekly rotations that hand off at a local time in the
//! site time zone (so a 08:00 handoff stays at 08:00 across daylight-saving changes),
//! and overrides that take precedence.
//!
//! A rotation counts from its start: `members[0]` is on call from the schedule's
//! `start` until the next handoff, then `members[1]`, and so on (before the start, the
//! same order runs backwards). Without a written `start`, the rotation counts from the
//! first handoff on or after 2024-01-01 ([`start`] says which time that is).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::config::notify::{Rotation, Schedule};

/// Without a written `start`, the first rotation period starts at the first handoff on
/// or after this date.
const EPOCH: Date = jiff::civil::date(2024, 1, 1);

/// The contact on call for `schedule` at `now`.
pub fn on_call<'a>(schedule: &'a Schedule, tz: &TimeZone, now: Timestamp) -> Option<&'a str> {
    if let Some(o) = schedule.overrides.iter().find(|o| o.from <= now && now < o.to) {
        return Some(&o.contact);
    }
    rotation_member(schedule, tz, now)
}

/// The member the rotation puts on call at `now`, overrides aside.
fn rotation_member<'a>(schedule: &'a Schedule, tz: &TimeZone, now: Timestamp) -> Option<&'a str> {
    if schedule.members.is_empty() {
        return None;
    }
    let period = period_index(schedule, tz, now)?;
    let n = schedule.members.len() as i64;
    schedule.members.get(period.rem_euclid(n) as usize).map(String::as_str)
}

/// When `members[0]` is on call from: the written `start`, or the first handoff on or
/// after 2024-01-01 (in `tz`) when none is written.
pub fn start(schedule: &Schedule, tz: &TimeZone) -> Option<Timestamp> {
    match schedule.start {
        Some(t) => Some(t),
        None => handoff_at(schedule, tz, epoch_day(schedule)?),
    }
}

/// Days between handoffs.
fn step_days(schedule: &Schedule) -> i64 {
    match (schedule.rotation, schedule.handoff_day) {
        (Rotation::Weekly, Some(_)) => 7,
        _ => 1,
    }
}

/// The handoff on day `d`, in `tz`.
fn handoff_at(schedule: &Schedule, tz: &TimeZone, d: Date) -> Option<Timestamp> {
    DateTime::from_parts(d, schedule.handoff_time)
        .to_zoned(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The day of the last handoff at or before `t`.
fn last_handoff_day(schedule: &Schedule, tz: &TimeZone, t: Timestamp) -> Option<Date> {
    let today = t.to_zoned(tz.clone()).date();
    let day = match (schedule.rotation, schedule.handoff_day) {
        (Rotation::Weekly, Some(day)) => {
            let back = (today.weekday().to_monday_zero_offset() - day.to_monday_zero_offset()).rem_euclid(7);
            today.checked_sub((back as i64).days()).ok()?
        }
        _ => today,
    };
    if handoff_at(schedule, tz, day)? > t {
        day.checked_sub(step_days(schedule).days()).ok()
    } else {
        Some(day)
    }
}

/// The first handoff day on or after [`EPOCH`].
fn epoch_day(schedule: &Schedule) -> Option<Date> {
    match (schedule.rotation, schedule.handoff_day) {
        (Rotation::Weekly, Some(day)) => {
            let ahead = (day.to_monday_zero_offset() - EPOCH.weekday().to_monday_zero_offset()).rem_euclid(7);
            EPOCH.checked_add((ahead as i64).days()).ok()
        }
        _ => Some(EPOCH),
    }
}

/// How many handoffs have happened between the start and `now` (negative before it).
fn period_index(schedule: &Schedule, tz: &TimeZone, now: Timestamp) -> Option<i64> {
    let last = last_handoff_day(schedule, tz, now)?;
    let first = match schedule.start {
        Some(start) => last_handoff_day(schedule, tz, start)?,
        None => epoch_day(schedule)?,
    };
    let days = (last - first).get_days() as i64;
    Some(days.div_euclid(step_days(schedule)))
}

/// The first handoff after `t`.
fn next_handoff(schedule: &Schedule, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    let last = last_handoff_day(schedule, tz, t)?;
    let mut day = last.checked_add(step_days(schedule).days()).ok()?;
    // A handoff in a daylight-saving gap is moved later; never at or before `t`.
    for _ in 0..3 {
        match handoff_at(schedule, tz, day) {
            Some(at) if at > t => return Some(at),
            _ => day = day.checked_add(step_days(schedule).days()).ok()?,
        }
    }
    None
}

/// Who is on call at a time and who takes over next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outlook {
    /// On call at the time asked about.
    pub now: Option<String>,
    /// Whether `now` is on call through an override.
    pub now_by_override: bool,
    /// The next person on call (another contact than `now`) and from when.
    pub next: Option<String>,
    pub next_from: Option<Timestamp>,
    /// Whether `next` is on call through an override.
    pub next_by_override: bool,
}

/// The most changes looked through for the next person: a rotation of one member with
/// overrides of that same member has none.
const MAX_CHANGES: usize = 400;

/// Who is on call for `schedule` at `at`, and who is next and from when.
pub fn outlook(schedule: &Schedule, tz: &TimeZone, at: Timestamp) -> Outlook {
    let by_override = |t: Timestamp| schedule.overrides.iter().any(|o| o.from <= t && t < o.to);
    let now = on_call(schedule, tz, at).map(str::to_string);
    let mut out = Outlook {
        now_by_override: by_override(at),
        now: now.clone(),
        next: None,
        next_from: None,
        next_by_override: false,
    };
    let mut t = at;
    for _ in 0..MAX_CHANGES {
        // The next moment the answer may change: a handoff, or an override's start or end.
        let boundaries = schedule.overrides.iter().flat_map(|o| [o.from, o.to]);
        let Some(change) = next_handoff(schedule, tz, t)
            .into_iter()
            .chain(boundaries)
            .filter(|b| *b > t)
            .min()
        else {
            break;
        };
        let who = on_call(schedule, tz, change).map(str::to_string);
        if who != now {
            out.next = who;
            out.next_from = Some(change);
            out.next_by_override = by_override(change);
            break;
        }
        t = change;
    }
    out
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
            start: None,
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

    #[test]
    fn a_written_start_puts_the_first_member_on_call_from_then() {
        let mut s = weekly();
        s.members = vec!["alice".into(), "bob".into(), "carol".into()];
        let tz = chicago();
        // Wednesday 2026-11-25 12:00 CST: alice from then, bob from Monday 08:00.
        s.start = Some(at("2026-11-25T18:00:00Z"));
        assert_eq!(on_call(&s, &tz, at("2026-11-25T18:00:00Z")), Some("alice"));
        assert_eq!(on_call(&s, &tz, at("2026-11-30T13:59:00Z")), Some("alice"));
        assert_eq!(on_call(&s, &tz, at("2026-11-30T14:00:00Z")), Some("bob"));
        assert_eq!(on_call(&s, &tz, at("2026-12-07T14:00:00Z")), Some("carol"));
        assert_eq!(on_call(&s, &tz, at("2026-12-14T14:00:00Z")), Some("alice"));
        // Before the start the same order runs backwards.
        assert_eq!(on_call(&s, &tz, at("2026-11-23T13:00:00Z")), Some("carol"));
    }

    #[test]
    fn without_a_start_the_implied_one_is_the_first_handoff_of_2024() {
        let s = weekly();
        let tz = chicago();
        let start = start(&s, &tz).expect("a start");
        assert_eq!(start, at("2024-01-01T14:00:00Z"), "Monday 2024-01-01 08:00 CST");
        assert_eq!(on_call(&s, &tz, start), Some("alice"));
        let mut written = s.clone();
        written.start = Some(start);
        for t in ["2026-11-23T13:59:00Z", "2026-11-23T14:00:00Z", "2027-03-15T12:00:00Z"] {
            assert_eq!(on_call(&s, &tz, at(t)), on_call(&written, &tz, at(t)), "{t}");
        }
    }

    #[test]
    fn the_outlook_names_who_is_next_and_from_when_overrides_included() {
        let mut s = weekly();
        s.start = Some(at("2026-11-23T14:00:00Z"));
        s.overrides.push(Override {
            contact: "carol".into(),
            from: at("2026-11-26T14:00:00Z"),
            to: at("2026-11-27T14:00:00Z"),
        });
        let tz = chicago();
        let o = outlook(&s, &tz, at("2026-11-24T12:00:00Z"));
        assert_eq!(o.now.as_deref(), Some("alice"));
        assert_eq!(o.next.as_deref(), Some("carol"));
        assert_eq!(o.next_from, Some(at("2026-11-26T14:00:00Z")));
        assert!(o.next_by_override && !o.now_by_override);
        let o = outlook(&s, &tz, at("2026-11-26T20:00:00Z"));
        assert_eq!((o.now.as_deref(), o.now_by_override), (Some("carol"), true));
        assert_eq!(o.next.as_deref(), Some("alice"));
        assert_eq!(o.next_from, Some(at("2026-11-27T14:00:00Z")));
        let o = outlook(&s, &tz, at("2026-11-28T12:00:00Z"));
        assert_eq!(o.next.as_deref(), Some("bob"));
        assert_eq!(o.next_from, Some(at("2026-11-30T14:00:00Z")), "Monday 08:00 CST");
    }
}
