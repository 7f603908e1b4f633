//! Building the engine: the rules grouped into families and by sensor, then resumed from
//! what the store saved (rule states, open alarms and tests, shelvings).

use std::collections::HashMap;

use crate::config::Config;
use crate::config::rules::Condition;
use crate::model::TimestampMs;
use crate::model::changes::{Changes, EventRow, Saved, ShelfRow};

use super::Engine;
use crate::alarm::condition::{RateWindow, RuleState};
use crate::alarm::lifecycle::{self, Ack, Alarm, AlarmState};
use crate::alarm::suppress::{self, Shelf};

impl Engine {
    /// Builds the engine for `config`, resuming from what the store saved.
    /// `last_good[i]` is the newest good reading time of sensor `i` in the store.
    pub fn new(config: &Config, saved: Saved, last_good: Vec<Option<TimestampMs>>, now: TimestampMs) -> Engine {
        let rules = config.rules.clone();
        let n_sensors = config.sensors.len();
        let mut families: HashMap<String, usize> = HashMap::new();
        let family_of: Vec<usize> = rules
            .iter()
            .map(|r| {
                let n = families.len();
                *families.entry(r.family()).or_insert(n)
            })
            .collect();
        let mut by_sensor = vec![Vec::new(); n_sensors];
        let mut combos_of = vec![Vec::new(); rules.len()];
        let mut stale_rules = Vec::new();
        let mut event_rules = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match &r.condition {
                Condition::All(ch) | Condition::Any(ch) => {
                    for &c in ch {
                        combos_of[c].push(i);
                    }
                }
                Condition::Stale { .. } => {
                    stale_rules.push(i);
                    by_sensor[r.sensor].push(i);
                }
                Condition::NoEvent { .. } => {
                    event_rules.push(i);
                    by_sensor[r.sensor].push(i);
                }
                _ => by_sensor[r.sensor].push(i),
            }
        }
        let rate = rules
            .iter()
            .map(|r| {
                matches!(r.condition, Condition::Rate { .. } | Condition::Forecast { .. }).then(RateWindow::default)
            })
            .collect();
        let mut e = Engine {
            sensor_names: config.sensors.iter().map(|s| s.id.clone()).collect(),
            state_names: config.sensors.iter().map(|s| s.states.clone()).collect(),
            asset_of_sensor: config
                .sensors
                .iter()
                .map(|s| config.assets.get(s.asset).map(|a| a.id.clone()).unwrap_or_default())
                .collect(),
            maintenance: config.maintenance.clone(),
            tz: config.site.timezone.clone(),
            states: vec![RuleState::default(); rules.len()],
            open: vec![None; families.len()],
            tests: Vec::new(),
            family_of,
            by_sensor,
            combos_of,
            stale_rules,
            event_rules,
            last_event: vec![None; rules.len()],
            last_good,
            last_value: vec![None; n_sensors],
            last_eval: vec![None; n_sensors],
            started: now,
            rate,
            shelves: Vec::new(),
            suppressed: vec![None; n_sensors],
            window_open: vec![false; config.maintenance.len()],
            window_next: vec![TimestampMs::MIN; config.maintenance.len()],
            windows_of: {
                let mut w = vec![Vec::new(); n_sensors];
                for (mi, m) in config.maintenance.iter().enumerate() {
                    for &s in &m.sensors {
                        if let Some(list) = w.get_mut(s) {
                            list.push(mi);
                        }
                    }
                }
                w
            },
            families_of: Vec::new(),
            suppression_dirty: Vec::new(),
            next_alarm: saved.max_alarm_id + 1,
            next_shelf: saved.max_shelf_id + 1,
            incident: None,
            out: Changes::default(),
            dirty_rules: Vec::new(),
            evaluated: 0,
            rules,
        };
        e.last_good.resize(n_sensors, None);
        let mut families_of = vec![Vec::new(); n_sensors];
        for (ri, r) in e.rules.iter().enumerate() {
            if let Some(list) = families_of.get_mut(r.sensor)
                && !list.contains(&e.family_of[ri])
            {
                list.push(e.family_of[ri]);
            }
        }
        e.families_of = families_of;
        e.resume(saved, now);
        e
    }

    fn resume(&mut self, saved: Saved, now: TimestampMs) {
        let rule_idx: HashMap<&str, usize> = self.rules.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        for rs in &saved.rule_states {
            if let Some(&i) = rule_idx.get(rs.rule.as_str()) {
                self.states[i] = RuleState {
                    cond: rs.cond,
                    since: rs.since,
                    fired: rs.fired,
                };
            }
        }
        let sensor_idx: HashMap<&str, usize> = self
            .sensor_names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        for s in saved.shelves {
            match sensor_idx.get(s.sensor.as_str()) {
                Some(&sensor) => self.shelves.push(Shelf {
                    id: s.id,
                    sensor,
                    from: s.from,
                    until: s.until,
                    by: s.by,
                    reason: s.reason,
                }),
                None => self.out.shelves.push(ShelfRow { ended: true, ..s }),
            }
        }
        for row in saved.open {
            let Some(&ri) = rule_idx.get(row.rule.as_str()) else {
                // The rule is gone from the configuration: the alarm cannot clear by
                // itself any more, so it is closed, on the record.
                let mut closed = row.clone();
                closed.state = AlarmState::Cleared;
                closed.cleared_at = Some(now);
                self.out.events.push(EventRow {
                    t: now,
                    alarm: Some(row.id),
                    rule: Some(row.rule.clone()),
                    sensor: Some(row.sensor.clone()),
                    kind: "closed".into(),
                    state: closed.state.as_str().into(),
                    severity: Some(row.severity.as_str().into()),
                    value: None,
                    actor: lifecycle::SYSTEM.into(),
                    comment: "the rule is no longer in the configuration".into(),
                });
                self.out.alarms.push(closed);
                continue;
            };
            let firing = row
                .firing
                .split(',')
                .filter_map(|id| rule_idx.get(id).copied())
                .collect();
            let alarm = Alarm {
                id: row.id,
                rule: ri,
                severity: row.severity,
                state: row.state,
                raised_at: row.raised_at,
                since: row.since,
                value: row.value,
                latching: row.latching,
                firing,
                returned: row.returned,
                suppressed: row.suppressed,
                incident: row.incident,
                ack: row.acked_by.map(|by| Ack {
                    by,
                    at: row.acked_at.unwrap_or(0),
                    comment: row.ack_comment.unwrap_or_default(),
                    path: row.ack_path.unwrap_or_default(),
                }),
                cleared_at: None,
            };
            if saved.test_alarms.contains(&alarm.id) {
                self.tests.push(Some(alarm));
                continue;
            }
            if self.rules[ri].power_incident {
                self.incident = Some(alarm.id);
            }
            let f = self.family_of[ri];
            self.open[f] = Some(alarm);
        }
        for (mi, m) in self.maintenance.iter().enumerate() {
            self.window_open[mi] = suppress::window_open(&m.window, &self.tz, now);
            self.window_next[mi] = suppress::next_change(&m.window, &self.tz, now);
        }
        for s in 0..self.sensor_names.len() {
            self.suppressed[s] = self.reason_for(s, now);
        }
    }
}
