//! The commands that act on alarms and paging: `ack` (signed with `--sign`), `shelve`
//! and `test-alarm` (carried out by [`crate::pipeline::control`], through the running
//! daemon when there is one) and `test-page`.

use std::path::Path;

use super::{CommandError, load, load_for_reading, read_password, runtime};
use crate::config::Config;
use crate::model::changes::Signer;
use crate::model::now_ms;
use crate::pipeline::control::{self as pipeline_control, ControlError, Request};
use crate::store::Store;

/// `ack`: acknowledges alarm `alarm_id` as `by`, with `comment`. With `sign`, `by` is a
/// dashboard user who signs the acknowledgement (meaning `acknowledged`) with their
/// password, read from standard input: a wrong password acknowledges nothing, is
/// audited, and fails (exit 1).
pub fn ack(config: &Path, alarm_id: i64, by: &str, comment: &str, sign: bool) -> Result<(), CommandError> {
    let by = checked_by(by)?;
    pipeline_control::checked_text(comment).map_err(|e| CommandError::BadInput(format!("--comment: {e}")))?;
    let cfg = load_for_reading(config)?;
    let signer = if sign { Some(signer(&cfg, alarm_id, by)?) } else { None };
    submit(
        &cfg,
        Request::Ack {
            alarm: alarm_id,
            by,
            comment,
            signer: signer.as_ref(),
        },
    )
}

/// `by` as the signer of the acknowledgement of `alarm`, once the password read from
/// standard input is checked. Refused before the password is asked for when there is
/// nothing to acknowledge.
fn signer(cfg: &Config, alarm: i64, by: &str) -> Result<Signer, CommandError> {
    let mut store = Store::open(&cfg.store.path)?;
    match store.alarm(alarm)? {
        None => return Err(CommandError::BadInput(format!("cryowatch: no alarm {alarm}"))),
        Some(a) if a.cleared_at.is_some() => {
            return Err(CommandError::BadInput(format!(
                "cryowatch: alarm {alarm} has cleared: there is nothing to acknowledge"
            )));
        }
        Some(_) => {}
    }
    let password = read_password(&format!(
        "password of {by} (signing the acknowledgement of alarm {alarm}): "
    ))?;
    store
        .signer(by, &password, &format!("alarm {alarm}"), now_ms())?
        .map_err(|e| CommandError::Failed(e.to_string()))
}

/// `shelve`: shelves `sensor` for `duration` (e.g. `2h`) as `by`, for `reason`.
pub fn shelve(config: &Path, sensor: &str, duration: &str, by: &str, reason: &str) -> Result<(), CommandError> {
    let by = checked_by(by)?;
    pipeline_control::checked_text(reason).map_err(|e| CommandError::BadInput(format!("--reason: {e}")))?;
    let cfg = load_for_reading(config)?;
    let duration =
        crate::config::parse_duration(duration).map_err(|e| CommandError::BadInput(format!("--for: {e}")))?;
    submit(
        &cfg,
        Request::Shelve {
            sensor,
            duration,
            by,
            reason,
        },
    )
}

/// `test-alarm`: asks the running daemon to test the alarm path of `sensor`, started by
/// `by` (default: the login name).
pub fn test_alarm(config: &Path, sensor: &str, by: Option<&str>) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let by = by.map(str::to_string).unwrap_or_else(|| {
        crate::store::audit::local_actor()
            .trim_start_matches("cli:")
            .to_string()
    });
    submit(&cfg, Request::TestAlarm { sensor, by: &by })
}

/// `test-page`: sends a test page to `contact` on every channel that reaches them and
/// prints how each went.
pub fn test_page(config: &Path, contact: &str) -> Result<(), CommandError> {
    let cfg = load(config)?;
    match runtime()?.block_on(crate::notify::testpage::run(&cfg, contact)) {
        Ok(report) => {
            print!("{report}");
            Ok(())
        }
        Err(crate::notify::testpage::TestPageError::BadInput(e)) => {
            Err(CommandError::BadInput(format!("{}: --contact: {e}", config.display())))
        }
        Err(e) => Err(CommandError::TestPage(e)),
    }
}

/// `--by` as recorded; bad input when blank or too long.
fn checked_by(by: &str) -> Result<&str, CommandError> {
    pipeline_control::checked_by(by).map_err(|e| CommandError::BadInput(format!("--by: {e}")))
}

fn submit(cfg: &Config, req: Request) -> Result<(), CommandError> {
    match pipeline_control::submit(cfg, req) {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(ControlError::Refused(text)) => Err(CommandError::BadInput(format!("cryowatch: {text}"))),
        Err(ControlError::Failed(text)) => Err(CommandError::Failed(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::{SENSOR, site};

    #[test]
    fn ack_checks_its_arguments_then_the_store_refuses_an_unknown_alarm() {
        let site = site("");
        match ack(&site.path, 1, " ", "", false) {
            Err(CommandError::BadInput(m)) => {
                assert_eq!(m, "--by: name the person who makes the change (found nothing)")
            }
            other => panic!("expected bad input, got {other:?}"),
        }
        match ack(&site.path, 1, "alice", &"x".repeat(4001), false) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--comment: at most 4000 characters, found 4001"),
            other => panic!("expected bad input, got {other:?}"),
        }
        match ack(&site.path, 42, "alice", "", false) {
            Err(CommandError::BadInput(m)) => assert!(m.starts_with("cryowatch: "), "{m}"),
            other => panic!("expected the store to refuse, got {other:?}"),
        }
    }

    #[test]
    fn shelve_applies_without_a_daemon_and_refuses_a_bad_duration() {
        let site = site("");
        shelve(&site.path, SENSOR, "2h", "alice", "defrost").expect("shelved");
        match shelve(&site.path, SENSOR, "soon", "alice", "defrost") {
            Err(CommandError::BadInput(m)) => assert!(m.starts_with("--for: "), "{m}"),
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn an_alarm_test_needs_the_running_daemon() {
        let site = site("");
        match test_alarm(&site.path, SENSOR, Some("alice")) {
            Err(CommandError::Failed(m)) => assert!(m.starts_with("cryowatch is not running on this store"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_test_page_to_an_unknown_contact_is_bad_input() {
        let site = site("");
        match test_page(&site.path, "nobody") {
            Err(CommandError::BadInput(m)) => {
                assert!(m.starts_with(&format!("{}: --contact: ", site.path.display())), "{m}")
            }
            other => panic!("expected bad input, got {other:?}"),
        }
    }
}
