//! The problem collector every section is checked with, and what the sections share:
//! durations, secrets, names, ids, times, paths, and the ids each section declares.
//!
//! Every section file turns its raw section into checked types with one function of the
//! same shape: `fn section(c: &mut Checker, raw, context…) -> Checked`. Each problem is
//! recorded with its key path and checking goes on, so one run lists them all.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Problem;
use super::raw::RawConfig;

/// The longest duration accepted anywhere a duration is given (configuration, `--for`,
/// relative times, the API): 1000 years (humantime years of 365.25 days). Longer ones
/// cannot be added to a time without leaving the range of dates the store, the reports
/// and the time library can represent (years up to 9999), so "keep forever" is written
/// as e.g. `"1000y"`.
pub const MAX_DURATION: Duration = Duration::from_secs(1000 * 31_557_600);

/// Parses a duration given from outside ("30s", "10m", "1000y"): humantime syntax, at
/// most [`MAX_DURATION`]. The error says what was expected and what was found.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => Err(format!(
            "duration {text:?} is too long: at most 1000 years (\"1000y\") is accepted"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "cannot parse duration {text:?} ({e}); write e.g. \"500ms\", \"30s\", \"10m\", \"2h\""
        )),
    }
}

/// A secret resolved from inline text, an environment variable or a file. Resolved once,
/// while the configuration is checked; the checked types carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The longest id, unit or site name accepted.
const MAX_NAME: usize = 200;

/// A relative path in the config is relative to the config file's directory.
pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { base.join(p) }
}

/// `"Tue 09:00"` → (Tuesday, 09:00); `"09:00"` → (no day, 09:00). `None` for an unknown
/// day, an hour past 23 or minutes that are not two digits below 60.
pub(super) fn parse_day_time(text: &str) -> Option<(Option<jiff::civil::Weekday>, jiff::civil::Time)> {
    let (day, time) = match text.split_once(' ') {
        Some((d, t)) => (Some(parse_weekday(d)?), t),
        None => (None, text),
    };
    let (h, m) = time.split_once(':')?;
    let h = h.parse::<u8>().ok().filter(|h| *h < 24)?;
    let m = (m.len() == 2)
        .then(|| m.parse::<u8>().ok())
        .flatten()
        .filter(|m| *m < 60)?;
    let time = jiff::civil::Time::new(h as i8, m as i8, 0, 0).ok()?;
    Some((day, time))
}

/// `"Mon"` .. `"Sun"`.
pub(super) fn parse_weekday(d: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    Some(match d {
        "Mon" => Monday,
        "Tue" => Tuesday,
        "Wed" => Wednesday,
        "Thu" => Thursday,
        "Fri" => Friday,
        "Sat" => Saturday,
        "Sun" => Sunday,
        _ => return None,
    })
}

/// The ids the file declares, as written, for cross references checked before (or
/// without) the section they name: a heartbeat's contacts, a rule's escalation, a
/// route's asset.
pub(super) struct Declared<'a> {
    pub assets: HashSet<&'a str>,
    pub ups: HashSet<&'a str>,
    pub contacts: HashSet<&'a str>,
    pub groups: HashSet<&'a str>,
    pub schedules: HashSet<&'a str>,
    pub escalations: HashSet<&'a str>,
    pub channels: HashSet<&'a str>,
}

impl<'a> Declared<'a> {
    pub fn new(raw: &'a RawConfig) -> Self {
        Declared {
            assets: raw.asset.iter().map(|a| a.id.as_str()).collect(),
            ups: raw.ups.iter().map(|u| u.id.as_str()).collect(),
            contacts: raw.contact.iter().map(|c| c.id.as_str()).collect(),
            groups: raw.group.iter().map(|g| g.id.as_str()).collect(),
            schedules: raw.schedule.iter().map(|s| s.id.as_str()).collect(),
            escalations: raw.escalation.iter().map(|e| e.id.as_str()).collect(),
            channels: raw.channel.iter().map(|c| c.id.as_str()).collect(),
        }
    }
}

/// Whether secrets given as `*_env` or `*_file` must be resolved while checking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Secrets {
    /// Every secret must resolve; one that does not is a problem (`run`, `check`, and
    /// every command that pages or connects to a peer).
    #[default]
    Resolve,
    /// A secret that does not resolve is left empty without a problem: for commands
    /// that only read the store and connect to no peer.
    Defer,
}

/// Collects the problems of a configuration, each with its key path.
#[derive(Default)]
pub(super) struct Checker {
    pub problems: Vec<Problem>,
    pub secrets: Secrets,
}

