//! `[[channel]]`: how pages go out (SMTP, Twilio, a GSM modem, a webhook). Which keys
//! apply depends on `kind`; secrets are resolved here, once, and the checked channels
//! carry them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{Checker, Secret, resolve};
use super::raw;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
    },
    Twilio {
        base_url: String,
        account_sid: String,
        auth_token: Secret,
        from: String,
    },
    GsmModem {
        serial: PathBuf,
        baud: u32,
        /// Call the contact and let it ring this long before each page's SMS.
        ring: Option<Duration>,
    },
    Webhook {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub fallback: Option<String>,
    /// smtp, twilio, webhook: CA certificates trusted besides the system store.
    pub ca_file: Option<PathBuf>,
}

const KINDS: &[&str] = &["smtp", "twilio", "gsm_modem", "webhook"];

/// The longest wake-up call before an SMS: past this, the page itself is late.
pub const MAX_RING: Duration = Duration::from_secs(120);

/// Checks `[[channel]]`; channels of an unknown kind or missing what their kind needs
/// are left out (with their problems).
pub(super) fn channels(c: &mut Checker, raw: &[raw::Channel], base: &Path) -> Vec<Channel> {
    c.unique_ids("channel", raw.iter().map(|m| m.id.as_str()));
    let ids: HashSet<&str> = raw.iter().map(|ch| ch.id.as_str()).collect();
    raw.iter()
        .enumerate()
        .filter_map(|(i, ch)| channel(c, &format!("channel[{i}]"), ch, raw, &ids, base))
        .collect()
}

