//! Whether the service user can open what the configuration names: the file itself,
//! `*_file` secrets, `ca_file`s, and the store's directory (which it must write). The
//! service runs as an unprivileged user (`cryowatch`); a file only root can read makes
//! it fail at start, and systemd restarts it over and over. `check --as-user` says so
//! first, from the permission bits of each file and the `x` bits of every directory
//! above it, against the user's uid, primary gid and supplementary groups.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use super::check::resolve;
use super::{Config, Problem, raw};

/// A user the files are checked for.
pub struct Account {
    pub name: String,
    uid: u32,
    groups: Vec<u32>,
}

impl Account {
    /// The user named `name`, with its primary and supplementary groups.
    pub fn lookup(name: &str) -> Result<Option<Account>, String> {
        let user = User::from_name(name).map_err(|e| format!("looking up user {name:?}: {e}"))?;
        let Some(user) = user else { return Ok(None) };
        let cname = std::ffi::CString::new(name).map_err(|_| format!("user name {name:?} holds a NUL"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| format!("groups of user {name:?}: {e}"))?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Ok(Some(Account {
            name: name.to_string(),
            uid: user.uid.as_raw(),
            groups,
        }))
    }

    /// Whether the permission bits of `meta` grant this user `want` (4 read, 2 write,
    /// 1 execute/search, or a sum).
    fn may(&self, meta: &std::fs::Metadata, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            (mode >> 6) & 7
        } else if self.groups.contains(&meta.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & want == want
    }
}

/// `mode 0600 root:root`
fn describe(meta: &std::fs::Metadata) -> String {
    let owner = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or(meta.uid().to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or(meta.gid().to_string(), |g| g.name);
    format!("mode {:04o} {owner}:{group}", meta.mode() & 0o7777)
}

/// Why `account` cannot open `path` for `want` (4 read; 6 read and write; 3 for a
/// directory it writes in), or `None` when it can. A path that does not exist is left
/// to the other checks.
fn denied(account: &Account, path: &Path, want: u32, what: &str) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mut dirs: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_path_buf).collect();
    dirs.reverse();
    for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(m) = std::fs::metadata(dir)
            && !account.may(&m, 1)
        {
            return Some(format!(
                "{}: not reachable by user {}: directory {} ({}) cannot be entered; the service would restart-loop",
                path.display(),
                account.name,
                dir.display(),
                describe(&m)
            ));
        }
    }
    (!account.may(&meta, want)).then(|| {
        format!(
            "{}: not {what} by user {} ({}); the service would restart-loop",
            path.display(),
            account.name,
            describe(&meta)
        )
    })
}

/// Every file of `cfg` (read from `file`, written as `raw`) that `account` could not
/// open as the daemon needs, each a problem with the key that names it.
pub fn unreadable(file: &Path, raw: &raw::RawConfig, cfg: &Config, account: &Account) -> Vec<Problem> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut wanted: Vec<(String, PathBuf)> = vec![(String::new(), file.to_path_buf())];
    let mut add = |key: String, given: &Option<String>| {
        if let Some(f) = given {
            wanted.push((key, resolve(base, f)));
        }
    };
    if let Some(i) = &raw.influx {
        add("influx.token_file".into(), &i.token_file);
        add("influx.ca_file".into(), &i.ca_file);
    }
    if let Some(m) = &raw.mqtt {
        add("mqtt.password_file".into(), &m.password_file);
        add("mqtt.ca_file".into(), &m.ca_file);
    }
    for (i, u) in raw.ups.iter().enumerate() {
        add(format!("ups[{i}].password_file"), &u.password_file);
    }
    if let Some(a) = &raw.api {
        for (i, t) in a.token.iter().enumerate() {
            add(format!("api.token[{i}].token_file"), &t.token_file);
        }
    }
    for (i, ch) in raw.channel.iter().enumerate() {
        add(format!("channel[{i}].password_file"), &ch.password_file);
        add(format!("channel[{i}].auth_token_file"), &ch.auth_token_file);
        add(format!("channel[{i}].ca_file"), &ch.ca_file);
    }
    let mut problems: Vec<Problem> = wanted
        .iter()
        .filter_map(|(key, path)| {
            denied(account, path, 4, "readable").map(|message| Problem {
                path: key.clone(),
                message,
            })
        })
        .collect();
    // The store: the file read and written, the directory written (journal, lock).
    let store = &cfg.store.path;
    let dir = store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    for (path, want, what) in [(store.as_path(), 6, "writable"), (existing, 3, "writable")] {
        if let Some(message) = denied(account, path, want, what) {
            problems.push(Problem {
                path: "store.path".into(),
                message,
            });
        }
    }
    problems
}