impl Checker {
    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A peer's `ca_file` (relative to the configuration's directory), checked now: it
    /// must exist and hold PEM certificates valid today. `None` when not given or
    /// unusable (with a problem naming the file as written and what is wrong).
    pub fn ca_file(&mut self, path: &str, given: Option<&str>, base: &Path) -> Option<PathBuf> {
        let file = resolve(base, given?);
        match crate::tls::read_ca_file(&file, std::time::SystemTime::now()) {
            Ok(_) => Some(file),
            Err(e) => {
                self.err(path, format!("{}: {}", given.unwrap_or_default(), e.problem));
                None
            }
        }
    }

    /// Parses a duration with [`parse_duration`]; `None` (with a problem) when it does
    /// not parse or is longer than [`MAX_DURATION`].
    pub fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    /// An optional duration longer than zero; `default` when not given or refused.
    pub fn positive_duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match self.duration(path, text) {
            Some(d) if d.is_zero() => {
                self.err(path, "must be longer than zero");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    /// An RFC 3339 time with offset.
    pub fn timestamp(&mut self, path: &str, text: &str) -> Option<jiff::Timestamp> {
        match text.parse::<jiff::Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                self.err(
                    path,
                    format!("expected an RFC 3339 time with offset like \"2026-12-24T17:00:00-06:00\", found {text:?}"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn one_of<'a>(&mut self, path: &str, value: &str, allowed: &[&'a str]) -> Option<&'a str> {
        let found = allowed.iter().find(|a| **a == value).copied();
        if found.is_none() {
            self.err(
                path,
                format!("unknown value {value:?}; expected one of: {}", allowed.join(", ")),
            );
        }
        found
    }

    /// Resolves `<name>`, `<name>_env` or `<name>_file`; at most one may be given.
    pub fn secret(
        &mut self,
        path: &str,
        name: &str,
        inline: &Option<String>,
        env: &Option<String>,
        file: &Option<String>,
        base: &Path,
    ) -> Option<Secret> {
        let given = [inline.is_some(), env.is_some(), file.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            self.err(
                format!("{path}.{name}"),
                format!("give only one of {name}, {name}_env, {name}_file"),
            );
            return None;
        }
        if let Some(v) = inline {
            return Some(Secret(v.clone()));
        }
        let found = if let Some(var) = env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                Ok(_) => Err((
                    format!("{path}.{name}_env"),
                    format!("environment variable {var:?} is empty"),
                )),
                Err(_) => Err((
                    format!("{path}.{name}_env"),
                    format!("environment variable {var:?} is not set"),
                )),
            }
        } else if let Some(f) = file {
            let p = resolve(base, f);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim_end_matches(['\n', '\r']).to_string())),
                Ok(_) => Err((
                    format!("{path}.{name}_file"),
                    format!("secret file {:?} is empty", p.display().to_string()),
                )),
                Err(e) => Err((
                    format!("{path}.{name}_file"),
                    format!("cannot read secret file {:?}: {e}", p.display().to_string()),
                )),
            }
        } else {
            return None;
        };
        match found {
            Ok(secret) => Some(secret),
            // Reading only: the secret is not needed, and may not be given to this user.
            Err(_) if self.secrets == Secrets::Defer => Some(Secret(String::new())),
            Err((key, message)) => {
                self.err(key, message);
                None
            }
        }
    }

    /// Reports a name that holds a control character (a newline, tab, …): ids and units
    /// go into logs, CSV and InfluxDB's line protocol, where a newline starts a new
    /// record and cannot be escaped. Backslashes, commas, spaces, `=` and quotes are
    /// fine: every output escapes them. Returns whether `value` is clean.
    pub fn printable(&mut self, path: &str, value: &str) -> bool {
        if value.chars().count() > MAX_NAME {
            self.err(
                path.to_string(),
                format!(
                    "{} characters, at most {MAX_NAME}: names go into every page subject and SMS (starts {:?})",
                    value.chars().count(),
                    value.chars().take(40).collect::<String>()
                ),
            );
            return false;
        }
        match value.chars().find(|ch| ch.is_control()) {
            None => true,
            Some(ch) => {
                self.err(
                    path.to_string(),
                    format!(
                        "{value:?} contains the control character U+{:04X}; names go into logs, CSV \
                         and InfluxDB line protocol, which cannot carry one",
                        u32::from(ch)
                    ),
                );
                false
            }
        }
    }

    /// Reports every id used more than once in a section.
    pub fn unique_ids<'a>(&mut self, section: &str, ids: impl Iterator<Item = &'a str>) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            if id.trim().is_empty() {
                self.err(format!("{section}[{i}].id"), "must not be empty");
            } else if let Some(j) = first.get(id) {
                self.err(
                    format!("{section}[{i}].id"),
                    format!("duplicate id {id:?} (already used by {section}[{j}])"),
                );
            } else {
                self.printable(&format!("{section}[{i}].id"), id);
                first.insert(id, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Found by fuzzing (fuzz/fuzz_targets/config_edit.rs): a variable name holding a
    /// line break made a problem span two lines of `check`'s one-line-per-problem output.
    #[test]
    fn a_secret_variable_name_with_a_line_break_is_reported_on_one_line() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("cryowatch.toml");
        std::fs::write(
            &file,
            "[site]\nname = \"lab\"\n\n[store]\npath = \"cw.db\"\n\n[mqtt]\n\
             url = \"mqtt://127.0.0.1:1883\"\nclient_id = \"cw\"\npassword_env = \"NO\\nSUCH\"\n",
        )
        .expect("write the configuration");
        let problems = crate::config::load(&file).expect_err("the file is refused").problems;
        assert!(
            problems
                .iter()
                .any(|p| p.path == "mqtt.password_env" && p.message == r#"environment variable "NO\nSUCH" is not set"#),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| !p.to_string().contains('\n')), "{problems:?}");
    }
}