/// Checks one channel at key path `p`; `all` are every channel written, `ids` their ids.
fn channel(
    c: &mut Checker,
    p: &str,
    ch: &raw::Channel,
    all: &[raw::Channel],
    ids: &HashSet<&str>,
    base: &Path,
) -> Option<Channel> {
    let kind = c.one_of(&format!("{p}.kind"), &ch.kind, KINDS)?;
    let given: [(&str, bool); 15] = [
        ("host", ch.host.is_some()),
        ("port", ch.port.is_some()),
        ("tls", ch.tls.is_some()),
        ("username", ch.username.is_some()),
        (
            "password",
            ch.password.is_some() || ch.password_env.is_some() || ch.password_file.is_some(),
        ),
        ("from", ch.from.is_some()),
        ("base_url", ch.base_url.is_some()),
        ("account_sid", ch.account_sid.is_some()),
        (
            "auth_token",
            ch.auth_token.is_some() || ch.auth_token_env.is_some() || ch.auth_token_file.is_some(),
        ),
        ("serial", ch.serial.is_some()),
        ("baud", ch.baud.is_some()),
        ("ring", ch.ring.is_some()),
        ("url", ch.url.is_some()),
        ("ca_file", ch.ca_file.is_some()),
        ("fallback", ch.fallback.is_some()),
    ];
    let (allowed, required): (&[&str], &[&str]) = match kind {
        "smtp" => (
            &[
                "host", "port", "tls", "username", "password", "from", "ca_file", "fallback",
            ],
            &["host", "from"],
        ),
        "twilio" => (
            &["base_url", "account_sid", "auth_token", "from", "ca_file", "fallback"],
            &["account_sid", "auth_token", "from"],
        ),
        "gsm_modem" => (&["serial", "baud", "ring", "fallback"], &["serial"]),
        _ => (&["url", "ca_file", "fallback"], &["url"]),
    };
    for (key, is_given) in given {
        if is_given && !allowed.contains(&key) {
            c.err(format!("{p}.{key}"), format!("does not apply to kind = {kind:?}"));
        }
        if !is_given && required.contains(&key) {
            c.err(format!("{p}.{key}"), format!("missing: kind = {kind:?} needs {key}"));
        }
    }
    if let Some(t) = &ch.tls {
        c.one_of(&format!("{p}.tls"), t, &["none", "starttls", "tls"]);
    }
    let mut ca_file = None;
    if allowed.contains(&"ca_file") {
        ca_file = c.ca_file(&format!("{p}.ca_file"), ch.ca_file.as_deref(), base);
        if ch.ca_file.is_some() && ch.tls.as_deref() == Some("none") {
            c.err(format!("{p}.ca_file"), "does not apply to tls = \"none\"");
        }
    }
    let password = c.secret(p, "password", &ch.password, &ch.password_env, &ch.password_file, base);
    let auth_token = c.secret(
        p,
        "auth_token",
        &ch.auth_token,
        &ch.auth_token_env,
        &ch.auth_token_file,
        base,
    );
    for (key, url) in [("base_url", &ch.base_url), ("url", &ch.url)] {
        if let Some(u) = url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            c.err(
                format!("{p}.{key}"),
                format!("expected an http:// or https:// URL, found {u:?}"),
            );
        }
    }
    let ring = match (&ch.ring, kind) {
        (Some(text), "gsm_modem") => ring(c, &format!("{p}.ring"), text),
        _ => None,
    };
    if let Some(f) = &ch.fallback {
        if f == &ch.id {
            c.err(format!("{p}.fallback"), "a channel cannot fall back to itself");
        } else if !ids.contains(f.as_str()) {
            c.err(format!("{p}.fallback"), format!("unknown channel {f:?}"));
        } else if let Some(chain) = fallback_loop(all, &ch.id) {
            c.err(
                format!("{p}.fallback"),
                format!("the fallbacks go round in a loop: {}", chain.join(" -> ")),
            );
        }
    }

    // Everything is reported; what is missing now was reported above.
    let kind = match kind {
        "smtp" => {
            let tls = match ch.tls.as_deref() {
                Some("none") => SmtpTls::None,
                Some("tls") => SmtpTls::Tls,
                _ => SmtpTls::StartTls,
            };
            ChannelKind::Smtp {
                host: ch.host.clone()?,
                port: ch.port.unwrap_or(match tls {
                    SmtpTls::None => 25,
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                }),
                tls,
                username: ch.username.clone(),
                password,
                from: ch.from.clone()?,
            }
        }
        "twilio" => ChannelKind::Twilio {
            base_url: ch
                .base_url
                .as_deref()
                .unwrap_or("https://api.twilio.com")
                .trim_end_matches('/')
                .to_string(),
            account_sid: ch.account_sid.clone()?,
            auth_token: auth_token?,
            from: ch.from.clone()?,
        },
        "gsm_modem" => ChannelKind::GsmModem {
            serial: resolve(base, ch.serial.as_deref()?),
            baud: ch.baud.unwrap_or(115_200),
            ring,
        },
        _ => ChannelKind::Webhook { url: ch.url.clone()? },
    };
    Some(Channel {
        id: ch.id.clone(),
        kind,
        fallback: ch.fallback.clone(),
        ca_file,
    })
}

/// `ring`: longer than zero, at most [`MAX_RING`].
fn ring(c: &mut Checker, path: &str, text: &str) -> Option<Duration> {
    let d = c.duration(path, text)?;
    if d.is_zero() {
        c.err(path, "must be longer than zero (leave ring out for no call)");
        None
    } else if d > MAX_RING {
        c.err(
            path,
            format!("{text:?} is too long: a call rings at most 120s (\"2m\") before the SMS is sent"),
        );
        None
    } else {
        Some(d)
    }
}

/// The fallback chain from channel `start` when it comes back to `start`.
fn fallback_loop(all: &[raw::Channel], start: &str) -> Option<Vec<String>> {
    let mut chain = vec![start.to_string()];
    let mut at = start;
    while let Some(next) = all.iter().find(|c| c.id == at).and_then(|c| c.fallback.as_deref()) {
        chain.push(next.to_string());
        if next == start {
            return Some(chain);
        }
        if chain.len() > all.len() {
            // A loop further on, reported from its own channels.
            return None;
        }
        at = next;
    }
    None
}
