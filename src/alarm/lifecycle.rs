//! The alarm lifecycle, pure: `normal → pending → active → acknowledged → cleared`.
//!
//! Rules of one family on one sensor (e.g. a warning and a critical `high` rule) share
//! one alarm: when the more severe rule fires while the alarm is open, the alarm is
//! upgraded and raised again (an acknowledgement of the warning does not cover the
//! critical). The alarm clears when no rule of the family holds any more — at once, or,
//! for latching rules, once it is also acknowledged.

use crate::config::rules::{Rule, Severity};
use crate::model::TimestampMs;

pub use crate::model::{AlarmId, AlarmState};

/// The actor of transitions the daemon makes by itself.
pub const SYSTEM: &str = "cryowatch";

#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub by: String,
    pub at: TimestampMs,
    pub comment: String,
    /// How it arrived: `cli`, `api`, `sms`, `link`.
    pub path: String,
}

/// One alarm, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub id: AlarmId,
    /// Index of the rule whose severity the alarm carries.
    pub rule: usize,
    pub severity: Severity,
    pub state: AlarmState,
    pub raised_at: TimestampMs,
    /// When the condition began to hold (raised_at minus the delay, usually).
    pub since: TimestampMs,
    pub value: Option<f64>,
    pub latching: bool,
    /// Rules of the family whose condition holds now.
    pub firing: Vec<usize>,
    /// A latching alarm whose condition is over, waiting for its acknowledgement.
    pub returned: bool,
    /// Why it is not escalated (maintenance window or shelving), if it is not.
    pub suppressed: Option<String>,
    /// The power incident it belongs to (the id of the incident's alarm).
    pub incident: Option<AlarmId>,
    pub ack: Option<Ack>,
    pub cleared_at: Option<TimestampMs>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A rule's condition began to hold; its delay runs.
    Pending,
    /// The condition ended before the delay: nothing raised.
    Cancelled,
    Raised,
    /// A more severe rule of the family fired: raised again at the new severity.
    Upgraded {
        from: Severity,
    },
    /// The condition is over but the alarm latches until acknowledged.
    ReturnedToNormal,
    Acknowledged,
    Cleared,
    /// Suppression of an open alarm ended: it is escalated from now on.
    Unsuppressed,
    Shelved {
        until: TimestampMs,
    },
    Unshelved,
    MaintenanceStarted,
    MaintenanceEnded,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Cancelled => "cancelled",
            Change::Raised => "raised",
            Change::Upgraded { .. } => "upgraded",
            Change::ReturnedToNormal => "returned_to_normal",
            Change::Acknowledged => "acknowledged",
            Change::Cleared => "cleared",
            Change::Unsuppressed => "unsuppressed",
            Change::Shelved { .. } => "shelved",
            Change::Unshelved => "unshelved",
            Change::MaintenanceStarted => "maintenance_started",
            Change::MaintenanceEnded => "maintenance_ended",
        }
    }
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub change: Change,
    pub at: TimestampMs,
    pub alarm: Option<AlarmId>,
    /// Rule index, when a rule is concerned.
    pub rule: Option<usize>,
    /// Sensor index.
    pub sensor: Option<usize>,
    pub severity: Option<Severity>,
    /// The state the alarm is in afterwards (`normal`/`pending` for rule-only changes).
    pub state: &'static str,
    pub value: Option<f64>,
    pub actor: String,
    pub comment: String,
}

impl Transition {
    pub fn new(change: Change, at: TimestampMs, state: &'static str) -> Transition {
        Transition {
            change,
            at,
            alarm: None,
            rule: None,
            sensor: None,
            severity: None,
            state,
            value: None,
            actor: SYSTEM.to_string(),
            comment: String::new(),
        }
    }

