//! Deciding what is due: a pure function of the store's facts ([`PlanFacts`]), the
//! configuration and `now`. It reads no clock and touches no store, so escalation timing,
//! power incidents and returns to normal are unit-tested in milliseconds.
//!
//! Acknowledged and suppressed alarms are not escalated; an alarm held by a running
//! alarm check pages only the person doing it, once (none when the check is silent). A member of a power incident is
//! paged through the incident's alarm while that alarm is open and unacknowledged —
//! unless it is more severe than anything the incident paged yet (or is the first alarm
//! of the power supply itself): then it pages on its own escalation as an incident
//! update. Once someone owns the incident, or power is back, a member escalates on its
//! own. Only the latest due occurrence of each step pages: after the daemon was down
//! through several rounds, each step pages once, not once per missed round.

use jiff::tz::TimeZone;

use crate::config::Config;
use crate::config::notify::{Contact, Escalation};
use crate::model::{AlarmId, AlarmState, TimestampMs};
use crate::notify::escalation;
use crate::store::alarms::AlarmRow;
use crate::store::outbox::SmsAckAnswered;
use crate::store::planning::PlanFacts;

/// What planning is configured with: the configuration, the site's time zone (on-call
/// rotations) and which channels reach a contact.
pub struct Policy<'a> {
    pub cfg: &'a Config,
    pub tz: &'a TimeZone,
    /// The configured channels that can reach a contact, in configuration order.
    pub reaching: &'a dyn Fn(&Contact) -> Vec<String>,
}

/// One notification decision; the texts are written afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// A step of an alarm's escalation, to each `(contact, channel)`. `update_of` names
    /// the power incident when the page is an incident update.
    Page {
        alarm: AlarmId,
        update_of: Option<AlarmId>,
        cycle: i64,
        round: u32,
        step: usize,
        to: Vec<(String, String)>,
    },
    /// The alarm's return to normal, to everyone paged for it (and, for an incident, for
    /// the members it announces).
    Normal { alarm: AlarmId, to: Vec<(String, String)> },
    /// The answer to an acknowledgement by SMS.
    Reply(SmsAckAnswered),
}

impl Policy<'_> {
    /// The escalation an alarm follows: its rule's, else the first matching route's.
    pub fn escalation_for(&self, alarm: &AlarmRow) -> Option<&Escalation> {
        let rule = self.cfg.rules.iter().find(|r| r.id == alarm.rule);
        if let Some(id) = rule.and_then(|r| r.escalation.as_deref()) {
            return self.cfg.notify.escalation(id);
        }
        self.cfg
            .notify
            .routes
            .iter()
            .find(|r| r.asset.as_deref().is_none_or(|a| a == alarm.asset) && r.takes(alarm.severity))
            .and_then(|r| self.cfg.notify.escalation(&r.escalation))
    }

    /// Whether the alarm is about the power supply itself: a UPS point read through NUT,
    /// or a sensor of an asset of kind `ups`.
    pub fn is_power(&self, a: &AlarmRow) -> bool {
        let ups_point = self
            .cfg
            .sensors
            .iter()
            .any(|s| s.id == a.sensor && matches!(s.source, crate::config::SensorSource::Ups(_)));
        ups_point || self.cfg.assets.iter().any(|x| x.id == a.asset && x.kind == "ups")
    }

    /// The channels a step uses for a contact: the step's `via`, or every channel that
    /// reaches the contact and is nobody's fallback.
    pub fn channels_for(&self, via: &[String], contact: &Contact) -> Vec<String> {
        if !via.is_empty() {
            return via.to_vec();
        }
        let fallbacks: Vec<&str> = self
            .cfg
            .notify
            .channels
            .iter()
            .filter_map(|c| c.fallback.as_deref())
            .collect();
        let mut ids = (self.reaching)(contact);
        ids.retain(|id| !fallbacks.contains(&id.as_str()));
        ids
    }
}

