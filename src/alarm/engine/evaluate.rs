//! The evaluation of one reading: the rules of its sensor step, combined rules follow
//! the rules they combine, and rule events raise, clear or hold back alarms.

use std::time::Duration;

use crate::config::rules::Condition;
use crate::model::{Quality, Reading, TimestampMs};

use super::Engine;
use crate::alarm::condition::{self, RuleEvent};
use crate::alarm::lifecycle::{self, Change, RaiseContext, Transition};

impl Engine {
    /// Evaluates one stored reading. `now` is the wall clock.
    pub fn on_reading(&mut self, r: &Reading, now: TimestampMs) {
        self.evaluated += 1;
        let s = r.sensor;
        if s >= self.by_sensor.len() {
            return;
        }
        let at = r.time.min(now);
        // A late reading older than one already evaluated is stored, not evaluated: it
        // must not clear (or raise) an alarm the newer readings decided.
        if self.last_eval[s].is_some_and(|l| at < l) {
            return;
        }
        self.last_eval[s] = Some(at);
        let good = r.quality == Quality::Good && r.value.is_some_and(f64::is_finite);
        if good {
            // A source clock ahead of ours must not postpone staleness.
            let t = r.time.min(now);
            self.last_good[s] = Some(self.last_good[s].map_or(t, |l| l.max(t)));
            self.last_value[s] = r.value;
        }
        for k in 0..self.by_sensor[s].len() {
            let ri = self.by_sensor[s][k];
            let rule = &self.rules[ri];
            let prev = self.states[ri].cond;
            let cond = match &rule.condition {
                Condition::Stale { .. } => good.then_some(false),
                Condition::Rate { window, .. } => {
                    let w = crate::model::millis(*window);
                    let Some(win) = self.rate[ri].as_mut() else { continue };
                    if let (true, Some(v)) = (good, r.value) {
                        win.push(r.time, v, w);
                    }
                    if good {
                        condition::decide_rate(&rule.condition, prev, win)
                    } else {
                        None
                    }
                }
                Condition::Forecast { window, .. } => {
                    let w = crate::model::millis(*window);
                    let Some(win) = self.rate[ri].as_mut() else { continue };
                    match (good, r.value) {
                        (true, Some(v)) => {
                            win.push_spaced(r.time, v, w);
                            condition::decide_forecast(&rule.condition, prev, win, at)
                        }
                        _ => None,
                    }
                }
                Condition::NoEvent { equals, .. } => {
                    // The event decides at once; its absence only the clock ([`Engine::on_tick`]).
                    let seen = good && r.value.is_some_and(|v| (v - equals).abs() < 1e-9);
                    if seen {
                        self.last_event[ri] = Some(self.last_event[ri].map_or(at, |l| l.max(at)));
                    }
                    seen.then_some(false)
                }
                c => condition::decide(c, prev, r.value, r.quality),
            };
            self.step_rule(ri, cond, at, now, r.value);
        }
    }

    pub(super) fn step_rule(
        &mut self,
        ri: usize,
        cond: Option<bool>,
        at: TimestampMs,
        now: TimestampMs,
        value: Option<f64>,
    ) {
        let before = self.states[ri];
        let events = condition::step(&self.rules[ri], &mut self.states[ri], cond, at, now);
        if self.states[ri] != before {
            self.dirty_rules.push(ri);
        }
        for ev in events {
            self.rule_event(ri, ev, now, value);
        }
        if before.cond != self.states[ri].cond {
            for k in 0..self.combos_of[ri].len() {
                let ci = self.combos_of[ri][k];
                let c = match &self.rules[ci].condition {
                    Condition::All(ch) => condition::combine(true, ch.iter().map(|&c| self.states[c].cond)),
                    Condition::Any(ch) => condition::combine(false, ch.iter().map(|&c| self.states[c].cond)),
                    _ => None,
                };
                self.step_rule(ci, c, at, now, value);
            }
        }
    }

