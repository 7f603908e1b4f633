//! The alarm engine: feeds readings and the clock through the pure rule evaluation
//! ([`super::condition`]) and lifecycle ([`super::lifecycle`]), applies
//! acknowledgements and shelvings, groups alarms into power incidents, and collects
//! every change as store rows ([`Changes`]). It does no I/O itself: the store writer
//! commits the changes in the same transaction as the readings that caused them.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Config;
use crate::config::rules::{Condition, Rule};
use crate::model::changes::{AlarmRow, Changes, EventRow, RequestRow, RuleStateRow, Saved, ShelfRow, TestRow};
use crate::model::{Quality, Reading, TimestampMs};

use super::condition::{self, RateWindow, RuleEvent, RuleState};
use super::lifecycle::{self, Ack, Alarm, AlarmId, AlarmState, Change, RaiseContext, Transition};
use super::suppress::{self, Shelf};

/// The longest a shelving may last.
pub const MAX_SHELVE: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Engine {
    rules: Vec<Rule>,
    sensor_names: Vec<String>,
    asset_of_sensor: Vec<String>,
    maintenance: Vec<crate::config::rules::Maintenance>,
    tz: jiff::tz::TimeZone,
    states: Vec<RuleState>,
    /// Rule → family index; family → its open alarm.
    family_of: Vec<usize>,
    open: Vec<Option<Alarm>>,
    /// Open alarm tests (`cryowatch test-alarm`): outside the rule families, so a test
    /// never holds back or absorbs a real alarm.
    tests: Vec<Option<Alarm>>,
    /// Non-combined rules per sensor, and the combined rules each rule feeds.
    by_sensor: Vec<Vec<usize>>,
    combos_of: Vec<Vec<usize>>,
    stale_rules: Vec<usize>,
    last_good: Vec<Option<TimestampMs>>,
    last_value: Vec<Option<f64>>,
    /// Time of the newest reading evaluated, per sensor.
    last_eval: Vec<Option<TimestampMs>>,
    /// Nobody can expect a reading from before the engine started.
    started: TimestampMs,
    rate: Vec<Option<RateWindow>>,
    shelves: Vec<Shelf>,
    suppressed: Vec<Option<String>>,
    /// Per maintenance window: open now, and when to look again.
    window_open: Vec<bool>,
    window_next: Vec<TimestampMs>,
    /// Sensor → the maintenance windows that name it; sensor → alarm families shown under it.
    windows_of: Vec<Vec<usize>>,
    families_of: Vec<Vec<usize>>,
    /// Sensors whose suppression must be worked out again on the next tick.
    suppression_dirty: Vec<usize>,
    next_alarm: AlarmId,
    next_shelf: i64,
    /// The open power incident: the id of the alarm that opened it.
    incident: Option<AlarmId>,
    out: Changes,
    dirty_rules: Vec<usize>,
    /// Readings evaluated.
    pub evaluated: u64,
}

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
                _ => by_sensor[r.sensor].push(i),
            }
        }
        let rate = rules
            .iter()
            .map(|r| matches!(r.condition, Condition::Rate { .. }).then(RateWindow::default))
            .collect();
        let mut e = Engine {
            sensor_names: config.sensors.iter().map(|s| s.id.clone()).collect(),
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

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

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
                c => condition::decide(c, prev, r.value, r.quality),
            };
            self.step_rule(ri, cond, at, now, r.value);
        }
    }

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
        for ri in 0..self.rules.len() {
            let st = self.states[ri];
            if st.cond == Some(true) && !st.fired {
                self.step_rule(ri, None, now, now, None);
            }
        }
        self.update_suppression(now);
    }

    fn step_rule(&mut self, ri: usize, cond: Option<bool>, at: TimestampMs, now: TimestampMs, value: Option<f64>) {
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
                let t = lifecycle::fire(&mut self.open[f], ri, rule, since, now, v, &mut self.next_alarm, ctx);
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

    /// Turns transitions into store rows, with the alarm's row as it now is.
    fn record(&mut self, transitions: Vec<Transition>, family: usize, cleared: Option<Alarm>) {
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

    fn event_row(&self, t: &Transition) -> EventRow {
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

    fn alarm_row(&self, a: &Alarm) -> AlarmRow {
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

    /// Why `sensor` is suppressed, from the shelvings and the cached window states.
    fn reason_for(&self, sensor: usize, now: TimestampMs) -> Option<String> {
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
    fn update_suppression(&mut self, now: TimestampMs) {
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

    fn shelf_row(&self, s: &Shelf, ended: bool) -> ShelfRow {
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

    /// Acknowledges alarm `id`.
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        comment: &str,
        path: &str,
        now: TimestampMs,
    ) -> Result<String, String> {
        if by.trim().is_empty() {
            return Err("--by must name who acknowledges".into());
        }
        let ack = Ack {
            by: by.into(),
            at: now,
            comment: comment.into(),
            path: path.into(),
        };
        if let Some(k) = self.tests.iter().position(|a| a.as_ref().is_some_and(|a| a.id == id)) {
            return self.acknowledge_test(k, ack);
        }
        let Some(f) = self.open.iter().position(|a| a.as_ref().is_some_and(|a| a.id == id)) else {
            return Err(format!(
                "no open alarm {id} (it may be cleared already; see `cryowatch alarms`)"
            ));
        };
        let ri = self.open[f].as_ref().map_or(0, |a| a.rule);
        let rule = &self.rules[ri];
        match lifecycle::acknowledge(&mut self.open[f], rule, ack) {
            Ok((t, cleared)) => {
                let cleared_too = cleared.is_some();
                self.record(t, f, cleared);
                Ok(if cleared_too {
                    format!("alarm {id} acknowledged by {by}; its condition was over, so it is cleared")
                } else {
                    format!("alarm {id} acknowledged by {by}")
                })
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Shelves `sensor` for `duration`: its alarms are recorded but not escalated.
    pub fn shelve(
        &mut self,
        sensor: &str,
        duration: Duration,
        by: &str,
        reason: &str,
        now: TimestampMs,
    ) -> Result<String, String> {
        let Some(s) = self.sensor_names.iter().position(|n| n == sensor) else {
            return Err(format!("unknown sensor {sensor:?}"));
        };
        if by.trim().is_empty() || reason.trim().is_empty() {
            return Err("shelving needs --by and a --reason".into());
        }
        if duration.is_zero() || duration > MAX_SHELVE {
            return Err(format!(
                "--for must be between 1s and {}; found {}",
                humantime::format_duration(MAX_SHELVE),
                humantime::format_duration(duration)
            ));
        }
        let shelf = Shelf {
            id: self.next_shelf,
            sensor: s,
            from: now,
            until: crate::model::later(now, duration),
            by: by.into(),
            reason: reason.into(),
        };
        self.next_shelf += 1;
        let mut t = Transition::new(Change::Shelved { until: shelf.until }, now, "normal");
        t.sensor = Some(s);
        t.actor = by.into();
        t.comment = format!(
            "until {} ({}): {reason}",
            crate::model::format_rfc3339(shelf.until),
            humantime::format_duration(duration)
        );
        self.out.events.push(self.event_row(&t));
        self.out.shelves.push(self.shelf_row(&shelf, false));
        self.suppression_dirty.push(s);
        self.shelves.push(shelf);
        self.update_suppression(now);
        Ok(format!(
            "sensor {sensor} shelved until {} by {by}",
            crate::model::format_rfc3339(crate::model::later(now, duration))
        ))
    }

    /// Starts an alarm test on `sensor`: the value just past its first threshold rule is
    /// evaluated by that rule, and if the rule says it is an excursion an alarm is raised
    /// through the normal lifecycle — escalated and paged like any other, marked as a
    /// test — and stays open until someone acknowledges it. No reading is stored and the
    /// rule's own state is untouched.
    pub fn start_test(&mut self, sensor: &str, by: &str, now: TimestampMs) -> Result<String, String> {
        if by.trim().is_empty() {
            return Err("--by must name who starts the test".into());
        }
        let Some(s) = self.sensor_names.iter().position(|n| n == sensor) else {
            return Err(format!("unknown sensor {sensor:?}"));
        };
        let candidates = self.rules.iter().enumerate().filter(|(_, r)| r.sensor == s && r.raises);
        let mut chosen = None;
        for (ri, r) in candidates {
            let v = match r.condition {
                Condition::High { threshold, hysteresis } => threshold + hysteresis.max(1.0),
                Condition::Low { threshold, hysteresis } => threshold - hysteresis.max(1.0),
                _ => continue,
            };
            chosen = Some((ri, v));
            break;
        }
        let Some((ri, value)) = chosen else {
            return Err(format!("sensor {sensor} has no high or low threshold rule to test"));
        };
        if self.tests.iter().flatten().any(|a| self.rules[a.rule].sensor == s) {
            return Err(format!(
                "an alarm test of {sensor} is already open: acknowledge it first"
            ));
        }
        let rule = &self.rules[ri];
        if condition::decide(&rule.condition, None, Some(value), Quality::Good) != Some(true) {
            return Err(format!("rule {} does not treat {value} as an excursion", rule.id));
        }
        let ctx = RaiseContext {
            suppressed: self.suppressed[s].clone(),
            incident: None,
        };
        let mut slot = None;
        let transitions = lifecycle::fire(&mut slot, ri, rule, now, now, Some(value), &mut self.next_alarm, ctx);
        let Some(mut alarm) = slot else {
            return Err("the rule raised no alarm".into());
        };
        // Over as soon as it is raised: acknowledging it completes the test.
        alarm.latching = true;
        alarm.returned = true;
        alarm.firing.clear();
        for mut t in transitions {
            t.actor = by.into();
            t.comment = format!("TEST started by {by}: synthetic value {value} (no reading stored)");
            self.out.events.push(self.event_row(&t));
        }
        self.out.alarms.push(self.alarm_row(&alarm));
        self.out.tests.push(TestRow {
            sensor: sensor.into(),
            rule: rule.id.clone(),
            alarm: alarm.id,
            started_at: now,
            by: by.into(),
            value,
        });
        let id = alarm.id;
        let suppressed = alarm.suppressed.clone();
        self.tests.push(Some(alarm));
        Ok(match suppressed {
            Some(why) => format!(
                "alarm test {id} raised on {sensor} by rule {} but NOT paged: {why}",
                self.rules[ri].id
            ),
            None => format!(
                "alarm test {id} raised on {sensor} by rule {}: paging the on-call contact; acknowledge alarm {id} to complete the test",
                self.rules[ri].id
            ),
        })
    }

    fn acknowledge_test(&mut self, k: usize, ack: Ack) -> Result<String, String> {
        let Some(ri) = self.tests[k].as_ref().map(|a| a.rule) else {
            return Err("no such test".into());
        };
        let by = ack.by.clone();
        match lifecycle::acknowledge(&mut self.tests[k], &self.rules[ri], ack) {
            Ok((transitions, cleared)) => {
                for t in &transitions {
                    self.out.events.push(self.event_row(t));
                }
                if let Some(a) = cleared.as_ref().or(self.tests[k].as_ref()) {
                    let row = self.alarm_row(a);
                    let id = a.id;
                    self.out.alarms.push(row);
                    if cleared.is_some() {
                        self.tests.remove(k);
                    }
                    return Ok(format!("alarm test {id} acknowledged by {by}: test complete"));
                }
                Ok(format!("alarm test acknowledged by {by}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Carries out a queued request and records its answer.
    pub fn request(&mut self, req: &RequestRow, now: TimestampMs) {
        let s = |k: &str| req.args.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let result = match req.kind.as_str() {
            "ack" => match req.args.get("alarm").and_then(|v| v.as_i64()) {
                Some(id) => self.acknowledge(id, &s("by"), &s("comment"), &s("path"), now),
                None => Err("the request names no alarm".into()),
            },
            "shelve" => match req.args.get("for_ms").and_then(|v| v.as_u64()) {
                Some(ms) => self.shelve(&s("sensor"), Duration::from_millis(ms), &s("by"), &s("reason"), now),
                None => Err("the request gives no duration".into()),
            },
            "test_alarm" => self.start_test(&s("sensor"), &s("by"), now),
            other => Err(format!("unknown request {other:?}")),
        };
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.out.answered.push((req.id, ok, text));
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

    /// Feeds the rate windows from stored history after a restart.
    pub fn prime_rate(&mut self, sensor: usize, samples: &[(TimestampMs, f64)]) {
        for ri in self.by_sensor.get(sensor).cloned().unwrap_or_default() {
            if let (Condition::Rate { window, .. }, Some(w)) = (&self.rules[ri].condition, self.rate[ri].as_mut()) {
                for &(t, v) in samples {
                    w.push(t, v, crate::model::millis(*window));
                }
            }
        }
    }

    /// The longest rate window of any rule of `sensor`, if it has rate rules.
    pub fn rate_window(&self, sensor: usize) -> Option<Duration> {
        self.by_sensor
            .get(sensor)?
            .iter()
            .filter_map(|&ri| match self.rules[ri].condition {
                Condition::Rate { window, .. } => Some(window),
                _ => None,
            })
            .max()
    }
}
