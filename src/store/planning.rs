//! What the dispatcher's planning needs to know, read from one snapshot: the open
//! alarms, where each escalation cycle started and which of its steps are already in the
//! outbox, the cleared alarms whose return to normal is not planned yet, who was paged,
//! and the SMS acknowledgements waiting for an answer. Planning itself
//! (`notify::dispatcher::decide`) is a pure function of these facts and the time.

use std::collections::{HashMap, HashSet};

use super::alarms::{AlarmRow, incident_members, query_alarms};
use super::outbox::{self, SmsAckAnswered};
use super::{Store, StoreError};
use crate::model::{AlarmId, AlarmState, TimestampMs};

/// A page step already in the outbox: alarm, escalation cycle, round, step.
pub type PlannedStep = (AlarmId, i64, i64, i64);

/// A cleared alarm whose return to normal is not planned yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    pub alarm: AlarmRow,
    /// For a member of a power incident: the incident's alarm, and whether the
    /// incident's return to normal is planned.
    pub incident: Option<(AlarmRow, bool)>,
}

/// The facts planning decides from, read in one read transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFacts {
    /// Open alarms, oldest first.
    pub open: Vec<AlarmRow>,
    /// Members of each power incident among the open alarms and the cleared ones (open
    /// or cleared members, oldest first), by the incident's alarm.
    pub members: HashMap<AlarmId, Vec<AlarmRow>>,
    /// For each active alarm: the id and time of the transition that (re)started its
    /// escalation.
    pub cycles: HashMap<AlarmId, (i64, TimestampMs)>,
    /// Page steps of those cycles already in the outbox.
    pub planned: HashSet<PlannedStep>,
    /// Alarms cleared since the window's start that were paged and are not announced.
    pub cleared: Vec<Cleared>,
    /// Everyone a page reached, `(contact, channel)` in order of first page, for each
    /// cleared alarm and each cleared member of a cleared incident.
    pub paged: HashMap<AlarmId, Vec<(String, String)>>,
    /// Acknowledgements by SMS answered since the window's start, to be answered.
    pub replies: Vec<SmsAckAnswered>,
    /// Running alarm checks that page the person doing them: by sensor, the reason of
    /// the check's shelving (`alarm check N by USER`) and the user.
    pub checkers: HashMap<String, (String, String)>,
}

impl PlanFacts {
    /// The members of an incident (none when the alarm is no incident).
    pub fn members_of(&self, incident: AlarmId) -> &[AlarmRow] {
        self.members.get(&incident).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl Store {
    /// Reads the facts planning needs, from one snapshot. Returns to normal are looked
    /// for among alarms cleared since `cleared_since`, SMS answers among acknowledgements
    /// answered since `replies_since`.
    pub fn plan_facts(&self, cleared_since: TimestampMs, replies_since: TimestampMs) -> Result<PlanFacts, StoreError> {
        self.snapshot(|s| s.with_conn(|c| read(c, cleared_since, replies_since)))
    }
}

fn read(
    c: &rusqlite::Connection,
    cleared_since: TimestampMs,
    replies_since: TimestampMs,
) -> rusqlite::Result<PlanFacts> {
    let mut f = PlanFacts {
        open: query_alarms(c, true, None)?,
        ..PlanFacts::default()
    };
    let mut incidents: Vec<AlarmId> = Vec::new();
    for a in &f.open {
        if let Some(i) = a.incident.filter(|i| *i != a.id)
            && !incidents.contains(&i)
        {
            incidents.push(i);
        }
        if a.state == AlarmState::Active
            && let Some((cycle, start)) = outbox::cycle_start(c, a.id)?
        {
            f.cycles.insert(a.id, (cycle, start));
            for (round, step) in outbox::planned_steps(c, a.id, cycle)? {
                f.planned.insert((a.id, cycle, round, step));
            }
        }
    }
    for id in outbox::cleared_unannounced(c, cleared_since)? {
        let Some(alarm) = query_alarms(c, false, Some(id))?.pop() else {
            continue;
        };
        let incident = match alarm.incident.filter(|i| *i != alarm.id) {
            Some(i) => match query_alarms(c, false, Some(i))?.pop() {
                Some(row) => Some((row, outbox::normal_planned(c, i)?)),
                None => None,
            },
            None => None,
        };
        if !incidents.contains(&id) {
            incidents.push(id);
        }
        f.cleared.push(Cleared { alarm, incident });
    }
    for i in incidents {
        let members = incident_members(c, i)?;
        if !members.is_empty() {
            f.members.insert(i, members);
        }
    }
    for cl in &f.cleared {
        let id = cl.alarm.id;
        f.paged.insert(id, outbox::paged(c, id)?);
        for m in f.members.get(&id).into_iter().flatten() {
            if m.state == AlarmState::Cleared && !f.paged.contains_key(&m.id) {
                f.paged.insert(m.id, outbox::paged(c, m.id)?);
            }
        }
    }
    f.replies = outbox::sms_acks_answered(c, replies_since)?;
    f.checkers = super::quality::alarm_check::checkers(c)?;
    Ok(f)
}
