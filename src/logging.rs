//! Where log lines go: standard error, one event per line, control characters of
//! outside strings escaped (see [`crate::escape`]).
//!
//! Under systemd, standard error is a stream to journald (systemd names it in
//! `JOURNAL_STREAM`). There each line starts with its syslog priority in angle brackets
//! (`<3>` for an error, `<2>` for a `CRITICAL:` error, `<4>` a warning, `<6>` info,
//! `<7>` debug), which journald reads as the entry's priority (`SyslogLevelPrefix=`, on
//! by default), so `journalctl -u cryowatch -p err` shows the errors; and no timestamp
//! is written, since the journal stamps every entry itself. Elsewhere (a terminal, a
//! file) lines carry their time and, on a terminal only, colour.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Level, Metadata};

use crate::escape::control;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text, coloured on a terminal; under journald with priority prefixes and no time.
    Text,
    /// One JSON object per line (for a log shipper).
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
pub fn init(format: Format) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = format == Format::Text && stderr_is_journal();
    let ansi = format == Format::Text && !journal && io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter { ansi, journal });
    match format {
        Format::Json => builder.json().with_current_span(false).init(),
        Format::Text if journal => builder.with_ansi(false).without_time().init(),
        Format::Text => builder.with_ansi(ansi).init(),
    }
}

/// Whether standard error is the stream systemd connected to journald: `JOURNAL_STREAM`
/// holds its `device:inode`, which must match the descriptor's (a child that inherited
/// the variable but writes elsewhere is not fooled).
pub fn stderr_is_journal() -> bool {
    let Ok(named) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    named == format!("{}:{}", meta.dev(), meta.ino())
}

/// The syslog priority of an event: `line` is the event as formatted, so an error whose
/// message starts with `CRITICAL:` is critical (2).
pub fn priority(level: Level, line: &str) -> u8 {
    match level {
        Level::ERROR if message(line).starts_with("CRITICAL:") => 2,
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The message of a formatted text event (`LEVEL target: message fields`): what follows
/// the first `": "`, which ends the target (a module path, never outside text).
fn message(line: &str) -> &str {
    line.split_once(": ").map_or("", |(_, rest)| rest)
}

/// A writer per event: escapes control characters (only the final newline stays) and,
/// under journald, puts the event's priority first.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter {
    /// A terminal: the escape character is kept for the formatter's colours.
    pub ansi: bool,
    /// journald: a `<N>` priority prefix on every line.
    pub journal: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            ansi: self.ansi,
            level: self.journal.then_some(Level::INFO),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            ansi: self.ansi,
            level: self.journal.then_some(*meta.level()),
        }
    }
}

/// Standard error, one event per write, escaped as [`LogWriter`] says.
pub struct EventWriter {
    ansi: bool,
    /// The event's level when lines get a priority prefix.
    level: Option<Level>,
}

impl EventWriter {
    fn line(&self, buf: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (text.as_ref(), ""),
        };
        let escaped: String = if self.ansi {
            // Keep ESC for colours; escape the rest.
            body.split('\u{1b}')
                .map(|part| control(part).into_owned())
                .collect::<Vec<_>>()
                .join("\u{1b}")
        } else {
            control(body).into_owned()
        };
        let prefix = match self.level {
            Some(level) => format!("<{}>", priority(level, escaped.trim_start())),
            None => String::new(),
        };
        let mut out = prefix.into_bytes();
        out.extend_from_slice(escaped.as_bytes());
        out.extend_from_slice(end.as_bytes());
        out
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over each event whole; it goes out in one write, so
        // events of several threads never interleave mid-line.
        io::stderr().lock().write_all(&self.line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ansi: bool, level: Option<Level>, text: &str) -> String {
        String::from_utf8(EventWriter { ansi, level }.line(text.as_bytes())).expect("utf-8")
    }

    #[test]
    fn a_log_event_keeps_only_its_final_newline() {
        assert_eq!(
            line(false, None, "INFO login failed user=\"x\nERROR forged\u{1b}[2J\"\n"),
            "INFO login failed user=\"x\\nERROR forged\\u{1b}[2J\"\n"
        );
        assert_eq!(
            line(true, None, "\u{1b}[32mINFO\u{1b}[0m user=\"x\nERROR\"\n"),
            "\u{1b}[32mINFO\u{1b}[0m user=\"x\\nERROR\"\n"
        );
    }

    #[test]
    fn under_journald_every_line_starts_with_its_priority() {
        assert_eq!(
            line(false, Some(Level::ERROR), "ERROR cryowatch::store: commit failed\n"),
            "<3>ERROR cryowatch::store: commit failed\n"
        );
        assert_eq!(
            line(
                false,
                Some(Level::ERROR),
                " ERROR cryowatch::api: CRITICAL: the HTTP API stopped\n"
            ),
            "<2> ERROR cryowatch::api: CRITICAL: the HTTP API stopped\n"
        );
        assert_eq!(line(false, Some(Level::WARN), " WARN x: y\n"), "<4> WARN x: y\n");
        assert_eq!(line(false, Some(Level::INFO), " INFO x: y\n"), "<6> INFO x: y\n");
        assert_eq!(line(false, Some(Level::DEBUG), "DEBUG x: y\n"), "<7>DEBUG x: y\n");
    }

    #[test]
    fn an_outside_string_cannot_make_an_error_critical_or_start_a_line() {
        // The user name is a field after the message, and its newline is escaped.
        assert_eq!(
            line(
                false,
                Some(Level::ERROR),
                "ERROR cryowatch::api: sign-in failed user=\"CRITICAL: x\n<2>y\"\n"
            ),
            "<3>ERROR cryowatch::api: sign-in failed user=\"CRITICAL: x\\n<2>y\"\n"
        );
    }
}
