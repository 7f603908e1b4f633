//! Outside strings made safe to print. A user name, an SMS, an MQTT topic or an SMTP
//! server's answer may hold control characters; written raw, a newline forges a log line
//! that looks genuine and ANSI codes repaint the terminal. Every log line goes through
//! [`crate::logging`], and listings pass outside fields through [`control`].

use std::borrow::Cow;
use std::fmt::Write as _;

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
}
