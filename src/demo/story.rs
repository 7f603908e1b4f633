//! The demo's narrator: reads the store the daemon writes and tells, as it happens, when
//! an alarm opens, when a page is sent (to whom, which escalation step), when a person
//! acknowledges it, and that the escalation steps still to come are then not sent.

use std::collections::{HashMap, HashSet};

use crate::config::Config;
use crate::model::{AlarmState, TimestampMs};
use crate::notify::dispatcher::decide::Policy;
use crate::notify::escalation;
use crate::store::alarms::AlarmRow;
use crate::store::{Store, StoreError};

/// How long after a withheld step's due time the narrator looks whether it was sent:
/// the dispatcher plans every few seconds.
const GRACE_MS: TimestampMs = 10_000;

/// What has been told so far.
#[derive(Default)]
pub struct Narrator {
    primed: bool,
    alarms: HashMap<i64, Told>,
    pages: HashSet<i64>,
    withheld: Vec<Withheld>,
}

#[derive(Clone, Copy, PartialEq)]
struct Told {
    state: AlarmState,
    acked: bool,
}

/// An escalation step not yet sent when its alarm was acknowledged.
struct Withheld {
    alarm: i64,
    step: usize,
    due: TimestampMs,
    by: String,
}

impl Narrator {
    /// The lines to print for what happened since the last call. The first call only
    /// takes note of what a reused demo directory already holds.
    pub fn tell(&mut self, cfg: &Config, store: &Store, now: TimestampMs) -> Result<Vec<String>, StoreError> {
        let (alarms, notes) = store.snapshot(|s| Ok((s.alarms(false)?, s.notifications(None)?)))?;
        let mut out = Vec::new();
        let primed = std::mem::replace(&mut self.primed, true);
        for a in &alarms {
            let now_told = Told {
                state: a.state,
                acked: a.acked_by.is_some(),
            };
            let before = self.alarms.insert(a.id, now_told);
            if !primed || before == Some(now_told) {
                continue;
            }
            if before.is_none() {
                out.push(format!(
                    ">>> ALARM {} raised: {} {} on {} ({})",
                    a.id,
                    a.severity.as_str().to_uppercase(),
                    a.rule,
                    a.sensor,
                    cfg.describe_value(&a.sensor, a.value)
                ));
            }
            if now_told.acked && before.is_none_or(|b| !b.acked) {
                out.push(self.acknowledged(cfg, a, &notes, now));
            }
            if a.state == AlarmState::Cleared && before.is_none_or(|b| b.state != AlarmState::Cleared) {
                out.push(format!(">>> alarm {} is back to normal (cleared)", a.id));
            }
        }
        for n in &notes {
            if n.state != "sent" || !self.pages.insert(n.id) || !primed {
                continue;
            }
            let whom = cfg
                .notify
                .contacts
                .iter()
                .find(|c| c.id == n.contact)
                .map_or(n.contact.clone(), |c| format!("{} ({})", c.id, c.name));
            let via = n.via.as_deref().unwrap_or(&n.channel);
            let alarm = alarms.iter().find(|a| Some(a.id) == n.alarm);
            let steps = alarm
                .and_then(|a| policy(cfg).escalation_for(a).map(|e| e.steps.len()))
                .unwrap_or(0);
            out.push(match (n.kind.as_str(), n.alarm) {
                ("page", Some(id)) => format!(
                    ">>> PAGE sent for alarm {id}: escalation step {} of {steps}, to {whom} by {via}",
                    n.step + 1
                ),
                ("normal", Some(id)) => format!(">>> back-to-normal notice for alarm {id} sent to {whom} by {via}"),
                (kind, _) => format!(">>> {kind} message sent to {whom} by {via}"),
            });
        }
        let due_now: Vec<Withheld> = {
            let (due, later) = std::mem::take(&mut self.withheld)
                .into_iter()
                .partition(|w| now >= w.due + GRACE_MS);
            self.withheld = later;
            due
        };
        for w in due_now {
            let sent = notes
                .iter()
                .any(|n| n.alarm == Some(w.alarm) && n.kind == "page" && n.step == w.step as i64);
            out.push(if sent {
                format!(
                    ">>> alarm {}: escalation step {} WAS SENT although {} had acknowledged it",
                    w.alarm,
                    w.step + 1,
                    w.by
                )
            } else {
                format!(
                    ">>> alarm {}: escalation step {} was due at {} and was not sent: {} acknowledged it",
                    w.alarm,
                    w.step + 1,
                    clock(w.due),
                    w.by
                )
            });
        }
        Ok(out)
    }

    /// The line for an acknowledgement; notes the steps it withholds.
    fn acknowledged(
        &mut self,
        cfg: &Config,
        a: &AlarmRow,
        notes: &[crate::store::outbox::Notification],
        now: TimestampMs,
    ) -> String {
        let by = a.acked_by.clone().unwrap_or_default();
        let path = a.ack_path.as_deref().map(|p| format!(" via {p}")).unwrap_or_default();
        let comment = a
            .ack_comment
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| format!(" (\"{}\")", crate::escape::control(c)))
            .unwrap_or_default();
        let mut line = format!(
            ">>> alarm {} ACKNOWLEDGED by {by}{path}{comment}: escalation stops",
            a.id
        );
        let policy = policy(cfg);
        let Some(esc) = policy.escalation_for(a) else {
            return line;
        };
        for (i, step) in esc.steps.iter().enumerate() {
            let planned = notes
                .iter()
                .any(|n| n.alarm == Some(a.id) && n.kind == "page" && n.step == i as i64);
            if planned {
                continue;
            }
            let due = a.raised_at + crate::model::millis(step.after);
            let whom: Vec<String> = escalation::recipients(&cfg.notify, step, &cfg.site.timezone, now)
                .iter()
                .map(|c| c.id.clone())
                .collect();
            line.push_str(&format!(
                "; step {} (to {}, due at {}) will not be sent",
                i + 1,
                whom.join(", "),
                clock(due)
            ));
            self.withheld.push(Withheld {
                alarm: a.id,
                step: i,
                due,
                by: by.clone(),
            });
        }
        line
    }
}

fn policy(cfg: &Config) -> Policy<'_> {
    Policy {
        cfg,
        tz: &cfg.site.timezone,
        reaching: &|_| Vec::new(),
    }
}

/// A time of day for the printout, in UTC like the rest of the demo's clock.
fn clock(t: TimestampMs) -> String {
    jiff::Timestamp::from_millisecond(t)
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_else(|_| t.to_string())
}
