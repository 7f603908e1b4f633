//! A TEC 3000-style LN2 freezer controller bus on a serial line (one end of a socat pty
//! pair): several controllers share the line, one address each, and speak a line-based
//! text protocol ending lines with `\r`:
//!
//! ```text
//! NNN TEMPA?   -> -197.10      the unit's temperature (°C)
//! NNN LEVEL?   -> 64.0         the unit's LN2 level (%)
//! NNN <other>  -> ERR 1        an unknown command
//! ```
//!
//! A unit in mode `dead` never answers, `garbled` answers noise at once, `late` answers
//! correctly after the late delay (past a poller's timeout), `fault` answers `ERR 7`
//! (probe fault). Lines for an address nobody has get no answer, as on a real bus.
//!
//! The control port (TCP, one command per line, one answer line per command):
//!
//! ```text
//! set NNN temp|level V     -> ok     what the unit answers from now on
//! mode NNN normal|dead|garbled|late|fault -> ok
//! event NNN TEXT...        -> ok     the unit sends `NNN EVT TEXT` unasked (e.g. FILL START)
//! queries                  -> {"001":12,...}  requests each unit received
//! help                     -> the commands
//! ```

mod serve;

use std::collections::BTreeMap;

use serde_json::json;

pub use serve::{TecConfig, TecSim};

const HELP: &str = "commands: set NNN temp|level V | mode NNN normal|dead|garbled|late|fault | \
event NNN TEXT... | queries | help";

/// How a unit answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Dead,
    Garbled,
    Late,
    Fault,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "normal" => Mode::Normal,
            "dead" => Mode::Dead,
            "garbled" => Mode::Garbled,
            "late" => Mode::Late,
            "fault" => Mode::Fault,
            other => return Err(format!("unknown mode {other:?} (normal, dead, garbled, late, fault)")),
        })
    }
}

/// One controller on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub temp: f64,
    pub level: f64,
    pub mode: Mode,
    pub queries: u64,
}

impl Unit {
    pub fn new(temp: f64, level: f64) -> Unit {
        Unit {
            temp,
            level,
            mode: Mode::Normal,
            queries: 0,
        }
    }
}

/// When an answer goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Now(String),
    Late(String),
}

/// The controllers on one line, by address (`001`).
#[derive(Debug, Clone, Default)]
pub struct Bus {
    pub units: BTreeMap<String, Unit>,
    /// Unsolicited lines waiting to be sent.
    pub pending: Vec<String>,
}

impl Bus {
    /// Three dewars: 001, 002 and 004.
    pub fn standard() -> Bus {
        let mut units = BTreeMap::new();
        units.insert("001".to_string(), Unit::new(-196.2, 82.0));
        units.insert("002".to_string(), Unit::new(-195.8, 75.5));
        units.insert("004".to_string(), Unit::new(-197.1, 64.0));
        Bus {
            units,
            pending: Vec::new(),
        }
    }

    /// The answer to one request line (without its `\r`), if any.
    pub fn request(&mut self, line: &str) -> Option<Answer> {
        let line = line.trim();
        let (address, command) = line.split_once(' ')?;
        let unit = self.units.get_mut(address)?;
        unit.queries += 1;
        let text = match command.trim() {
            "TEMPA?" => format!("{:.2}", unit.temp),
            "LEVEL?" => format!("{:.1}", unit.level),
            _ => "ERR 1".to_string(),
        };
        match unit.mode {
            Mode::Normal => Some(Answer::Now(text)),
            Mode::Dead => None,
            Mode::Garbled => Some(Answer::Now("#?%!x~@".to_string())),
            Mode::Late => Some(Answer::Late(text)),
            Mode::Fault => Some(Answer::Now("ERR 7".to_string())),
        }
    }

    /// One control command; returns the answer line.
    pub fn control(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["set", address, what, value] => {
                let Some(unit) = self.units.get_mut(*address) else {
                    return format!("err no unit {address}");
                };
                let Ok(v) = value.parse::<f64>() else {
                    return format!("err not a number: {value}");
                };
                match *what {
                    "temp" => unit.temp = v,
                    "level" => unit.level = v,
                    other => return format!("err set temp or level, not {other}"),
                }
                "ok".into()
            }
            ["mode", address, mode] => match (self.units.get_mut(*address), mode.parse::<Mode>()) {
                (None, _) => format!("err no unit {address}"),
                (_, Err(e)) => format!("err {e}"),
                (Some(unit), Ok(m)) => {
                    unit.mode = m;
                    "ok".into()
                }
            },
            ["event", address, text @ ..] if !text.is_empty() => {
                if !self.units.contains_key(*address) {
                    return format!("err no unit {address}");
                }
                self.pending.push(format!("{address} EVT {}", text.join(" ")));
                "ok".into()
            }
            ["queries"] => {
                let counts: serde_json::Map<String, serde_json::Value> = (self.units.iter())
                    .map(|(a, u)| (a.clone(), json!(u.queries)))
                    .collect();
                serde_json::Value::Object(counts).to_string()
            }
            ["help"] => HELP.into(),
            _ => format!("err unknown command; {HELP}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_answers_its_temperature_and_level() {
        let mut bus = Bus::standard();
        assert_eq!(bus.request("004 TEMPA?"), Some(Answer::Now("-197.10".into())));
        assert_eq!(bus.request("001 LEVEL?"), Some(Answer::Now("82.0".into())));
        assert_eq!(bus.request("001 FOO"), Some(Answer::Now("ERR 1".into())));
    }

    #[test]
    fn an_unknown_address_gets_no_answer() {
        assert_eq!(Bus::standard().request("003 TEMPA?"), None);
    }

    #[test]
    fn modes_change_how_a_unit_answers() {
        let mut bus = Bus::standard();
        assert_eq!(bus.control("mode 002 dead"), "ok");
        assert_eq!(bus.request("002 TEMPA?"), None);
        assert_eq!(bus.control("mode 002 garbled"), "ok");
        assert!(matches!(bus.request("002 TEMPA?"), Some(Answer::Now(t)) if t.parse::<f64>().is_err()));
        assert_eq!(bus.control("mode 002 late"), "ok");
        assert_eq!(bus.request("002 TEMPA?"), Some(Answer::Late("-195.80".into())));
        assert_eq!(bus.control("mode 002 fault"), "ok");
        assert_eq!(bus.request("002 TEMPA?"), Some(Answer::Now("ERR 7".into())));
        assert!(bus.control("mode 002 sleepy").starts_with("err"));
        assert_eq!(bus.control("queries"), r#"{"001":0,"002":4,"004":0}"#);
    }

    #[test]
    fn set_changes_the_value_and_event_queues_a_line() {
        let mut bus = Bus::standard();
        assert_eq!(bus.control("set 001 temp -150.5"), "ok");
        assert_eq!(bus.request("001 TEMPA?"), Some(Answer::Now("-150.50".into())));
        assert_eq!(bus.control("event 004 FILL START"), "ok");
        assert_eq!(bus.pending, vec!["004 EVT FILL START".to_string()]);
        assert!(bus.control("event 009 FILL START").starts_with("err"));
    }
}
