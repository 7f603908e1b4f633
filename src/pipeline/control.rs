//! Acknowledge (signed or not) and shelve from the command line.
//!
//! With the daemon running (it holds the store's lock file), the request is queued in
//! the store's `request` table; the daemon carries it out on its next clock tick, in the
//! same transaction that records its answer, so a request is applied exactly once. With
//! no daemon running, the command takes the lock itself and applies the request through
//! the same engine code, so the daemon finds it done when it starts.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Config;
use crate::model::changes::Signer;
use crate::model::now_ms;
use crate::store::Store;

/// How long the command line waits for the running daemon to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// The longest name a change is recorded under (`--by`, the API's `by`), in characters.
pub const MAX_BY: usize = 100;
/// The longest comment or reason, in characters.
pub const MAX_TEXT: usize = 4000;

/// Whether `s` is only whitespace (Unicode's White_Space, which the API document's
/// patterns list character by character).
pub fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// The person a change is recorded under, trimmed; the problem when `by` is blank or
/// longer than [`MAX_BY`] characters.
pub fn checked_by(by: &str) -> Result<&str, String> {
    let n = by.chars().count();
    if n > MAX_BY {
        return Err(format!("at most {MAX_BY} characters, found {n}"));
    }
    if blank(by) {
        return Err("name the person who makes the change (found nothing)".into());
    }
    Ok(by.trim())
}

/// The problem with a comment or reason longer than [`MAX_TEXT`] characters.
pub fn checked_text(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(format!("at most {MAX_TEXT} characters, found {n}"));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request was refused (unknown alarm, already acknowledged, bad duration...).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

pub enum Request<'a> {
    Ack {
        alarm: i64,
        by: &'a str,
        comment: &'a str,
        /// Who signs the acknowledgement, their password checked; `None`: unsigned.
        signer: Option<&'a Signer>,
    },
    Shelve {
        sensor: &'a str,
        duration: Duration,
        by: &'a str,
        reason: &'a str,
    },
    /// Ends the shelvings of `sensor` made for `reason` before they run out.
    EndShelving { sensor: &'a str, reason: &'a str },
    /// An alarm test: needs the running daemon, whose dispatcher pages it.
    TestAlarm { sensor: &'a str, by: &'a str },
}

/// The arguments of a queued acknowledgement of `alarm` by `by` through `path`; a
/// signed one carries its signer (whose password the caller checked), and `by` is then
/// the signer's user name.
pub fn ack_args(alarm: i64, by: &str, comment: &str, path: &str, signer: Option<&Signer>) -> serde_json::Value {
    match signer {
        None => json!({"alarm": alarm, "by": by, "comment": comment, "path": path}),
        Some(s) => json!({"alarm": alarm, "by": s.user, "comment": comment, "path": path, "signer": s}),
    }
}

/// Carries out `req` against the running daemon, or directly when none runs.
pub fn submit(config: &Config, req: Request) -> Result<String, ControlError> {
    let failed = |e: &dyn std::fmt::Display| ControlError::Failed(e.to_string());
    let path = &config.store.path;
    let lock = crate::store::lock::take(path).map_err(|e| failed(&format!("{e:#}")))?;
    match lock {
        Some(_lock) if matches!(req, Request::TestAlarm { .. }) => Err(ControlError::Failed(
            "cryowatch is not running on this store: an alarm test goes through the running daemon's escalation and paging; start it first".into(),
        )),
        Some(_lock) => apply_here(config, req),
        None => {
            let mut store = Store::open(path).map_err(|e| failed(&e))?;
            let (kind, args) = match req {
                Request::Ack {
                    alarm,
                    by,
                    comment,
                    signer,
                } => ("ack", ack_args(alarm, by, comment, "cli", signer)),
                Request::Shelve {
                    sensor,
                    duration,
                    by,
                    reason,
                } => (
                    "shelve",
                    json!({"sensor": sensor, "for_ms": crate::model::millis(duration), "by": by, "reason": reason}),
                ),
                Request::EndShelving { sensor, reason } => {
                    ("end_shelving", json!({"sensor": sensor, "reason": reason}))
                }
                Request::TestAlarm { sensor, by } => ("test_alarm", json!({"sensor": sensor, "by": by})),
            };
            let id = store
                .queue_request(kind, &args, now_ms())
                .map_err(|e| failed(&e))?;
            let deadline = Instant::now() + ANSWER_WAIT;
            loop {
                if let Some((ok, text)) = store
                    .request_answer(id)
                    .map_err(|e| failed(&e))?
                {
                    return if ok { Ok(text) } else { Err(ControlError::Refused(text)) };
                }
                if Instant::now() > deadline {
                    return Err(ControlError::Failed(format!(
                        "the running daemon did not answer within {}s; request {id} stays queued and will be carried out when it does",
                        ANSWER_WAIT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// No daemon runs (we hold the lock): apply through the engine and commit.
fn apply_here(config: &Config, req: Request) -> Result<String, ControlError> {
    let failed = |e: &dyn std::fmt::Display| ControlError::Failed(e.to_string());
    let mut store = Store::open(&config.store.path).map_err(|e| failed(&e))?;
    let names: Vec<(String, String)> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
    let ids = store.register_sensors(&names).map_err(|e| failed(&e))?;
    let now = now_ms();
    let mut engine = crate::pipeline::load_engine(config, &store, &ids, now).map_err(|e| failed(&e))?;
    let result = match req {
        Request::Ack {
            alarm,
            by,
            comment,
            signer: None,
        } => engine.acknowledge(alarm, by, comment, "cli", now),
        Request::Ack {
            alarm,
            comment,
            signer: Some(signer),
            ..
        } => engine.acknowledge_signed(alarm, signer, comment, "cli", now),
        Request::Shelve {
            sensor,
            duration,
            by,
            reason,
        } => engine.shelve(sensor, duration, by, reason, now),
        Request::EndShelving { sensor, reason } => engine.end_shelving(sensor, reason, now),
        Request::TestAlarm { .. } => Err("an alarm test needs the running daemon".into()),
    };
    let changes = engine.take_changes();
    store.write_alarm_changes(&changes, now).map_err(|e| failed(&e))?;
    result.map_err(ControlError::Refused)
}