    fn of(alarm: &Alarm, change: Change, at: TimestampMs, value: Option<f64>, rule: &Rule) -> Transition {
        Transition {
            alarm: Some(alarm.id),
            rule: Some(alarm.rule),
            sensor: Some(rule.sensor),
            severity: Some(alarm.severity),
            value,
            ..Transition::new(change, at, alarm.state.as_str())
        }
    }
}

/// What the engine knows when a rule fires.
#[derive(Debug, Clone, Default)]
pub struct RaiseContext {
    pub suppressed: Option<String>,
    pub incident: Option<AlarmId>,
}

/// A rule of the family fired. Opens an alarm (with id `next_id`, then incremented), or
/// upgrades the open one when the rule is more severe, or raises the acknowledged one
/// again when the rule is a later stage of the same severity ([`Rule::restage`]).
#[allow(clippy::too_many_arguments)]
pub fn fire(
    open: &mut Option<Alarm>,
    rule_idx: usize,
    rule: &Rule,
    since: TimestampMs,
    now: TimestampMs,
    value: Option<f64>,
    next_id: &mut AlarmId,
    ctx: RaiseContext,
) -> Vec<Transition> {
    match open {
        Some(a) => {
            let joins = !a.firing.contains(&rule_idx);
            if joins {
                a.firing.push(rule_idx);
            }
            a.returned = false;
            a.latching |= rule.latching;
            let restaged = joins && rule.restage && rule.severity == a.severity && a.state == AlarmState::Acknowledged;
            if rule.severity > a.severity || restaged {
                let from = a.severity;
                a.severity = rule.severity;
                a.rule = rule_idx;
                a.state = AlarmState::Active;
                a.ack = None;
                let mut t = Transition::of(a, Change::Upgraded { from }, now, value, rule);
                if restaged {
                    t.comment = "a later stage of the acknowledged alarm was reached: raised again".into();
                }
                vec![t]
            } else {
                Vec::new()
            }
        }
        None => {
            let a = Alarm {
                id: *next_id,
                rule: rule_idx,
                severity: rule.severity,
                state: AlarmState::Active,
                raised_at: now,
                since,
                value,
                latching: rule.latching,
                firing: vec![rule_idx],
                returned: false,
                suppressed: ctx.suppressed,
                incident: ctx.incident,
                ack: None,
                cleared_at: None,
            };
            *next_id += 1;
            let t = Transition::of(&a, Change::Raised, now, value, rule);
            *open = Some(a);
            vec![t]
        }
    }
}

/// A rule of the family no longer holds. Clears the alarm when no rule of the family
/// holds, unless it latches and is not acknowledged yet. A cleared alarm is returned.
pub fn end(
    open: &mut Option<Alarm>,
    rule_idx: usize,
    rule: &Rule,
    now: TimestampMs,
    value: Option<f64>,
) -> (Vec<Transition>, Option<Alarm>) {
    let Some(a) = open else {
        return (Vec::new(), None);
    };
    a.firing.retain(|r| *r != rule_idx);
    if !a.firing.is_empty() {
        return (Vec::new(), None);
    }
    if a.latching && a.state == AlarmState::Active {
        a.returned = true;
        return (
            vec![Transition::of(a, Change::ReturnedToNormal, now, value, rule)],
            None,
        );
    }
    clear(open, now, value, rule)
}

fn clear(
    open: &mut Option<Alarm>,
    now: TimestampMs,
    value: Option<f64>,
    rule: &Rule,
) -> (Vec<Transition>, Option<Alarm>) {
    let Some(mut a) = open.take() else {
        return (Vec::new(), None);
    };
    a.state = AlarmState::Cleared;
    a.cleared_at = Some(now);
    let t = Transition::of(&a, Change::Cleared, now, value, rule);
    (vec![t], Some(a))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("alarm {0} is already acknowledged")]
    AlreadyAcknowledged(AlarmId),
    #[error("no alarm {0}")]
    Unknown(AlarmId),
}

