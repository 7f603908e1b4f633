//! Reading the file: TOML plus `CRYOWATCH__` environment overrides into the raw schema,
//! every unknown key listed (not only the first), each problem rewritten into our
//! `key.path: message` form.

use std::path::Path;

use serde::Deserialize;

use super::validate::{Secrets, validate_with};
use super::{Config, ConfigError, Problem, raw};

/// Reads `file`, applies `CRYOWATCH__SECTION__KEY` environment overrides, and validates,
/// resolving every secret. What `run`, `check` and the commands that page use.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    load_with(file, Secrets::Resolve)
}

/// Like [`load`], but a secret that cannot be resolved (a `*_env` variable not set, a
/// `*_file` not readable) is no problem: it is left empty. For the commands that only
/// read the store (`status`, `alarms`, `history`, `report`, `audit`, …) and connect to no
/// peer, so that they work for a person who is not given the service's secrets. The
/// configuration it returns must never be used to connect to a peer.
pub fn load_for_reading(file: &Path) -> Result<Config, ConfigError> {
    load_with(file, Secrets::Defer)
}

fn load_with(file: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
    let (raw, mut problems) = parse(file)?;
    if let Some(raw) = raw {
        let base = file.parent().unwrap_or(Path::new("."));
        match validate_with(&raw, base, secrets) {
            Ok(cfg) if problems.is_empty() => return Ok(cfg),
            Ok(_) => {}
            Err(more) => problems.extend(more),
        }
    }
    Err(ConfigError {
        file: file.to_path_buf(),
        problems,
    })
}

/// Reads and parses without semantic checks. Syntax errors, unknown keys (all of them)
/// and wrong TOML types are reported here.
pub fn load_raw(file: &Path) -> Result<raw::RawConfig, ConfigError> {
    match parse(file)? {
        (Some(raw), problems) if problems.is_empty() => Ok(raw),
        (_, problems) => Err(ConfigError {
            file: file.to_path_buf(),
            problems,
        }),
    }
}

/// The most unknown keys listed from one file; past that the file is not ours.
const MAX_UNKNOWN: usize = 200;

/// The raw configuration and the unknown keys found on the way, each a problem. `None`
/// for the configuration when something other than unknown keys (a wrong type, a
/// missing key) stops the parse; that problem is then the last in the list.
fn parse(file: &Path) -> Result<(Option<raw::RawConfig>, Vec<Problem>), ConfigError> {
    let fail = |problem: Problem| ConfigError {
        file: file.to_path_buf(),
        problems: vec![problem],
    };
    if !file.is_file() {
        return Err(fail(Problem {
            path: String::new(),
            message: "cannot read the configuration file: it does not exist or is not a file".into(),
        }));
    }
    let built = config::Config::builder()
        .add_source(config::File::from(file).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("CRYOWATCH")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(|e| fail(clean_config_error(&e.to_string(), file)))?;
    // serde stops at the first unknown key: each one found is recorded and taken out,
    // and the rest is read again, until the file parses or something else stops it.
    let mut value = built.cache;
    let mut problems = Vec::new();
    loop {
        match raw::RawConfig::deserialize(value.clone()) {
            Ok(raw) => return Ok((Some(raw), problems)),
            Err(e) => {
                let text = e.to_string();
                let problem = clean_config_error(&text, file);
                let unknown = text.starts_with("unknown field `");
                let removed = unknown && problems.len() < MAX_UNKNOWN && remove(&mut value, &problem.path);
                problems.push(problem);
                if !removed {
                    return Ok((None, problems));
                }
            }
        }
    }
}

/// Removes the key at `path` (`sensor[0].modbus.scal`); whether it was there.
fn remove(value: &mut config::Value, path: &str) -> bool {
    let mut segments: Vec<&str> = path.split('.').collect();
    let Some(last) = segments.pop() else { return false };
    let mut at = value;
    for seg in segments {
        let (key, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        let config::ValueKind::Table(table) = &mut at.kind else {
            return false;
        };
        let Some(next) = table.get_mut(key) else { return false };
        at = next;
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let Some(i) = index.strip_suffix(']').and_then(|i| i.parse::<usize>().ok()) else {
                return false;
            };
            let config::ValueKind::Array(items) = &mut at.kind else {
                return false;
            };
            let Some(next) = items.get_mut(i) else { return false };
            at = next;
        }
    }
    match &mut at.kind {
        config::ValueKind::Table(table) => table.shift_remove(last).is_some(),
        _ => false,
    }
}

/// Rewrites a `config` crate message into our `key.path: message` form on one line.
fn clean_config_error(message: &str, file: &Path) -> Problem {
    // Multi-line TOML syntax errors: keep the position line and the explanation.
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut text = if lines.len() > 1 {
        let last = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with('|') && !l.starts_with("in ") && !l.starts_with(|c: char| c.is_ascii_digit()));
        format!("{}: {}", lines[0], last.copied().unwrap_or(""))
    } else {
        message.to_string()
    };
    // The crate appends " in <file>"; the file is printed in front of every problem.
    if let Some(i) = text.rfind(" in ")
        && (text[i + 4..].contains(&*file.display().to_string())
            || file
                .file_name()
                .is_some_and(|n| text[i + 4..].ends_with(&*n.to_string_lossy())))
    {
        text.truncate(i);
    }
    let text = text.replace(" in :", ":").trim_end().to_string();
    // "... for key `sensor[0]modbus`" names the path: move it to the front.
    let (msg, key) = text.rsplit_once(" for key `").unwrap_or((&text, ""));
    let mut path = String::new();
    let key = key.trim_end_matches('`');
    let mut prev = ' ';
    for ch in key.chars() {
        if prev == ']' && ch != '.' && ch != '[' {
            path.push('.');
        }
        path.push(ch);
        prev = ch;
    }
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, ")
    {
        let full = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return Problem {
            path: full,
            message: format!("unknown key; {expected}"),
        };
    }
    Problem {
        path,
        message: msg.to_string(),
    }
}
