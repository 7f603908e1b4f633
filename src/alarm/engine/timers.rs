//! What time alone decides: sensors gone stale, delays that ran out, clock steps, and
//! suppression (shelvings and maintenance windows) beginning or ending.

use crate::config::rules::Condition;
use crate::model::TimestampMs;

use super::Engine;
use crate::alarm::lifecycle::{AlarmState, Change, Transition};
use crate::alarm::suppress;

impl Engine {
    /// The wall clock stepped by `delta_ms` (an NTP step, someone setting the time):
    /// staleness keeps counting the time that really passed, so a step forward does not
    /// make every sensor stale at once and a step back does not hide a silent one for
    /// as long as the step; after a step back, readings stamped by the new clock are
    /// evaluated although older than the newest one stamped by the old clock.
    pub fn shift_clock(&mut self, delta_ms: i64) {
        for t in self.last_good.iter_mut().flatten() {
            *t = t.saturating_add(delta_ms);
        }
        self.started = self.started.saturating_add(delta_ms);
        if delta_ms < 0 {
            for t in self.last_eval.iter_mut().flatten() {
                *t = t.saturating_add(delta_ms);
            }
        }
    }

    /// Evaluates what time alone decides: stale sensors, delays that ran out,
    /// suppressions that began or ended.
    pub fn on_tick(&mut self, now: TimestampMs) {
        for k in 0..self.stale_rules.len() {
            let ri = self.stale_rules[k];
            let Condition::Stale { after } = self.rules[ri].condition else {
                continue;
            };
            let s = self.rules[ri].sensor;
            // A restart keeps what the store knew, but gives the sources half a
            // `stale_after` to report before a sensor silent across it is stale: a
            // daemon restarting in a loop still raises stale alarms.
            let after_ms = crate::model::millis(after);
            let last = match self.last_good[s] {
                Some(l) => l.max(self.started.saturating_sub(after_ms / 2)),
                None => self.started,
            };
            let became = last.saturating_add(after_ms);
            if now >= became && self.states[ri].cond != Some(true) {
                self.step_rule(ri, Some(true), became, now, None);
            }
        }
        for k in 0..self.event_rules.len() {
            let ri = self.event_rules[k];
            let Condition::NoEvent { within, .. } = self.rules[ri].condition else {
                continue;
            };
            // Nobody can expect an event from before cryowatch started watching (the
            // store's history is read back at a restart).
            let last = self.last_event[ri].unwrap_or(self.started);
            let became = last.saturating_add(crate::model::millis(within));
            if now >= became && self.states[ri].cond != Some(true) {
                self.step_rule(ri, Some(true), became, now, None);
            }
        }
        for ri in 0..self.rules.len() {
            let st = self.states[ri];
            if st.cond == Some(true) && !st.fired {
                self.step_rule(ri, None, now, now, None);
            }
        }
        self.update_suppression(now);
    }

    /// Why `sensor` is suppressed, from the shelvings and the cached window states.
    pub(super) fn reason_for(&self, sensor: usize, now: TimestampMs) -> Option<String> {
        if let Some(s) = self
            .shelves
            .iter()
            .find(|s| s.sensor == sensor && s.from <= now && now < s.until)
        {
            return Some(format!("shelved by {}: {}", s.by, s.reason));
        }
        self.windows_of
            .get(sensor)?
            .iter()
            .find(|&&mi| self.window_open[mi])
            .map(|&mi| {
                format!(
                    "maintenance {}: {}",
                    self.maintenance[mi].id, self.maintenance[mi].reason
                )
            })
    }

    /// Suppression that began or ended: shelvings that ran out, windows that opened or
    /// closed (each window is looked at again only when it is due to change), and the
    /// open alarms of the sensors concerned.
    pub(super) fn update_suppression(&mut self, now: TimestampMs) {
        let mut expired = Vec::new();
        self.shelves.retain(|s| {
            let keep = now < s.until;
            if !keep {
                expired.push(s.clone());
            }
            keep
        });
        for s in expired {
            let mut t = Transition::new(Change::Unshelved, s.until.min(now), "normal");
            t.sensor = Some(s.sensor);
            t.comment = format!("shelving by {} expired ({})", s.by, s.reason);
            self.out.events.push(self.event_row(&t));
            self.out.shelves.push(self.shelf_row(&s, true));
            self.suppression_dirty.push(s.sensor);
        }
        for mi in 0..self.maintenance.len() {
            if now < self.window_next[mi] {
                continue;
            }
            let m = &self.maintenance[mi];
            let open_now = suppress::window_open(&m.window, &self.tz, now);
            self.window_next[mi] = suppress::next_change(&m.window, &self.tz, now);
            if open_now == self.window_open[mi] {
                continue;
            }
            self.window_open[mi] = open_now;
            let change = if open_now {
                Change::MaintenanceStarted
            } else {
                Change::MaintenanceEnded
            };
            let mut t = Transition::new(change, now, "normal");
            t.comment = format!(
                "{} ({}): {}",
                m.id,
                m.reason,
                m.sensors
                    .iter()
                    .map(|&s| self.sensor_names[s].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.suppression_dirty.extend(m.sensors.iter().copied());
            self.out.events.push(self.event_row(&t));
        }
        let mut dirty = std::mem::take(&mut self.suppression_dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for s in dirty {
            if s >= self.suppressed.len() {
                continue;
            }
            let now_reason = self.reason_for(s, now);
            if now_reason == self.suppressed[s] {
                continue;
            }
            self.suppressed[s] = now_reason.clone();
            // Open alarms of the sensor follow: escalated again once nothing suppresses them.
            for k in 0..self.families_of[s].len() {
                let f = self.families_of[s][k];
                let Some(a) = self.open[f].as_mut() else { continue };
                if self.rules[a.rule].sensor != s {
                    continue;
                }
                let was = a.suppressed.take();
                a.suppressed = now_reason.clone();
                let a = a.clone();
                if was.is_some() && now_reason.is_none() && a.state == AlarmState::Active {
                    let mut t = Transition::new(Change::Unsuppressed, now, a.state.as_str());
                    t.alarm = Some(a.id);
                    t.rule = Some(a.rule);
                    t.sensor = Some(s);
                    t.severity = Some(a.severity);
                    t.comment = format!(
                        "suppression ended ({}); the alarm is still active",
                        was.unwrap_or_default()
                    );
                    self.out.events.push(self.event_row(&t));
                }
                let row = self.alarm_row(&a);
                self.out.alarms.push(row);
            }
        }
    }
}
