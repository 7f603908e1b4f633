//! `close`: a corrective action, signed with the signer's password, that closes an
//! excursion (see [`crate::store::quality`]).

use std::path::Path;

use super::{CommandError, load_for_reading, read_password};
use crate::model::now_ms;
use crate::pipeline::control::checked_text;
use crate::store::Store;
use crate::store::quality::{Closing, Impact};

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
    let reason = cfg.reasons.iter().find(|r| r.code == args.reason).ok_or_else(|| {
        let known: Vec<&str> = cfg.reasons.iter().map(|r| r.code.as_str()).collect();
        bad(if known.is_empty() {
            format!(
                "--reason: unknown reason {:?}; the configuration has no [[reason]] codes",
                args.reason
            )
        } else {
            format!(
                "--reason: unknown reason {:?}; expected one of {}",
                args.reason,
                known.join(", ")
            )
        })
    })?;
    let impact = Impact::parse(args.impact).ok_or_else(|| {
        bad(format!(
            "--impact: expected one of {}, found {:?}",
            Impact::ALL.join(", "),
            args.impact
        ))
    })?;
    checked_text(args.action).map_err(|e| bad(format!("--action: {e}")))?;
    if args.action.trim().is_empty() {
        return Err(bad("--action: say what was done".into()));
    }
    checked_text(args.comment).map_err(|e| bad(format!("--comment: {e}")))?;
    if reason.requires_comment && args.comment.trim().is_empty() {
        return Err(bad(format!("--comment: reason {:?} requires a comment", reason.code)));
    }
    let mut store = Store::open(&cfg.store.path)?;
    // Refused before the password is asked for: nothing to sign.
    match store.alarm(alarm)? {
        None => return Err(bad(format!("alarm {alarm} does not exist"))),
        Some(a) if a.cleared_at.is_none() => {
            return Err(bad(format!(
                "alarm {alarm} is {}: a corrective action closes an excursion once it has cleared",
                a.state.as_str()
            )));
        }
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
