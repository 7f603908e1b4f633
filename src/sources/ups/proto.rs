//! The upsd network protocol as pure functions: splitting a reply line into words,
//! quoting command arguments, recognising `ERR` replies, and assembling a
//! `LIST VAR` answer from its `BEGIN LIST` … `END LIST` frame. No I/O here.

use std::collections::HashMap;
use std::fmt;

/// An `ERR <code>` reply from upsd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NutErr {
    UnknownUps,
    DriverNotConnected,
    DataStale,
    AccessDenied,
    VarNotSupported,
    /// Any other code, kept as sent.
    Other(String),
}

impl NutErr {
    pub fn from_code(code: &str) -> NutErr {
        match code {
            "UNKNOWN-UPS" => NutErr::UnknownUps,
            "DRIVER-NOT-CONNECTED" => NutErr::DriverNotConnected,
            "DATA-STALE" => NutErr::DataStale,
            "ACCESS-DENIED" => NutErr::AccessDenied,
            "VAR-NOT-SUPPORTED" => NutErr::VarNotSupported,
            other => NutErr::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            NutErr::UnknownUps => "UNKNOWN-UPS",
            NutErr::DriverNotConnected => "DRIVER-NOT-CONNECTED",
            NutErr::DataStale => "DATA-STALE",
            NutErr::AccessDenied => "ACCESS-DENIED",
            NutErr::VarNotSupported => "VAR-NOT-SUPPORTED",
            NutErr::Other(code) => code,
        }
    }
}

impl fmt::Display for NutErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR {}", self.code())
    }
}

/// A reply line that is not what the protocol allows at that point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected answer from upsd: {line:?} ({why})")]
pub struct Garbage {
    pub line: String,
    pub why: &'static str,
}

fn garbage(line: &str, why: &'static str) -> Garbage {
    Garbage {
        line: line.chars().take(200).collect(),
        why,
    }
}

