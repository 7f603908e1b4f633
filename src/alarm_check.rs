//! Which physical alarm checks `[[alarm_check_schedule]]` makes due, and which are
//! overdue: every probe of a scheduled asset (each sensor with a high or low rule) needs
//! a finished check (passed or failed; an abandoned one proves nothing) started in every
//! period of the schedule.
//!
//! At `now` a probe's check is `done` when one was finished in the current period;
//! `overdue` when the last period ended without one, none has been finished since, and
//! the probe was monitored in that period (it had readings: a probe installed this
//! period owes nothing for the last); `due` (by the current period's end) otherwise.
//! [`state`] decides that without I/O; [`due_checks`] reads the store for it, and the
//! status, dashboard, `/metrics`, reminder pages and quality report all ask it.

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::config::{Config, checked_rules};
use crate::model::TimestampMs;
use crate::model::period::{self, Every, Period};
use crate::store::quality::alarm_check::{AlarmCheck, CheckState};
use crate::store::{Store, StoreError};

/// Where a probe's scheduled check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DueState {
    /// Finished in the current period.
    Done,
    /// Owed by the current period's end.
    Due,
    /// The last period ended without one.
    Overdue,
}

/// One probe's scheduled check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueCheck {
    pub sensor: String,
    pub asset: String,
    pub every: &'static str,
    /// The period the check is owed for (the current one, or the last when overdue).
    pub period: String,
    /// When it is, or was, due: the end of `period`.
    pub due_at: TimestampMs,
    pub state: DueState,
    /// The check that made it done.
    pub check: Option<i64>,
}

impl DueState {
    pub fn as_str(self) -> &'static str {
        match self {
            DueState::Done => "done",
            DueState::Due => "due",
            DueState::Overdue => "overdue",
        }
    }
}

/// True for a check that proves its probe: finished, passed or failed.
pub fn counts(a: &AlarmCheck) -> bool {
    matches!(a.state, CheckState::Passed | CheckState::Failed)
}

/// Where a probe's check stands at `now`, given the start times and ids of its finished
/// checks and whether it was monitored in a period. `None` only outside the calendar.
pub fn state(
    every: Every,
    tz: &TimeZone,
    now: TimestampMs,
    finished: &[(i64, TimestampMs)],
    monitored: impl FnOnce(&Period) -> bool,
) -> Option<(Period, DueState, Option<i64>)> {
    let current = period::containing(every, now, tz)?;
    let last = period::containing(every, current.from.checked_sub(1)?, tz)?;
    if let Some((id, _)) = finished
        .iter()
        .rev()
        .find(|(_, t)| (current.from..current.to).contains(t))
    {
        return Some((current, DueState::Done, Some(*id)));
    }
    let since_last = finished.iter().any(|(_, t)| *t >= last.from && *t < current.to);
    if !since_last && monitored(&last) {
        return Some((last, DueState::Overdue, None));
    }
    Some((current, DueState::Due, None))
}

/// A probe under a schedule: the sensor, its asset, how often.
struct Scheduled<'a> {
    sensor: &'a str,
    asset: &'a str,
    every: Every,
}

/// Every scheduled probe (each sensor of a scheduled asset with a high or low rule), in
/// the order of the schedules, their assets and sensors.
fn scheduled(cfg: &Config) -> Vec<Scheduled<'_>> {
    let mut out = Vec::new();
    for s in &cfg.alarm_check.schedules {
        for asset in &s.assets {
            let Some(ai) = cfg.assets.iter().position(|a| a.id == *asset) else {
                continue;
            };
            for (si, sensor) in cfg.sensors.iter().enumerate() {
                if sensor.asset == ai && !checked_rules(&cfg.sensors, &cfg.rules, si).is_empty() {
                    out.push(Scheduled {
                        sensor: &sensor.id,
                        asset,
                        every: s.every,
                    });
                }
            }
        }
    }
    out
}

