//! Transitions, alarms and shelvings as the rows of the change set ([`Changes`]) that
//! the commit stage persists with the readings that caused them.

use crate::model::changes::{AlarmRow, Changes, EventRow, RuleStateRow, ShelfRow};

use super::Engine;
use crate::alarm::lifecycle::{Alarm, Change, Transition};
use crate::alarm::suppress::Shelf;

impl Engine {
    /// Turns transitions into store rows, with the alarm's row as it now is.
    pub(super) fn record(&mut self, transitions: Vec<Transition>, family: usize, cleared: Option<Alarm>) {
        if transitions.is_empty() {
            return;
        }
        for mut t in transitions {
            if let Some(a) = cleared.as_ref().or(self.open[family].as_ref())
                && Some(a.id) == t.alarm
            {
                if t.change == Change::Cleared && Some(a.id) == self.incident {
                    self.incident = None;
                    t.comment = "power restored".into();
                }
                if t.change == Change::Raised
                    && let Some(i) = a.incident
                {
                    t.comment = format!("part of power incident {i}");
                }
            }
            self.out.events.push(self.event_row(&t));
        }
        if let Some(a) = cleared.as_ref().or(self.open[family].as_ref()) {
            let row = self.alarm_row(a);
            self.out.alarms.push(row);
        }
    }

    pub(super) fn event_row(&self, t: &Transition) -> EventRow {
        EventRow {
            t: t.at,
            alarm: t.alarm,
            rule: t.rule.map(|r| self.rules[r].id.clone()),
            sensor: t.sensor.map(|s| self.sensor_names[s].clone()),
            kind: t.change.as_str().into(),
            state: t.state.into(),
            severity: t.severity.map(|s| s.as_str().into()),
            value: t.value,
            actor: t.actor.clone(),
            comment: t.comment.clone(),
        }
    }

    pub(super) fn alarm_row(&self, a: &Alarm) -> AlarmRow {
        let rule = &self.rules[a.rule];
        AlarmRow {
            id: a.id,
            rule: rule.id.clone(),
            sensor: self.sensor_names[rule.sensor].clone(),
            asset: self.asset_of_sensor[rule.sensor].clone(),
            severity: a.severity,
            state: a.state,
            raised_at: a.raised_at,
            since: a.since,
            value: a.value,
            latching: a.latching,
            firing: a
                .firing
                .iter()
                .map(|r| self.rules[*r].id.as_str())
                .collect::<Vec<_>>()
                .join(","),
            returned: a.returned,
            suppressed: a.suppressed.clone(),
            incident: a.incident,
            acked_by: a.ack.as_ref().map(|k| k.by.clone()),
            acked_at: a.ack.as_ref().map(|k| k.at),
            ack_comment: a.ack.as_ref().map(|k| k.comment.clone()),
            ack_path: a.ack.as_ref().map(|k| k.path.clone()),
            cleared_at: a.cleared_at,
        }
    }

    pub(super) fn shelf_row(&self, s: &Shelf, ended: bool) -> ShelfRow {
        ShelfRow {
            id: s.id,
            sensor: self.sensor_names[s.sensor].clone(),
            from: s.from,
            until: s.until,
            by: s.by.clone(),
            reason: s.reason.clone(),
            ended,
        }
    }

    /// Everything changed since the last call, ready to be written.
    pub fn take_changes(&mut self) -> Changes {
        self.dirty_rules.sort_unstable();
        self.dirty_rules.dedup();
        for &ri in &self.dirty_rules {
            let st = self.states[ri];
            self.out.rule_states.push(RuleStateRow {
                rule: self.rules[ri].id.clone(),
                cond: st.cond,
                since: st.since,
                fired: st.fired,
            });
        }
        self.dirty_rules.clear();
        // Several updates of one alarm in a step: the last one counts.
        let mut seen = std::collections::HashSet::new();
        let mut alarms: Vec<AlarmRow> = std::mem::take(&mut self.out.alarms);
        alarms.reverse();
        alarms.retain(|a| seen.insert(a.id));
        alarms.reverse();
        self.out.alarms = alarms;
        std::mem::take(&mut self.out)
    }
}