/// Splits a reply line into words. Words are separated by spaces or tabs; a double-quoted
/// word may contain spaces; a backslash takes the next character literally (upsd escapes
/// `"` and `\` inside values this way).
pub fn split_words(line: &str) -> Result<Vec<String>, Garbage> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.trim_end_matches(['\r', '\n']).chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                None => return Err(garbage(line, "line ends in a lone backslash")),
            },
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(garbage(line, "unterminated quote"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes a command argument when it needs it (empty, or holding spaces, quotes or
/// backslashes), escaping `"` and `\`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"', '\\']) {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// What a reply to a simple command (`USERNAME`, `PASSWORD`) says.
pub fn parse_ok(line: &str) -> Result<Result<(), NutErr>, Garbage> {
    let words = split_words(line)?;
    match words.first().map(String::as_str) {
        Some("OK") => Ok(Ok(())),
        Some("ERR") => Ok(Err(err_of(line, &words)?)),
        _ => Err(garbage(line, "expected OK or ERR")),
    }
}

fn err_of(line: &str, words: &[String]) -> Result<NutErr, Garbage> {
    match words.get(1) {
        Some(code) => Ok(NutErr::from_code(code)),
        None => Err(garbage(line, "ERR without a code")),
    }
}

/// Where a `LIST VAR <ups>` answer stands after a line.
#[derive(Debug, PartialEq)]
pub enum ListStep {
    /// More lines belong to the answer.
    More,
    /// `END LIST VAR`: every variable, by name.
    Done(HashMap<String, String>),
    /// upsd refused the request (`ERR …` instead of `BEGIN LIST`).
    Refused(NutErr),
}

/// Assembles the answer to `LIST VAR <ups>` one line at a time:
/// `BEGIN LIST VAR ups`, then `VAR ups name "value"` lines, then `END LIST VAR ups`.
#[derive(Debug)]
pub struct ListVar {
    ups: String,
    begun: bool,
    vars: HashMap<String, String>,
}

/// At most this many variables are accepted in one answer (real UPSes have ~100).
const MAX_VARS: usize = 4096;

impl ListVar {
    pub fn new(ups: &str) -> ListVar {
        ListVar {
            ups: ups.to_string(),
            begun: false,
            vars: HashMap::new(),
        }
    }

    pub fn feed(&mut self, line: &str) -> Result<ListStep, Garbage> {
        let words = split_words(line)?;
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        if !self.begun {
            return match w.as_slice() {
                ["BEGIN", "LIST", "VAR", ups] if *ups == self.ups => {
                    self.begun = true;
                    Ok(ListStep::More)
                }
                ["ERR", ..] => Ok(ListStep::Refused(err_of(line, &words)?)),
                _ => Err(garbage(line, "expected BEGIN LIST VAR")),
            };
        }
        match w.as_slice() {
            ["VAR", ups, name, value] if *ups == self.ups => {
                if self.vars.len() >= MAX_VARS {
                    return Err(garbage(line, "too many variables"));
                }
                self.vars.insert(name.to_string(), value.to_string());
                Ok(ListStep::More)
            }
            ["END", "LIST", "VAR", ups] if *ups == self.ups => Ok(ListStep::Done(std::mem::take(&mut self.vars))),
            _ => Err(garbage(line, "expected VAR or END LIST VAR")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line).expect("a valid line")
    }

    #[test]
    fn quoted_values_keep_their_spaces_and_lose_their_quotes() {
        assert_eq!(
            words("VAR labups ups.status \"OB LB\"\n"),
            ["VAR", "labups", "ups.status", "OB LB"]
        );
        assert_eq!(words("VAR u x \"\""), ["VAR", "u", "x", ""]);
        assert_eq!(words("  OK\tGoodbye  "), ["OK", "Goodbye"]);
    }

    #[test]
    fn backslashes_escape_quotes_and_backslashes_in_values() {
        assert_eq!(
            words(r#"VAR u device.model "Smart \"UPS\" 1500 C:\\ups""#),
            ["VAR", "u", "device.model", r#"Smart "UPS" 1500 C:\ups"#]
        );
    }

    #[test]
    fn broken_quoting_is_garbage() {
        assert!(split_words("VAR u x \"open").is_err());
        assert!(split_words("VAR u x \\").is_err());
    }

    #[test]
    fn quote_escapes_only_when_needed_and_round_trips() {
        assert_eq!(quote("labups"), "labups");
        assert_eq!(quote(""), "\"\"");
        let tricky = r#"pa ss"w\rd"#;
        assert_eq!(quote(tricky), r#""pa ss\"w\\rd""#);
        assert_eq!(words(&format!("PASSWORD {}", quote(tricky))), ["PASSWORD", tricky]);
    }

    #[test]
    fn ok_and_err_replies_are_told_apart() {
        assert_eq!(parse_ok("OK\n"), Ok(Ok(())));
        assert_eq!(parse_ok("OK Goodbye"), Ok(Ok(())));
        assert_eq!(parse_ok("ERR ACCESS-DENIED"), Ok(Err(NutErr::AccessDenied)));
        assert_eq!(
            parse_ok("ERR SOMETHING-NEW extra"),
            Ok(Err(NutErr::Other("SOMETHING-NEW".into())))
        );
        assert!(parse_ok("ERR").is_err());
        assert!(parse_ok("HTTP/1.1 400 Bad Request").is_err());
        assert!(parse_ok("").is_err());
    }

    #[test]
    fn err_codes_print_as_upsd_sends_them() {
        for code in [
            "UNKNOWN-UPS",
            "DRIVER-NOT-CONNECTED",
            "DATA-STALE",
            "ACCESS-DENIED",
            "X-Y",
        ] {
            assert_eq!(NutErr::from_code(code).to_string(), format!("ERR {code}"));
        }
    }

    fn feed_all(list: &mut ListVar, lines: &[&str]) -> Vec<Result<ListStep, Garbage>> {
        lines.iter().map(|l| list.feed(l)).collect()
    }

    #[test]
    fn a_list_var_answer_is_collected_between_begin_and_end() {
        let mut list = ListVar::new("labups");
        let steps = feed_all(
            &mut list,
            &[
                "BEGIN LIST VAR labups",
                "VAR labups battery.charge \"100\"",
                "VAR labups ups.status \"OB LB\"",
                "END LIST VAR labups",
            ],
        );
        let expected: HashMap<String, String> = [("battery.charge", "100"), ("ups.status", "OB LB")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            steps,
            vec![
                Ok(ListStep::More),
                Ok(ListStep::More),
                Ok(ListStep::More),
                Ok(ListStep::Done(expected))
            ]
        );
    }

    #[test]
    fn an_err_instead_of_begin_is_a_refusal() {
        for (line, err) in [
            ("ERR UNKNOWN-UPS", NutErr::UnknownUps),
            ("ERR DRIVER-NOT-CONNECTED", NutErr::DriverNotConnected),
            ("ERR DATA-STALE", NutErr::DataStale),
        ] {
            assert_eq!(ListVar::new("labups").feed(line), Ok(ListStep::Refused(err)));
        }
    }

    #[test]
    fn lines_out_of_frame_are_garbage() {
        // A VAR before BEGIN, another UPS's frame, an ERR inside the list, a missing value.
        assert!(ListVar::new("a").feed("VAR a ups.status \"OL\"").is_err());
        assert!(ListVar::new("a").feed("BEGIN LIST VAR b").is_err());
        let mut list = ListVar::new("a");
        assert_eq!(list.feed("BEGIN LIST VAR a"), Ok(ListStep::More));
        assert!(list.feed("ERR DATA-STALE").is_err());
        let mut list = ListVar::new("a");
        assert_eq!(list.feed("BEGIN LIST VAR a"), Ok(ListStep::More));
        assert!(list.feed("VAR a ups.status").is_err());
        assert!(list.feed("END LIST VAR b").is_err());
    }
}
