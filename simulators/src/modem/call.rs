//! Voice calls on the fake modem: `ATD<number>;` dials, `ATH` hangs up. Nothing is
//! said on the line; a call only rings. Every call that ended is recorded with when it
//! was dialled, when it ended and how (`ATH`, `NO CARRIER`, `BUSY`).

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{Fed, Modem, response};

/// What the network does with a dialled call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallEnd {
    /// It rings until the caller hangs up (`ATH`).
    #[default]
    Never,
    /// It ends by itself with `NO CARRIER` this long after dialling.
    After(Duration),
    /// The callee is busy: `ATD` answers `BUSY`.
    Busy,
}

/// One voice call dialled on the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub number: String,
    pub dialled: SystemTime,
    /// When it ended; `None` while it rings.
    pub ended: Option<SystemTime>,
    /// `ATH`, `NO CARRIER` or `BUSY`; empty while it rings.
    pub ended_by: String,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Call {
    /// `{"call":"+1555…","dialled_ms":…,"ended_ms":…|null,"ended_by":"ATH"}`, times in
    /// milliseconds since the Unix epoch.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "call": self.number,
            "dialled_ms": millis(self.dialled),
            "ended_ms": self.ended.map(millis),
            "ended_by": self.ended_by,
        })
    }
}

impl Modem {
    /// `ATD<number>;` (the semicolon makes it a voice call). `OK` once dialled, or
    /// `BUSY`; a data call (no semicolon), an empty number or a second call is `ERROR`.
    pub(super) fn dial(&mut self, dial: &str, now: SystemTime, fed: &mut Fed) {
        let number = dial.trim().strip_suffix(';').map(str::trim).unwrap_or("");
        let valid = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'+');
        if !valid || self.active_call().is_some() {
            return response(&mut fed.output, "ERROR");
        }
        if !matches!(self.creg, 1 | 5) {
            return response(&mut fed.output, "NO CARRIER");
        }
        let mut call = Call {
            number: number.to_string(),
            dialled: now,
            ended: None,
            ended_by: String::new(),
        };
        tracing::info!(number, "modem: dialling");
        if self.call_end == CallEnd::Busy {
            call.ended = Some(now);
            call.ended_by = "BUSY".into();
            response(&mut fed.output, "BUSY");
            fed.calls.push(call.clone());
        } else {
            response(&mut fed.output, "OK");
        }
        self.calls.push(call);
    }

    /// `ATH`: ends the call that rings, if any; always `OK`.
    pub(super) fn hang_up(&mut self, now: SystemTime, fed: &mut Fed) {
        if let Some(call) = self.active_call() {
            call.ended = Some(now);
            call.ended_by = "ATH".into();
            tracing::info!(number = %call.number, "modem: call hung up");
            fed.calls.push(call.clone());
        }
        response(&mut fed.output, "OK");
    }

    /// When the call that rings ends by itself, if it does.
    pub fn next_event(&self) -> Option<SystemTime> {
        let call = self.calls.last().filter(|c| c.ended.is_none())?;
        match self.call_end {
            CallEnd::After(d) => Some(call.dialled + d),
            CallEnd::Never | CallEnd::Busy => None,
        }
    }

    /// Time passed: a call due to end by itself ends with `NO CARRIER`.
    pub fn tick(&mut self, now: SystemTime) -> Fed {
        let mut fed = Fed::default();
        if self.silent || self.next_event().is_none_or(|due| due > now) {
            return fed;
        }
        if let Some(call) = self.active_call() {
            call.ended = Some(now);
            call.ended_by = "NO CARRIER".into();
            tracing::info!(number = %call.number, "modem: call ended by the network");
            fed.calls.push(call.clone());
            response(&mut fed.output, "NO CARRIER");
        }
        fed
    }

    fn active_call(&mut self) -> Option<&mut Call> {
        self.calls.last_mut().filter(|c| c.ended.is_none())
    }

    /// `call_end <ms>|never|busy` from the control port.
    pub(super) fn set_call_end(&mut self, arg: &str) -> String {
        self.call_end = match arg {
            "never" => CallEnd::Never,
            "busy" => CallEnd::Busy,
            ms => match ms.parse::<u64>() {
                Ok(ms) => CallEnd::After(Duration::from_millis(ms)),
                Err(_) => return "err usage: call_end <milliseconds>|never|busy".into(),
            },
        };
        "ok".into()
    }
}