/// Acknowledges the open alarm. A latching alarm whose condition is already over clears.
pub fn acknowledge(
    open: &mut Option<Alarm>,
    rule: &Rule,
    ack: Ack,
) -> Result<(Vec<Transition>, Option<Alarm>), AckError> {
    let Some(a) = open else {
        return Err(AckError::Unknown(0));
    };
    if a.state == AlarmState::Acknowledged {
        return Err(AckError::AlreadyAcknowledged(a.id));
    }
    let at = ack.at;
    let mut t = Transition::of(a, Change::Acknowledged, at, None, rule);
    t.actor = ack.by.clone();
    t.comment = ack.comment.clone();
    a.state = AlarmState::Acknowledged;
    a.ack = Some(ack);
    t.state = a.state.as_str();
    let mut out = vec![t];
    if a.returned || a.firing.is_empty() {
        let (more, cleared) = clear(open, at, None, rule);
        out.extend(more);
        return Ok((out, cleared));
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::rules::{Condition, Origin};

    fn rule(severity: Severity, latching: bool) -> Rule {
        Rule {
            id: format!("{severity}"),
            sensor: 3,
            condition: Condition::High {
                threshold: -150.0,
                hysteresis: 2.0,
            },
            severity,
            delay: Duration::ZERO,
            escalation: None,
            latching,
            raises: true,
            power_incident: false,
            restage: false,
            origin: Origin::Written(0),
        }
    }

    fn ack(by: &str, at: TimestampMs) -> Ack {
        Ack {
            by: by.into(),
            at,
            comment: "topped up".into(),
            path: "cli".into(),
        }
    }

    #[test]
    fn a_fired_rule_raises_an_alarm_with_a_fresh_id() {
        let r = rule(Severity::Alarm, false);
        let (mut open, mut next) = (None, 7);
        let t = fire(
            &mut open,
            0,
            &r,
            10,
            20,
            Some(-149.0),
            &mut next,
            RaiseContext::default(),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].change, Change::Raised);
        assert_eq!(t[0].alarm, Some(7));
        assert_eq!(t[0].sensor, Some(3));
        assert_eq!(next, 8);
        let a = open.as_ref().expect("open");
        assert_eq!((a.state, a.since, a.raised_at), (AlarmState::Active, 10, 20));
    }

    #[test]
    fn return_to_normal_clears_a_non_latching_alarm() {
        let r = rule(Severity::Alarm, false);
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 0, &r, 0, 0, None, &mut next, RaiseContext::default());
        let (t, cleared) = end(&mut open, 0, &r, 50, Some(-160.0));
        assert_eq!(t[0].change, Change::Cleared);
        assert_eq!(cleared.expect("cleared").cleared_at, Some(50));
        assert!(open.is_none());
    }

    #[test]
    fn a_latching_alarm_stays_active_until_acknowledged_then_clears() {
        let r = rule(Severity::Critical, true);
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 0, &r, 0, 0, None, &mut next, RaiseContext::default());
        let (t, cleared) = end(&mut open, 0, &r, 50, None);
        assert_eq!(t[0].change, Change::ReturnedToNormal);
        assert!(cleared.is_none());
        assert_eq!(open.as_ref().map(|a| a.state), Some(AlarmState::Active));
        let (t, cleared) = acknowledge(&mut open, &r, ack("alice", 60)).expect("ack");
        assert_eq!(
            t.iter().map(|t| t.change.clone()).collect::<Vec<_>>(),
            vec![Change::Acknowledged, Change::Cleared]
        );
        assert_eq!(t[0].actor, "alice");
        assert_eq!(cleared.expect("cleared").ack.expect("ack").by, "alice");
    }

    #[test]
    fn an_acknowledged_alarm_clears_on_return_to_normal() {
        let r = rule(Severity::Alarm, true);
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 0, &r, 0, 0, None, &mut next, RaiseContext::default());
        acknowledge(&mut open, &r, ack("bob", 5)).expect("ack");
        assert_eq!(open.as_ref().map(|a| a.state), Some(AlarmState::Acknowledged));
        let (t, _) = end(&mut open, 0, &r, 9, None);
        assert_eq!(t[0].change, Change::Cleared);
    }

    #[test]
    fn a_later_stage_raises_an_acknowledged_alarm_again_and_a_plain_rule_of_the_same_severity_does_not() {
        let first = rule(Severity::Warning, false);
        let plain = rule(Severity::Warning, false);
        let stage = Rule {
            restage: true,
            ..rule(Severity::Warning, false)
        };
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 0, &first, 0, 0, None, &mut next, RaiseContext::default());
        acknowledge(&mut open, &first, ack("carol", 5)).expect("ack");
        // Another warning rule joining: the acknowledgement covers it.
        assert!(fire(&mut open, 1, &plain, 10, 10, None, &mut next, RaiseContext::default()).is_empty());
        assert_eq!(open.as_ref().map(|a| a.state), Some(AlarmState::Acknowledged));
        // The later stage: raised again, same id, unacknowledged, under the stage's rule.
        let t = fire(&mut open, 2, &stage, 20, 20, None, &mut next, RaiseContext::default());
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(
            t[0].change,
            Change::Upgraded {
                from: Severity::Warning
            }
        );
        assert_eq!(t[0].alarm, Some(1));
        let a = open.as_ref().expect("open");
        assert_eq!((a.state, a.rule, a.ack.is_none()), (AlarmState::Active, 2, true));
        // Joining again while it is still open, or while unacknowledged, raises nothing.
        assert!(fire(&mut open, 2, &stage, 30, 30, None, &mut next, RaiseContext::default()).is_empty());
    }

    #[test]
    fn a_second_acknowledgement_is_refused() {
        let r = rule(Severity::Alarm, false);
        let (mut open, mut next) = (None, 4);
        fire(&mut open, 0, &r, 0, 0, None, &mut next, RaiseContext::default());
        acknowledge(&mut open, &r, ack("bob", 5)).expect("ack");
        assert_eq!(
            acknowledge(&mut open, &r, ack("carol", 6)),
            Err(AckError::AlreadyAcknowledged(4))
        );
    }

    #[test]
    fn a_more_severe_rule_upgrades_and_re_raises_an_acknowledged_alarm() {
        let warn = rule(Severity::Warning, false);
        let crit = rule(Severity::Critical, false);
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 0, &warn, 0, 0, None, &mut next, RaiseContext::default());
        acknowledge(&mut open, &warn, ack("bob", 5)).expect("ack");
        let t = fire(
            &mut open,
            1,
            &crit,
            8,
            10,
            Some(-140.0),
            &mut next,
            RaiseContext::default(),
        );
        assert_eq!(
            t[0].change,
            Change::Upgraded {
                from: Severity::Warning
            }
        );
        let a = open.as_ref().expect("open");
        assert_eq!((a.id, a.severity, a.state), (1, Severity::Critical, AlarmState::Active));
        assert!(a.ack.is_none());
        assert_eq!(next, 2, "no second alarm");
        // The critical rule ends, the warning still holds: the alarm stays open.
        let (t, _) = end(&mut open, 1, &crit, 20, None);
        assert!(t.is_empty());
        let (t, _) = end(&mut open, 0, &warn, 30, None);
        assert_eq!(t[0].change, Change::Cleared);
    }

    #[test]
    fn a_less_severe_rule_firing_changes_nothing_visible() {
        let warn = rule(Severity::Warning, false);
        let crit = rule(Severity::Critical, false);
        let (mut open, mut next) = (None, 1);
        fire(&mut open, 1, &crit, 0, 0, None, &mut next, RaiseContext::default());
        assert!(fire(&mut open, 0, &warn, 0, 1, None, &mut next, RaiseContext::default()).is_empty());
        assert_eq!(open.as_ref().map(|a| a.severity), Some(Severity::Critical));
    }
}
