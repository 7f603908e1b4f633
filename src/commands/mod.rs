//! The work of each command-line command, once its arguments are parsed: the binary calls
//! one function here per command and turns the [`CommandError`] it returns into the exit
//! code (bad input 2, any other failure 1).
//!
//! - [`read`]: `check`, `status`, `history` and `alarms`.
//! - [`control`]: `ack`, `shelve`, `test-alarm` and `test-page`.
//! - [`oncall`]: who is on call in each schedule, and who is next.
//! - [`serve`]: `run`, `standby` and `demo`, the commands that keep running.
//! - [`user`]: `user add`.
//! - [`quality`]: `close`, a signed corrective action that closes an excursion.
//! - [`indicators`]: `quality`, the alarm system's own performance per month and asset.
//! - [`documents`]: `selftest` and `report`, written to a file and recorded in the audit
//!   trail.
//! - [`audit`]: `audit verify` and `audit log`.
//! - [`review`], [`calibration`], [`alarm_check`]: the signed registers of the quality
//!   record; [`quality_cli`] their command-line actions.
//! - [`influx`]: `influx status`, `quarantine`, `requeue` and `backfill`.

use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::model::{TimestampMs, now_ms};
use crate::store::{Store, StoreError};

pub mod alarm_check;
pub mod audit;
pub mod calibration;
pub mod control;
pub mod documents;
pub mod indicators;
pub mod influx;
pub mod oncall;
pub mod quality;
pub mod quality_cli;
pub mod read;
pub mod review;
pub mod serve;
pub mod user;

/// Where every command reads its configuration unless `-c` or `CRYOWATCH_CONFIG` says.
pub const DEFAULT_CONFIG: &str = "/etc/cryowatch/cryowatch.toml";

#[cfg(test)]
mod test_site;

/// How a command failed. [`CommandError::BadInput`] is the caller's to fix (exit 2, the
/// message printed as it is); [`CommandError::Reported`] has been said already (exit 1,
/// nothing more to print); every other variant is a failure to print after `cryowatch: `
/// with its causes (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// An argument, the configuration or a name in it is wrong.
    #[error("{0}")]
    BadInput(String),
    /// A check failed and the command said why already.
    #[error("a check failed")]
    Reported,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing to standard output, or starting the async runtime.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    History(crate::report::history::HistoryError),
    #[error(transparent)]
    Report(crate::report::asset::ReportError),
    #[error(transparent)]
    Render(#[from] crate::report::render::RenderError),
    #[error(transparent)]
    TestPage(crate::notify::testpage::TestPageError),
    #[error(transparent)]
    User(crate::store::users::UserError),
    /// The password could not be read from standard input.
    #[error("reading the password from standard input: {0}")]
    Password(std::io::Error),
    /// The report or self-test file could not be written.
    #[error("writing {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    /// A request the store or the running daemon could not carry out, said in one line.
    #[error("{0}")]
    Failed(String),
    /// The daemon, the standby or the demo stopped on an error.
    #[error(transparent)]
    Service(#[from] anyhow::Error),
}

/// A password from standard input: prompted for without echo on a terminal, else the
/// first line.
fn read_password(prompt: &str) -> Result<String, CommandError> {
    use std::io::IsTerminal as _;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    }
    .map_err(CommandError::Password)?;
    Ok(password.trim_end_matches(['\r', '\n']).to_string())
}

/// The configuration at `path`, checked; bad input with every problem when it is not valid.
fn load(path: &Path) -> Result<Config, CommandError> {
    config::load(path).map_err(|e| CommandError::BadInput(e.to_string()))
}

/// The configuration at `path`, checked, for a command that only reads or writes the
/// store and connects to no peer: secrets are not resolved (see
/// [`config::load_for_reading`]), so it works without the service's secrets.
fn load_for_reading(path: &Path) -> Result<Config, CommandError> {
    config::load_for_reading(path).map_err(|e| CommandError::BadInput(e.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// A time argument (`default` when not given); bad input when it does not parse.
fn time_arg(text: Option<&str>, default: &str, now: TimestampMs) -> Result<TimestampMs, CommandError> {
    crate::timearg::parse(text.unwrap_or(default), now).map_err(|e| CommandError::BadInput(e.to_string()))
}

/// Prints `value` as pretty JSON, or as the table `table` writes.
fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    table: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    let res = if json {
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| std::io::Write::write_all(&mut out, b"\n"))
    } else {
        table(&mut out)
    };
    Ok(res?)
}

/// Records a command-line action in the audit trail (as the invoking user). A failure is
/// reported but does not undo what the command did.
fn record_cli(cfg: &Config, kind: &str, subject: &str, detail: serde_json::Value) {
    let res = Store::open(&cfg.store.path)
        .and_then(|mut s| s.append_audit(now_ms(), kind, &crate::store::audit::local_actor(), subject, &detail));
    if let Err(e) = res {
        eprintln!("cryowatch: could not record {kind} in the audit trail: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary prints a failure with its causes: messages that already quote their
    /// cause must not name it a second time as a source.
    #[test]
    fn one_line_failures_have_no_source_and_wrapped_errors_keep_their_own() {
        use std::error::Error as _;
        let e = CommandError::Write {
            path: "/x/r.pdf".into(),
            err: std::io::Error::other("disk full"),
        };
        assert_eq!(e.to_string(), "writing /x/r.pdf: disk full");
        assert!(e.source().is_none());
        let e = CommandError::Password(std::io::Error::other("closed"));
        assert_eq!(e.to_string(), "reading the password from standard input: closed");
        assert!(e.source().is_none());
        let inner = anyhow::anyhow!("bind 127.0.0.1:8470").context("starting the HTTP API");
        let e = CommandError::Service(inner);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "starting the HTTP API: bind 127.0.0.1:8470"
        );
    }

    #[test]
    fn a_configuration_that_does_not_load_is_bad_input() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing.toml");
        assert!(matches!(load(&path), Err(CommandError::BadInput(m)) if m.contains("missing.toml")));
        assert!(matches!(
            time_arg(Some("yesterday-ish"), "now", 0),
            Err(CommandError::BadInput(_))
        ));
        assert!(matches!(time_arg(None, "-24h", 86_400_000), Ok(0)));
    }
}
