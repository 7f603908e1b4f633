//! Escalation timing and targets, pure.
//!
//! A step's `after` counts from the moment the alarm became active (or was re-raised by
//! a severity upgrade, or escalated after its suppression ended). When the last step has
//! run and the alarm is still unacknowledged, the whole sequence runs again
//! `repeat_interval` after the last step, at most `repeat` more times.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::oncall;
use crate::config::notify::{Contact, Escalation, NotifyConfig, Step, Target};
use crate::model::TimestampMs;

/// One occurrence of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub round: u32,
    pub step: usize,
    pub at: TimestampMs,
}

fn round_length(esc: &Escalation) -> i64 {
    let last = esc.steps.iter().map(|s| s.after).max().unwrap_or_default();
    crate::model::millis(last.saturating_add(esc.repeat_interval))
}

/// Every step occurrence of an escalation started at `start` that is due at `now`.
pub fn due(esc: &Escalation, start: TimestampMs, now: TimestampMs) -> Vec<Due> {
    let mut out = Vec::new();
    let len = round_length(esc);
    for round in 0..=esc.repeat {
        let base = start.saturating_add(i64::from(round).saturating_mul(len));
        if base > now {
            break;
        }
        for (i, s) in esc.steps.iter().enumerate() {
            let at = crate::model::later(base, s.after);
            if at <= now {
                out.push(Due { round, step: i, at });
            }
        }
    }
    out
}

/// When the next step occurrence after `now` is due, if any is left.
pub fn next_after(esc: &Escalation, start: TimestampMs, now: TimestampMs) -> Option<TimestampMs> {
    let len = round_length(esc);
    (0..=esc.repeat)
        .flat_map(|round| {
            esc.steps
                .iter()
                .map(move |s| crate::model::later(start.saturating_add(i64::from(round).saturating_mul(len)), s.after))
        })
        .filter(|&at| at > now)
        .min()
}

/// The contacts a step pages at `now`, each once, in the order the step names them.
pub fn recipients<'a>(cfg: &'a NotifyConfig, step: &Step, tz: &TimeZone, now: TimestampMs) -> Vec<&'a Contact> {
    contacts_of(cfg, &step.notify, tz, now)
}

/// The contacts `targets` name at `now` (a schedule's person on call, a group's
/// members), each once, in order.
pub fn contacts_of<'a>(cfg: &'a NotifyConfig, targets: &[Target], tz: &TimeZone, now: TimestampMs) -> Vec<&'a Contact> {
    let ts = Timestamp::from_millisecond(now).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut ids: Vec<&str> = Vec::new();
    for t in targets {
        match t {
            Target::Contact(id) => ids.push(id),
            Target::Schedule(id) => {
                if let Some(who) = cfg
                    .schedules
                    .iter()
                    .find(|s| &s.id == id)
                    .and_then(|s| oncall::on_call(s, tz, ts))
                {
                    ids.push(who);
                }
            }
            Target::Group(id) => {
                if let Some(g) = cfg.groups.iter().find(|g| &g.id == id) {
                    ids.extend(g.members.iter().map(String::as_str));
                }
            }
        }
    }
    let mut out: Vec<&Contact> = Vec::new();
    for id in ids {
        if let Some(c) = cfg.contact(id)
            && !out.iter().any(|o| o.id == c.id)
        {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn esc(repeat: u32) -> Escalation {
        Escalation {
            id: "e".into(),
            repeat,
            repeat_interval: Duration::from_secs(15 * 60),
            steps: vec![
                Step {
                    after: Duration::ZERO,
                    notify: vec![Target::Contact("alice".into())],
                    via: vec![],
                },
                Step {
                    after: Duration::from_secs(600),
                    notify: vec![Target::Contact("carol".into())],
                    via: vec![],
                },
            ],
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn steps_are_due_after_their_offset_from_activation() {
        let e = esc(0);
        assert_eq!(
            due(&e, 0, 0),
            vec![Due {
                round: 0,
                step: 0,
                at: 0
            }]
        );
        assert_eq!(due(&e, 0, 10 * MIN - 1).len(), 1);
        assert_eq!(due(&e, 0, 10 * MIN).len(), 2);
        assert_eq!(due(&e, 0, 1000 * MIN).len(), 2, "no repeat");
        assert_eq!(next_after(&e, 0, 0), Some(10 * MIN));
        assert_eq!(next_after(&e, 0, 10 * MIN), None);
    }

    #[test]
    fn the_sequence_repeats_after_the_interval_at_most_repeat_times() {
        let e = esc(2);
        // Round 1 starts 10 min (last step) + 15 min after activation.
        assert_eq!(due(&e, 0, 25 * MIN - 1).len(), 2);
        let d = due(&e, 0, 25 * MIN);
        assert_eq!(
            d.last(),
            Some(&Due {
                round: 1,
                step: 0,
                at: 25 * MIN
            })
        );
        assert_eq!(due(&e, 0, 10_000 * MIN).len(), 6);
        assert_eq!(next_after(&e, 0, 60 * MIN), None);
    }

    #[test]
    fn recipients_resolve_groups_and_skip_duplicates() {
        let cfg = NotifyConfig {
            contacts: ["alice", "bob"]
                .iter()
                .map(|id| Contact {
                    id: (*id).into(),
                    name: (*id).into(),
                    email: Some(format!("{id}@example.org")),
                    phone: None,
                })
                .collect(),
            groups: vec![crate::config::notify::Group {
                id: "all".into(),
                members: vec!["alice".into(), "bob".into()],
            }],
            ..NotifyConfig::default()
        };
        let step = Step {
            after: Duration::ZERO,
            notify: vec![Target::Contact("bob".into()), Target::Group("all".into())],
            via: vec![],
        };
        let ids: Vec<&str> = recipients(&cfg, &step, &TimeZone::UTC, 0)
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["bob", "alice"]);
    }
}
