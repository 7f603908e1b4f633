//! `close`: a corrective action, signed with the signer's password, that closes an
//! excursion (see [`crate::store::quality`]).

use std::path::Path;

use super::{CommandError, load_for_reading, read_password};
use crate::model::now_ms;
use crate::store::Store;
use crate::store::quality::{Closing, Refused, check_closing};

/// What `close` records besides the alarm and the signer.
pub struct CloseArgs<'a> {
    pub reason: &'a str,
    pub action: &'a str,
    pub impact: &'a str,
    pub comment: &'a str,
}

/// `close`: closes alarm `alarm` with a corrective action signed by dashboard user `by`,
/// whose password is read from standard input. Bad input (exit 2, nothing recorded):
/// an unknown reason, a missing comment the reason requires, an alarm that has not
/// cleared. A wrong password signs nothing, is audited, and fails (exit 1).
pub fn close(config: &Path, alarm: i64, by: &str, args: &CloseArgs<'_>) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let bad = CommandError::BadInput;
    let (reason, impact) = check_closing(&cfg.reasons, args.reason, args.action, args.impact, args.comment)
        .map_err(|(field, problem)| bad(format!("--{field}: {problem}")))?;
    let mut store = Store::open(&cfg.store.path)?;
    // Refused before the password is asked for: nothing to sign.
    match store.alarm(alarm)? {
        None => return Err(bad(Refused::NoSuchAlarm(alarm).to_string())),
        Some(a) if a.cleared_at.is_none() => return Err(bad(Refused::NotCleared(alarm, a.state.as_str()).to_string())),
        Some(_) => {}
    }
    let password = read_password(&format!(
        "password of {by} (signing a corrective action for alarm {alarm}): "
    ))?;
    let subject = format!("alarm {alarm}");
    let signer = store
        .signer(by, &password, &subject, now_ms())?
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let closing = Closing {
        alarm,
        reason,
        action: args.action.trim(),
        impact,
        comment: args.comment.trim(),
    };
    let done = store
        .close_alarm(&signer, &closing, now_ms())?
        .map_err(|e| bad(format!("{e}; nothing was recorded")))?;
    println!(
        "alarm {alarm} closed: {} ({}), impact {}; signed by {} ({}) as {:?}, content SHA-256 {}",
        done.reason,
        done.reason_text,
        done.impact,
        done.printed_name,
        done.signed_by,
        done.meaning,
        done.content_sha256
    );
    Ok(())
}
