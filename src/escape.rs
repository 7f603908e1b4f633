//! Outside strings made safe to print. A user name, an SMS, an MQTT topic or an SMTP
//! server's answer may hold control characters; written raw, a newline forges a log line
//! that looks genuine and ANSI codes repaint the terminal. Every log line goes through
//! [`LogWriter`], and listings pass outside fields through [`control`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

/// `s` with every control character (C0, DEL, C1) written as an escape: `\n`, `\r`,
/// `\t`, else `\u{1b}`. Unchanged (and not copied) when there is none.
pub fn control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A log writer that escapes control characters inside each event: only the newline
/// that ends the event stays. With `ansi` (a terminal), the escape character is kept
/// for the formatter's colours; newlines and carriage returns are still escaped, so
/// no outside string starts a line of its own.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter {
    pub ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EscapingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingStderr { ansi: self.ansi }
    }
}

/// Standard error, one event per write, escaped as [`LogWriter`] says.
pub struct EscapingStderr {
    ansi: bool,
}

impl EscapingStderr {
    fn escape(&self, buf: &[u8]) -> Vec<u8> {
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
        let mut out = escaped.into_bytes();
        out.extend_from_slice(end.as_bytes());
        out
    }
}

impl Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over each event whole; it goes out in one write, so
        // events of several threads never interleave mid-line.
        io::stderr().lock().write_all(&self.escape(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_not_copied() {
        assert!(matches!(control("alice"), Cow::Borrowed("alice")));
        assert_eq!(
            control("x\nERROR cryowatch: forged\r\t\u{1b}[31m\u{7f}\u{85}"),
            "x\\nERROR cryowatch: forged\\r\\t\\u{1b}[31m\\u{7f}\\u{85}"
        );
        assert_eq!(control("Zoë °C"), "Zoë °C");
    }

    #[test]
    fn a_log_event_keeps_only_its_final_newline() {
        let plain = EscapingStderr { ansi: false };
        let line = "INFO login failed user=\"x\nERROR forged\u{1b}[2J\"\n";
        assert_eq!(
            String::from_utf8(plain.escape(line.as_bytes())).expect("utf-8"),
            "INFO login failed user=\"x\\nERROR forged\\u{1b}[2J\"\n"
        );
        let coloured = EscapingStderr { ansi: true };
        let line = "\u{1b}[32mINFO\u{1b}[0m user=\"x\nERROR\"\n";
        assert_eq!(
            String::from_utf8(coloured.escape(line.as_bytes())).expect("utf-8"),
            "\u{1b}[32mINFO\u{1b}[0m user=\"x\\nERROR\"\n"
        );
    }
}
