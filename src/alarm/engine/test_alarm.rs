//! Alarm tests (`cryowatch test-alarm`): a synthetic excursion evaluated by a real rule
//! and raised through the normal lifecycle, never a stored reading; acknowledging it
//! completes the test.

use crate::config::rules::Condition;
use crate::model::changes::TestRow;
use crate::model::{Quality, TimestampMs};

use super::Engine;
use crate::alarm::condition;
use crate::alarm::lifecycle::{self, Ack, RaiseContext};

impl Engine {
    /// Starts an alarm test on `sensor`: the value just past its first threshold rule, or
    /// the alarm state of its first state rule (a discrete input: lid open, an LN2
    /// controller's alarm relay), is evaluated by that rule, and if the rule says it is an
    /// excursion an alarm is raised
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
                Condition::State { equals } => equals,
                _ => continue,
            };
            chosen = Some((ri, v));
            break;
        }
        let Some((ri, value)) = chosen else {
            return Err(format!(
                "sensor {sensor} has no high, low or state rule to test (rate, forecast, no_event, stale and fault rules are not tested with a synthetic value)"
            ));
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
        // A discrete sensor's value as people read it: "OPEN (1)".
        let shown = match &self.state_names[s] {
            Some(states) => format!("{} ({value})", crate::config::states::name_of(states, value)),
            None => value.to_string(),
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
            t.comment = format!("TEST started by {by}: synthetic value {shown} (no reading stored)");
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

    pub(super) fn acknowledge_test(&mut self, k: usize, ack: Ack) -> Result<String, String> {
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
}
