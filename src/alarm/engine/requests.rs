//! What people ask of the engine: acknowledging an alarm (signed or not), shelving a
//! sensor, and the queued requests that carry either (or an alarm test) from the command
//! line and the HTTP API.
//!
//! A signed acknowledgement's request carries its signer (`"signer": {"user",
//! "printed_name"}`), whose password the caller checked before queueing it; the engine
//! adds the signature to the change set, and the store writes it with the
//! acknowledgement in the same transaction ([`crate::store::quality`]).

use std::time::Duration;

use crate::model::TimestampMs;
use crate::model::changes::{RequestRow, SignedAck, Signer};

use super::{Engine, MAX_SHELVE};
use crate::alarm::lifecycle::{self, Ack, AlarmId, Change, Transition};
use crate::alarm::suppress::Shelf;

impl Engine {
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

    /// Acknowledges alarm `id` as `signer`, whose password the caller checked: the
    /// change set carries the signature (meaning `acknowledged`) with the acknowledgement.
    pub fn acknowledge_signed(
        &mut self,
        id: AlarmId,
        signer: &Signer,
        comment: &str,
        path: &str,
        now: TimestampMs,
    ) -> Result<String, String> {
        let done = self.acknowledge(id, &signer.user, comment, path, now)?;
        self.out.signed_acks.push(SignedAck {
            alarm: id,
            at: now,
            signer: signer.clone(),
        });
        Ok(format!("{done}; signed by {} ({})", signer.printed_name, signer.user))
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

    /// Ends now the shelvings of `sensor` made for `reason` (an alarm check finished
    /// before its shelving ran out): paging of the sensor is back to normal unless
    /// another shelving or a maintenance window still holds it.
    pub fn end_shelving(&mut self, sensor: &str, reason: &str, now: TimestampMs) -> Result<String, String> {
        let Some(s) = self.sensor_names.iter().position(|n| n == sensor) else {
            return Err(format!("unknown sensor {sensor:?}"));
        };
        let mut ended = 0;
        for shelf in self.shelves.iter_mut().filter(|x| x.sensor == s && x.reason == reason) {
            shelf.until = shelf.until.min(now);
            ended += 1;
        }
        if ended == 0 {
            return Ok(format!("sensor {sensor} has no shelving for {reason:?} left"));
        }
        self.update_suppression(now);
        Ok(format!("shelving of {sensor} for {reason:?} ended"))
    }

    /// Carries out a queued request and records its answer.
    pub fn request(&mut self, req: &RequestRow, now: TimestampMs) {
        let s = |k: &str| req.args.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let result = match req.kind.as_str() {
            "ack" => match (
                req.args.get("alarm").and_then(|v| v.as_i64()),
                req.args.get("signer").filter(|v| !v.is_null()),
            ) {
                (None, _) => Err("the request names no alarm".into()),
                (Some(id), None) => self.acknowledge(id, &s("by"), &s("comment"), &s("path"), now),
                (Some(id), Some(signer)) => match serde_json::from_value::<Signer>(signer.clone()) {
                    Ok(signer) => self.acknowledge_signed(id, &signer, &s("comment"), &s("path"), now),
                    Err(_) => Err("the request's signer cannot be read: nothing was acknowledged".into()),
                },
            },
            "shelve" => match req.args.get("for_ms").and_then(|v| v.as_u64()) {
                Some(ms) => self.shelve(&s("sensor"), Duration::from_millis(ms), &s("by"), &s("reason"), now),
                None => Err("the request gives no duration".into()),
            },
            "end_shelving" => self.end_shelving(&s("sensor"), &s("reason"), now),
            "test_alarm" => self.start_test(&s("sensor"), &s("by"), now),
            other => Err(format!("unknown request {other:?}")),
        };
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.out.answered.push((req.id, ok, text));
    }
}
