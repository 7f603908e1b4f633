//! `[[output]]`: local alarm outputs. A beacon or siren in the room, driven through a coil
//! (or a holding register written 1/0) of a Modbus I/O module declared as a
//! `[[modbus.device]]`, is on while at least one open alarm matches its `when`.

use std::fmt;

use super::check::Checker;
use super::modbus::ModbusDevice;
use super::raw;
use crate::model::Severity;

/// A checked `[[output]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub id: String,
    /// Index into `Config::devices`.
    pub device: usize,
    pub target: OutputTarget,
    pub when: When,
    /// Energised (1) while all is well and de-energised (0) on alarm, so a cut cable, a
    /// power loss or a stopped daemon (through the module's communication watchdog)
    /// sounds the alarm too.
    pub fail_safe: bool,
}

impl Output {
    /// The value written for `on` (the alarm signalled): 1 when on, or, fail-safe, 1
    /// while off.
    pub fn energised(&self, on: bool) -> bool {
        on != self.fail_safe
    }
}

/// Where an output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTarget {
    /// A coil, written with function 5 (write single coil).
    Coil(u16),
    /// A holding register written 1 or 0 with function 6 (write single register).
    Register(u16),
}

impl fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputTarget::Coil(a) => write!(f, "coil {a}"),
            OutputTarget::Register(a) => write!(f, "register {a}"),
        }
    }
}

/// Which open alarms turn an output on: an alarm matches when it satisfies every word
/// given. Alarm tests and suppressed (shelved, or in a maintenance window) alarms never
/// match; that is decided with the alarms, in `crate::output::decide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct When {
    /// `active`: the condition still holds (not a latching alarm back to normal and
    /// waiting for its acknowledgement).
    pub active: bool,
    /// `acknowledged` (`Some(true)`) or `unacknowledged` (`Some(false)`).
    pub acknowledged: Option<bool>,
    /// `warning`, `alarm` or `critical`: that severity or worse.
    pub severity: Option<Severity>,
}

/// The words `when` is written with.
pub const WHEN_WORDS: [&str; 6] = [
    "active",
    "unacknowledged",
    "acknowledged",
    "warning",
    "alarm",
    "critical",
];

impl When {
    /// Parses `when`: words separated by blanks, each at most once in effect. The error
    /// says what was expected and what was found.
    pub fn parse(text: &str) -> Result<When, String> {
        let mut when = When::default();
        let mut any = false;
        for word in text.split_whitespace() {
            any = true;
            match word {
                "active" => when.active = true,
                "acknowledged" | "unacknowledged" => {
                    let acked = word == "acknowledged";
                    if when.acknowledged == Some(!acked) {
                        return Err(
                            "\"acknowledged\" and \"unacknowledged\" exclude each other: no alarm could match".into(),
                        );
                    }
                    when.acknowledged = Some(acked);
                }
                _ => match Severity::parse(word) {
                    Some(s) => match when.severity {
                        Some(was) if was != s => {
                            return Err(format!(
                                "give one severity (it matches that severity or worse), found {:?} and {:?}",
                                was.as_str(),
                                s.as_str()
                            ));
                        }
                        _ => when.severity = Some(s),
                    },
                    None => {
                        return Err(format!(
                            "unknown word {word:?}; expected words among: {}",
                            WHEN_WORDS.join(", ")
                        ));
                    }
                },
            }
        }
        if !any {
            return Err(format!(
                "empty: name the alarms that turn the output on with words among: {}",
                WHEN_WORDS.join(", ")
            ));
        }
        Ok(when)
    }
}

impl fmt::Display for When {
    /// The words, in a fixed order: `active unacknowledged critical`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if self.active {
            words.push("active");
        }
        match self.acknowledged {
            Some(true) => words.push("acknowledged"),
            Some(false) => words.push("unacknowledged"),
            None => {}
        }
        if let Some(s) = self.severity {
            words.push(s.as_str());
        }
        f.write_str(&words.join(" "))
    }
}