/// Every notification due at `now` and not yet in the outbox, in the order they are
/// written: pages of the open alarms, returns to normal, answers to SMS acknowledgements.
pub fn decide(policy: &Policy<'_>, facts: &PlanFacts, now: TimestampMs) -> Vec<Planned> {
    let mut out = Vec::new();
    for a in &facts.open {
        pages(policy, facts, a, now, &mut out);
    }
    for cl in &facts.cleared {
        let a = &cl.alarm;
        // A member whose incident is over is announced in the incident's return to
        // normal (the query leaves out those already announced there).
        if let Some((inc, announced)) = &cl.incident
            && inc.state == AlarmState::Cleared
            && !announced
        {
            continue;
        }
        let members = facts.members_of(a.id);
        if crate::notify::incident::settling(members, a.cleared_at.unwrap_or(now), now) {
            continue;
        }
        // Everyone paged for the alarm, and, for an incident, for any member this
        // message announces.
        let mut to: Vec<(String, String)> = facts.paged.get(&a.id).cloned().unwrap_or_default();
        for m in members.iter().filter(|m| m.state == AlarmState::Cleared) {
            for r in facts.paged.get(&m.id).into_iter().flatten() {
                if !to.contains(r) {
                    to.push(r.clone());
                }
            }
        }
        out.push(Planned::Normal { alarm: a.id, to });
    }
    out.extend(facts.replies.iter().cloned().map(Planned::Reply));
    out
}

/// The due, unplanned steps of one open alarm.
fn pages(policy: &Policy<'_>, facts: &PlanFacts, a: &AlarmRow, now: TimestampMs, out: &mut Vec<Planned>) {
    let incident = a
        .incident
        .filter(|i| *i != a.id)
        .and_then(|i| facts.open.iter().find(|o| o.id == i && o.state == AlarmState::Active));
    let update_of = match incident {
        Some(inc) => {
            if !crate::notify::incident::brings_worse(a, inc, facts.members_of(inc.id), |m| policy.is_power(m)) {
                return; // covered by the incident's own page
            }
            Some(inc.id)
        }
        None => None,
    };
    if a.state != AlarmState::Active {
        return;
    }
    if let Some(why) = &a.suppressed {
        out.extend(checker_page(policy, facts, a, why, update_of));
        return;
    }
    let Some(esc) = policy.escalation_for(a) else {
        return;
    };
    let Some(&(cycle, start)) = facts.cycles.get(&a.id) else {
        return;
    };
    let mut latest: Vec<escalation::Due> = Vec::new();
    for d in escalation::due(esc, start, now) {
        match latest.iter_mut().find(|l| l.step == d.step) {
            Some(l) if l.round < d.round => *l = d,
            Some(_) => {}
            None => latest.push(d),
        }
    }
    for d in latest {
        if facts
            .planned
            .contains(&(a.id, cycle, i64::from(d.round), d.step as i64))
        {
            continue;
        }
        let step = &esc.steps[d.step];
        let contacts = escalation::recipients(&policy.cfg.notify, step, policy.tz, now);
        if contacts.is_empty() {
            tracing::error!(alarm_id = a.id, escalation = %esc.id, step = d.step, "escalation step has nobody to page");
        }
        let to = contacts
            .into_iter()
            .flat_map(|c| {
                policy
                    .channels_for(&step.via, c)
                    .into_iter()
                    .map(|ch| (c.id.clone(), ch))
            })
            .collect();
        out.push(Planned::Page {
            alarm: a.id,
            update_of,
            cycle,
            round: d.round,
            step: d.step,
            to,
        });
    }
}

/// The one page of an alarm held by a running alarm check that is not silent: to the
/// person doing the check, when `--by` names a contact, on every channel that reaches
/// them, once per cycle; no escalation follows.
fn checker_page(
    policy: &Policy<'_>,
    facts: &PlanFacts,
    a: &AlarmRow,
    suppressed: &str,
    update_of: Option<AlarmId>,
) -> Option<Planned> {
    let (reason, by) = facts.checkers.get(&a.sensor)?;
    if !suppressed.contains(reason.as_str()) {
        return None;
    }
    let contact = policy.cfg.notify.contacts.iter().find(|c| &c.id == by)?;
    let &(cycle, _) = facts.cycles.get(&a.id)?;
    if facts.planned.contains(&(a.id, cycle, 0, 0)) {
        return None;
    }
    let to = policy
        .channels_for(&[], contact)
        .into_iter()
        .map(|ch| (contact.id.clone(), ch))
        .collect();
    Some(Planned::Page {
        alarm: a.id,
        update_of,
        cycle,
        round: 0,
        step: 0,
        to,
    })
}

#[cfg(test)]
mod tests;