/// Every scheduled probe's check at `now`.
pub fn due_checks(cfg: &Config, store: &Store, now: TimestampMs) -> Result<Vec<DueCheck>, StoreError> {
    let probes = scheduled(cfg);
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let checks = store.alarm_checks()?;
    let mut out = Vec::new();
    for p in probes {
        let finished: Vec<(i64, TimestampMs)> = checks
            .iter()
            .filter(|a| a.sensor == p.sensor && counts(a))
            .map(|a| (a.id, a.started_at))
            .collect();
        let mut failed = None;
        let found = state(p.every, &cfg.site.timezone, now, &finished, |last| {
            store.has_readings(&[p.sensor], last.from, last.to).unwrap_or_else(|e| {
                failed = Some(e);
                false
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let Some((period, state, check)) = found else { continue };
        out.push(DueCheck {
            sensor: p.sensor.to_string(),
            asset: p.asset.to_string(),
            every: p.every.as_str(),
            period: period.label,
            due_at: period.to,
            state,
            check,
        });
    }
    Ok(out)
}

/// A scheduled probe's period, as the quality report counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledPeriod {
    pub sensor: String,
    pub asset: String,
    pub every: &'static str,
    pub label: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
}

/// The most periods of one probe [`periods_ended`] looks at (ten years of weeks).
const MAX_PERIODS: usize = 520;

/// Each scheduled probe's periods that ended in `from..=until` and in which it was
/// monitored (had readings): the checks that were due then.
pub fn periods_ended(
    cfg: &Config,
    store: &Store,
    from: TimestampMs,
    until: TimestampMs,
) -> Result<Vec<ScheduledPeriod>, StoreError> {
    let tz = &cfg.site.timezone;
    let mut out = Vec::new();
    for p in scheduled(cfg) {
        let mut next = period::containing(p.every, from, tz);
        for _ in 0..MAX_PERIODS {
            let Some(q) = next.take() else { break };
            if q.to > until {
                break;
            }
            if q.to > from && store.has_readings(&[p.sensor], q.from, q.to)? {
                out.push(ScheduledPeriod {
                    sensor: p.sensor.to_string(),
                    asset: p.asset.to_string(),
                    every: p.every.as_str(),
                    label: q.label.clone(),
                    from: q.from,
                    to: q.to,
                });
            }
            next = period::after(p.every, &q, tz);
        }
    }
    Ok(out)
}

/// The overdue ones among `due`.
pub fn overdue(due: &[DueCheck]) -> impl Iterator<Item = &DueCheck> {
    due.iter().filter(|d| d.state == DueState::Overdue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn ms(s: &str) -> TimestampMs {
        s.parse::<Timestamp>().expect("time").as_millisecond()
    }

    fn at(now: &str, finished: &[(i64, &str)], monitored: bool) -> (String, DueState, Option<i64>) {
        let finished: Vec<(i64, TimestampMs)> = finished.iter().map(|(id, t)| (*id, ms(t))).collect();
        let (p, s, check) = state(Every::Quarterly, &TimeZone::UTC, ms(now), &finished, |_| monitored).expect("state");
        (p.label, s, check)
    }

    #[test]
    fn a_check_finished_this_quarter_makes_it_done() {
        let got = at("2026-11-20T00:00:00Z", &[(3, "2026-10-02T09:00:00Z")], true);
        assert_eq!(got, ("2026-Q4".to_string(), DueState::Done, Some(3)));
    }

    #[test]
    fn a_quarter_that_ended_without_a_check_of_a_monitored_probe_is_overdue_until_one_is_done() {
        assert_eq!(
            at("2026-11-20T00:00:00Z", &[(1, "2026-05-02T09:00:00Z")], true),
            ("2026-Q3".to_string(), DueState::Overdue, None)
        );
        // Done late, in the next quarter: no longer overdue, and done for this one.
        assert_eq!(
            at(
                "2026-11-20T00:00:00Z",
                &[(1, "2026-05-02T09:00:00Z"), (2, "2026-11-19T09:00:00Z")],
                true
            ),
            ("2026-Q4".to_string(), DueState::Done, Some(2))
        );
    }

    #[test]
    fn a_check_last_quarter_leaves_this_one_due_by_its_end() {
        assert_eq!(
            at("2026-11-20T00:00:00Z", &[(1, "2026-08-02T09:00:00Z")], true),
            ("2026-Q4".to_string(), DueState::Due, None)
        );
    }

    #[test]
    fn a_probe_not_monitored_last_quarter_owes_nothing_for_it() {
        assert_eq!(
            at("2026-11-20T00:00:00Z", &[], false),
            ("2026-Q4".to_string(), DueState::Due, None)
        );
    }
}