/// Checks every `[[output]]` against the checked `devices`.
pub(super) fn outputs(c: &mut Checker, raw: &[raw::Output], devices: &[ModbusDevice]) -> Vec<Output> {
    c.unique_ids("output", raw.iter().map(|o| o.id.as_str()));
    let mut checked: Vec<(usize, Output)> = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let p = format!("output[{i}]");
        let device = devices.iter().position(|d| d.id == o.device);
        if device.is_none() {
            c.err(
                format!("{p}.device"),
                format!(
                    "unknown modbus device {:?} (output {:?}); declare it in a [[modbus.device]]",
                    o.device, o.id
                ),
            );
        }
        let target = match (o.coil, o.register) {
            (Some(a), None) => Some(OutputTarget::Coil(a)),
            (None, Some(a)) => Some(OutputTarget::Register(a)),
            (Some(_), Some(_)) => {
                c.err(&p, "give either coil = N or register = N, not both");
                None
            }
            (None, None) => {
                c.err(
                    &p,
                    "missing: coil = N (a coil written 1/0) or register = N (a holding register written 1/0)",
                );
                None
            }
        };
        let when = When::parse(&o.when).map_err(|e| c.err(format!("{p}.when"), e)).ok();
        let (Some(device), Some(target), Some(when)) = (device, target, when) else {
            continue;
        };
        if let Some((j, _)) = checked.iter().find(|(_, x)| x.device == device && x.target == target) {
            let key = match target {
                OutputTarget::Coil(_) => "coil",
                OutputTarget::Register(_) => "register",
            };
            c.err(
                format!("{p}.{key}"),
                format!(
                    "{target} of device {:?} is already written by output[{j}]; one output per coil or register",
                    o.device
                ),
            );
            continue;
        }
        checked.push((
            i,
            Output {
                id: o.id.clone(),
                device,
                target,
                when,
                fail_safe: o.fail_safe,
            },
        ));
    }
    checked.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_reads_states_and_a_severity_in_any_order() {
        let w = When::parse("critical  unacknowledged active").expect("valid");
        assert_eq!(
            w,
            When {
                active: true,
                acknowledged: Some(false),
                severity: Some(Severity::Critical)
            }
        );
        assert_eq!(w.to_string(), "active unacknowledged critical");
        assert_eq!(
            When::parse("acknowledged").expect("valid"),
            When {
                active: false,
                acknowledged: Some(true),
                severity: None
            }
        );
        assert_eq!(When::parse("warning").expect("valid").severity, Some(Severity::Warning));
    }

    #[test]
    fn a_repeated_word_is_taken_once() {
        assert_eq!(
            When::parse("alarm active alarm").expect("valid"),
            When::parse("active alarm").expect("valid")
        );
    }

    #[test]
    fn unknown_empty_and_contradictory_words_are_refused_with_what_was_expected() {
        let e = When::parse("active critcal").expect_err("a typo");
        assert!(e.contains("\"critcal\"") && e.contains("active, unacknowledged"), "{e}");
        let e = When::parse("Critical").expect_err("words are lower case");
        assert!(e.contains("\"Critical\""), "{e}");
        assert!(When::parse("  ").expect_err("empty").starts_with("empty"));
        assert!(
            When::parse("acknowledged unacknowledged")
                .expect_err("no alarm could match")
                .contains("exclude each other")
        );
        assert!(
            When::parse("warning critical")
                .expect_err("two severities")
                .contains("one severity")
        );
    }

    #[test]
    fn fail_safe_energises_while_off_and_de_energises_on_alarm() {
        let mut o = Output {
            id: "beacon".into(),
            device: 0,
            target: OutputTarget::Coil(16),
            when: When::default(),
            fail_safe: false,
        };
        assert!(o.energised(true));
        assert!(!o.energised(false));
        o.fail_safe = true;
        assert!(!o.energised(true));
        assert!(o.energised(false));
    }
}