    fn rule_event(&mut self, ri: usize, ev: RuleEvent, now: TimestampMs, value: Option<f64>) {
        let rule = &self.rules[ri];
        if !rule.raises {
            return;
        }
        let f = self.family_of[ri];
        let (transitions, cleared) = match ev {
            RuleEvent::Pending { since } => {
                let mut t = Transition::new(Change::Pending, since, "pending");
                t.comment = format!(
                    "condition holds; alarm after {}",
                    humantime::format_duration(rule.delay)
                );
                (vec![self.rule_transition(t, ri, value)], None)
            }
            RuleEvent::Cancelled => {
                let mut t = Transition::new(Change::Cancelled, now, "normal");
                t.comment = "condition ended before the delay; nothing raised".into();
                (vec![self.rule_transition(t, ri, value)], None)
            }
            RuleEvent::Fired { since } => {
                let ctx = RaiseContext {
                    suppressed: self.suppressed[rule.sensor].clone(),
                    incident: if rule.power_incident { None } else { self.incident },
                };
                let v = value.or(self.last_value[rule.sensor]);
                let mut t = lifecycle::fire(&mut self.open[f], ri, rule, since, now, v, &mut self.next_alarm, ctx);
                if let Some(first) = t.first_mut() {
                    first.comment = self.trend_comment(ri, now);
                }
                if rule.power_incident
                    && self.incident.is_none()
                    && let Some(a) = &self.open[f]
                {
                    self.incident = Some(a.id);
                }
                if t.is_empty()
                    && let Some(a) = &self.open[f]
                {
                    // Another rule of the family joined the open alarm: no transition,
                    // but what holds it open must survive a restart.
                    let row = self.alarm_row(a);
                    self.out.alarms.push(row);
                }
                (t, None)
            }
            RuleEvent::Ended => lifecycle::end(&mut self.open[f], ri, rule, now, value),
        };
        self.record(transitions, f, cleared);
    }

    fn rule_transition(&self, mut t: Transition, ri: usize, value: Option<f64>) -> Transition {
        t.rule = Some(ri);
        t.sensor = Some(self.rules[ri].sensor);
        t.severity = Some(self.rules[ri].severity);
        t.value = value;
        t
    }

    /// What a forecast or no_event alarm's raise records: the predicted time, or since
    /// when the event has not come.
    fn trend_comment(&self, ri: usize, now: TimestampMs) -> String {
        match self.rules[ri].condition {
            Condition::Forecast { threshold, .. } => {
                match self.rate[ri].as_ref().and_then(|w| w.fitted).and_then(|(_, eta)| eta) {
                    Some(ms) => format!(
                        "at this rate {threshold} in {} (about {})",
                        crate::report::asset::fmt_duration(ms),
                        crate::model::format_rfc3339(now.saturating_add(ms))
                    ),
                    None => String::new(),
                }
            }
            Condition::NoEvent { equals, .. } => match self.last_event[ri] {
                Some(t) => format!("last read {equals} at {}", crate::model::format_rfc3339(t)),
                None => format!("{equals} not read since cryowatch started watching"),
            },
            _ => String::new(),
        }
    }

    /// Feeds the rate and forecast windows, and the time each no_event rule's event was
    /// last read, from stored history after a restart.
    pub fn prime_rate(&mut self, sensor: usize, samples: &[(TimestampMs, f64)]) {
        for ri in self.by_sensor.get(sensor).cloned().unwrap_or_default() {
            match (&self.rules[ri].condition, self.rate[ri].as_mut()) {
                (Condition::Rate { window, .. }, Some(w)) => {
                    for &(t, v) in samples {
                        w.push(t, v, crate::model::millis(*window));
                    }
                }
                (Condition::Forecast { window, .. }, Some(w)) => {
                    for &(t, v) in samples {
                        w.push_spaced(t, v, crate::model::millis(*window));
                    }
                }
                (Condition::NoEvent { equals, .. }, _) => {
                    let equals = *equals;
                    let known = samples
                        .iter()
                        .rev()
                        .find(|(_, v)| (v - equals).abs() < 1e-9)
                        .or(samples.first());
                    if let Some(&(t, _)) = known {
                        self.last_event[ri] = Some(self.last_event[ri].map_or(t, |l| l.max(t)));
                    }
                }
                _ => {}
            }
        }
    }

    /// How far back the rules of `sensor` look (the longest rate or forecast window, or
    /// no_event `within`), if any of them does.
    pub fn rate_window(&self, sensor: usize) -> Option<Duration> {
        self.by_sensor
            .get(sensor)?
            .iter()
            .filter_map(|&ri| match self.rules[ri].condition {
                Condition::Rate { window, .. } | Condition::Forecast { window, .. } => Some(window),
                Condition::NoEvent { within, .. } => Some(within),
                _ => None,
            })
            .max()
    }
}
