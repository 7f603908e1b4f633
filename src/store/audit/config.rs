//! Configuration loads in the audit trail: the file's SHA-256 and, when it changed since
//! the last load, the line diff against it (secret values redacted).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{append, hex};
use crate::model::TimestampMs;

const KEY: &str = "config.text";

/// The text kept for the next diff: values of keys that look like secrets are replaced.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let secret = trimmed.split_once('=').is_some_and(|(k, _)| {
            let k = k.trim().to_ascii_lowercase();
            !k.starts_with('#')
                && !k.ends_with("_env")
                && !k.ends_with("_file")
                && ["password", "token", "secret", "key"].iter().any(|s| k.contains(s))
        });
        match (secret, line.split_once('=')) {
            (true, Some((k, _))) => {
                out.push_str(k);
                out.push_str("= \"<redacted>\"");
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Records a load of `path` with content `bytes`; returns the audit seq.
pub fn record_load(
    c: &Connection,
    path: &Path,
    bytes: &[u8],
    kind: &str,
    actor: &str,
    now: TimestampMs,
) -> rusqlite::Result<i64> {
    let sha = hex(&Sha256::digest(bytes));
    let text = redact(&String::from_utf8_lossy(bytes));
    let previous: Option<String> = c
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY], |r| r.get(0))
        .optional()?;
    let diff = match &previous {
        Some(old) if *old == text => serde_json::Value::Null,
        Some(old) => similar::TextDiff::from_lines(old.as_str(), text.as_str())
            .unified_diff()
            .context_radius(1)
            .header("previous", "loaded")
            .to_string()
            .into(),
        None => "first load".into(),
    };
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![KEY, text],
    )?;
    if kind != "config.checked" {
        // A configuration is in force again: a refused reload is no longer a condition.
        c.execute("DELETE FROM meta WHERE key = 'config.rejected'", [])?;
    }
    let detail = serde_json::json!({
        "file": path.display().to_string(),
        "sha256": sha,
        "changed": previous.as_deref() != Some(text.as_str()),
        "diff": diff,
    });
    append(c, now, kind, actor, &path.display().to_string(), &detail)
}

/// Records a configuration refused on reload (inside the caller's transaction): in the
/// audit trail, and as the condition [`rejected`] reads until one is applied again.
pub fn record_rejected(c: &Connection, now: TimestampMs, path: &Path, problems: &str) -> rusqlite::Result<()> {
    let detail = serde_json::json!({ "file": path.display().to_string(), "problems": problems });
    append(
        c,
        now,
        "config.rejected",
        "daemon",
        &path.display().to_string(),
        &detail,
    )?;
    let text = format!("{}\t{problems}", crate::model::format_rfc3339(now));
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('config.rejected', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [text],
    )?;
    Ok(())
}

/// The refused configuration still in the way, as `time<TAB>problems`, if any.
pub fn rejected(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'config.rejected'",
        [],
        |r| r.get(0),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_references_to_them_kept() {
        let t =
            "password = \"hunter2\"\npassword_env = \"X\"\n# token = \"a\"\nurl = \"mqtt://h\"\nauth_token = 'abc'\n";
        let r = redact(t);
        assert!(!r.contains("hunter2") && !r.contains("abc"), "{r}");
        assert!(r.contains("password_env = \"X\""), "{r}");
        assert!(r.contains("url = \"mqtt://h\""), "{r}");
    }
}
