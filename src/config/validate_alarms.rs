//! Checks of the sections the alarm, notification and API stages act on: rules,
//! maintenance windows, contacts, schedules, escalations, routes, channels, API tokens.
//! Cross references are checked here so a typo is refused at start, not at 3 a.m.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use super::OtherSections;
use super::raw::RawConfig;
use super::validate::Checker;

const SEVERITIES: &[&str] = &["warning", "alarm", "critical"];

pub(super) fn check(c: &mut Checker, raw: &RawConfig, base: &Path) -> OtherSections {
    let contacts: HashSet<&str> = raw.contact.iter().map(|s| s.id.as_str()).collect();
    let schedules: HashSet<&str> = raw.schedule.iter().map(|s| s.id.as_str()).collect();
    let escalations: HashSet<&str> = raw.escalation.iter().map(|s| s.id.as_str()).collect();
    let channels: HashSet<&str> = raw.channel.iter().map(|s| s.id.as_str()).collect();
    let assets: HashSet<&str> = raw.asset.iter().map(|s| s.id.as_str()).collect();

    c.unique_ids("contact", raw.contact.iter().map(|m| m.id.as_str()));
    for (i, ct) in raw.contact.iter().enumerate() {
        if ct.email.is_none() && ct.phone.is_none() {
            c.err(
                format!("contact[{i}]"),
                format!(
                    "contact {:?} has neither email nor phone: nobody could reach them",
                    ct.id
                ),
            );
        }
        if let Some(phone) = &ct.phone
            && !(phone.starts_with('+') && phone.len() > 4 && phone[1..].chars().all(|ch| ch.is_ascii_digit()))
        {
            c.err(
                format!("contact[{i}].phone"),
                format!("expected an E.164 number like \"+15551230001\", found {phone:?}"),
            );
        }
        if let Some(email) = &ct.email
            && !email.contains('@')
        {
            c.err(
                format!("contact[{i}].email"),
                format!("not an email address: {email:?}"),
            );
        }
    }

    c.unique_ids("group", raw.group.iter().map(|g| g.id.as_str()));
    for (i, g) in raw.group.iter().enumerate() {
        if g.members.is_empty() {
            c.err(format!("group[{i}].members"), "must name at least one contact");
        }
        for (j, m) in g.members.iter().enumerate() {
            if !contacts.contains(m.as_str()) {
                c.err(format!("group[{i}].members[{j}]"), format!("unknown contact {m:?}"));
            }
        }
    }

    c.unique_ids("schedule", raw.schedule.iter().map(|m| m.id.as_str()));
    for (i, s) in raw.schedule.iter().enumerate() {
        let p = format!("schedule[{i}]");
        let rotation = c.one_of(&format!("{p}.rotation"), &s.rotation, &["daily", "weekly"]);
        check_weekly_time(c, &format!("{p}.handoff"), &s.handoff, rotation == Some("weekly"));
        if s.members.is_empty() {
            c.err(format!("{p}.members"), "must name at least one contact");
        }
        for (j, m) in s.members.iter().enumerate() {
            if !contacts.contains(m.as_str()) {
                c.err(format!("{p}.members[{j}]"), format!("unknown contact {m:?}"));
            }
        }
        for (j, o) in s.overrides.iter().enumerate() {
            let op = format!("{p}.override[{j}]");
            if !contacts.contains(o.contact.as_str()) {
                c.err(format!("{op}.contact"), format!("unknown contact {:?}", o.contact));
            }
            let from = parse_time(c, &format!("{op}.from"), &o.from);
            let to = parse_time(c, &format!("{op}.to"), &o.to);
            if let (Some(f), Some(t)) = (from, to)
                && t <= f
            {
                c.err(format!("{op}.to"), "must be later than from");
            }
        }
    }

    c.unique_ids("escalation", raw.escalation.iter().map(|m| m.id.as_str()));
    for (i, e) in raw.escalation.iter().enumerate() {
        let p = format!("escalation[{i}]");
        if let Some(r) = e.repeat.filter(|r| *r > MAX_REPEAT) {
            c.err(
                format!("{p}.repeat"),
                format!("{r} rounds, at most {MAX_REPEAT}: past that nobody is listening; page someone else instead"),
            );
        }
        if let Some(ri) = &e.repeat_interval {
            c.positive_duration(
                &format!("{p}.repeat_interval"),
                Some(ri),
                std::time::Duration::from_secs(900),
            );
        }
        if e.step.is_empty() {
            c.err(
                format!("{p}.step"),
                "an escalation needs at least one [[escalation.step]]",
            );
        }
        for (j, s) in e.step.iter().enumerate() {
            let sp = format!("{p}.step[{j}]");
            c.duration(&format!("{sp}.after"), &s.after);
            if s.notify.is_empty() {
                c.err(format!("{sp}.notify"), "must name at least one target");
            }
            for (k, t) in s.notify.iter().enumerate() {
                let ok = match t.split_once(':') {
                    Some(("contact", id)) => contacts.contains(id),
                    Some(("schedule", id)) => schedules.contains(id),
                    Some(("group", id)) => raw.group.iter().any(|g| g.id == id),
                    _ => {
                        c.err(
                            format!("{sp}.notify[{k}]"),
                            format!("expected contact:ID, schedule:ID or group:NAME, found {t:?}"),
                        );
                        continue;
                    }
                };
                if !ok {
                    c.err(format!("{sp}.notify[{k}]"), format!("unknown target {t:?}"));
                }
            }
            for (k, v) in s.via.iter().enumerate() {
                if !channels.contains(v.as_str()) {
                    c.err(format!("{sp}.via[{k}]"), format!("unknown channel {v:?}"));
                }
            }
        }
    }

    for (i, r) in raw.route.iter().enumerate() {
        let p = format!("route[{i}]");
        if !escalations.contains(r.escalation.as_str()) {
            c.err(
                format!("{p}.escalation"),
                format!("unknown escalation {:?}", r.escalation),
            );
        }
        if let Some(a) = &r.asset
            && !assets.contains(a.as_str())
        {
            c.err(format!("{p}.asset"), format!("unknown asset {a:?}"));
        }
        if let Some(s) = &r.severity {
            c.one_of(&format!("{p}.severity"), s, SEVERITIES);
        }
    }

    check_channels(c, raw, base, &channels);

    let mut api_listen = None;
    let mut api_tokens = Vec::new();
    let mut api_idle_timeout = crate::config::DEFAULT_API_IDLE_TIMEOUT;
    let mut api_max_connections = crate::config::DEFAULT_API_MAX_CONNECTIONS;
    if let Some(api) = &raw.api {
        api_idle_timeout = c.positive_duration(
            "api.idle_timeout",
            api.idle_timeout.as_deref(),
            crate::config::DEFAULT_API_IDLE_TIMEOUT,
        );
        match api.max_connections {
            Some(n) if n == 0 || n > crate::config::MAX_API_CONNECTIONS => c.err(
                "api.max_connections",
                format!(
                    "expected 1 to {} connections, found {n}",
                    crate::config::MAX_API_CONNECTIONS
                ),
            ),
            Some(n) => api_max_connections = n as usize,
            None => {}
        }
        if let Some(u) = &api.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            c.err(
                "api.public_url",
                format!("expected an http:// or https:// URL, found {u:?}"),
            );
        }
        match api.listen.parse::<SocketAddr>() {
            Ok(a) => api_listen = Some(a),
            Err(_) => c.err("api.listen", format!("expected ip:port, found {:?}", api.listen)),
        }
        c.unique_ids("api.token", api.token.iter().map(|t| t.id.as_str()));
        for (i, t) in api.token.iter().enumerate() {
            let p = format!("api.token[{i}]");
            let role = c
                .one_of(&format!("{p}.role"), &t.role, &["viewer", "operator", "admin"])
                .and_then(crate::config::Role::parse);
            let secret = c.secret(&p, "token", &t.token, &t.token_env, &t.token_file, base);
            if secret.is_none() && t.token.is_none() && t.token_env.is_none() && t.token_file.is_none() {
                c.err(format!("{p}.token"), "missing: give token, token_env or token_file");
            }
            let secret = secret.and_then(|s| {
                let s = s.0.trim().to_string();
                match token_problem(&s) {
                    Some(why) => {
                        c.err(format!("{p}.token"), why);
                        None
                    }
                    None => Some(s),
                }
            });
            if let (Some(role), Some(secret)) = (role, secret) {
                // Two tokens with one secret: the first would win, and an "admin" would
                // silently act with the other's role.
                if let Some(same) = api_tokens
                    .iter()
                    .find(|o: &&crate::config::ApiToken| o.secret.0 == secret)
                {
                    c.err(
                        format!("{p}.token"),
                        format!("the same secret as token {:?}: every token needs its own", same.id),
                    );
                    continue;
                }
                api_tokens.push(crate::config::ApiToken {
                    id: t.id.clone(),
                    role,
                    secret: crate::config::Secret(secret),
                });
            }
        }
    }

    OtherSections {
        contacts: raw.contact.iter().map(|r| r.id.clone()).collect(),
        escalations: raw.escalation.iter().map(|r| r.id.clone()).collect(),
        channels: raw.channel.iter().map(|r| r.id.clone()).collect(),
        api_public_url: raw.api.as_ref().and_then(|a| {
            a.public_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_string())
                .or_else(|| api_listen.map(|l| format!("http://{l}")))
        }),
        api_listen,
        api_tokens,
        api_idle_timeout,
        api_max_connections,
    }
}

/// The most rounds an escalation may repeat.
const MAX_REPEAT: u32 = 100;

/// The shortest API token accepted: a token is a password that never expires.
const MIN_TOKEN_LEN: usize = 16;

/// What is wrong with an API token's secret (already trimmed), if anything.
fn token_problem(secret: &str) -> Option<String> {
    if secret.is_empty() {
        return Some("blank: a blank token would let any Authorization header in".into());
    }
    // RFC 6750's b64token: what a Bearer credential may hold.
    if let Some(bad) = secret
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || "-._~+/=".contains(*ch)))
    {
        return Some(format!(
            "contains {bad:?}: a bearer token holds only letters, digits and - . _ ~ + / ="
        ));
    }
    if secret.len() < MIN_TOKEN_LEN {
        return Some(format!(
            "too short ({} characters): at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 24`)",
            secret.len()
        ));
    }
    None
}

fn check_channels(c: &mut Checker, raw: &RawConfig, base: &Path, ids: &HashSet<&str>) {
    c.unique_ids("channel", raw.channel.iter().map(|m| m.id.as_str()));
    for (i, ch) in raw.channel.iter().enumerate() {
        let p = format!("channel[{i}]");
        let Some(kind) = c.one_of(
            &format!("{p}.kind"),
            &ch.kind,
            &["smtp", "twilio", "gsm_modem", "webhook"],
        ) else {
            continue;
        };
        let given: [(&str, bool); 14] = [
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
            "gsm_modem" => (&["serial", "baud", "fallback"], &["serial"]),
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
        if allowed.contains(&"ca_file") {
            c.ca_file(&format!("{p}.ca_file"), ch.ca_file.as_deref(), base);
            if ch.ca_file.is_some() && ch.tls.as_deref() == Some("none") {
                c.err(format!("{p}.ca_file"), "does not apply to tls = \"none\"");
            }
        }
        c.secret(&p, "password", &ch.password, &ch.password_env, &ch.password_file, base);
        c.secret(
            &p,
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
        if let Some(f) = &ch.fallback {
            if f == &ch.id {
                c.err(format!("{p}.fallback"), "a channel cannot fall back to itself");
            } else if !ids.contains(f.as_str()) {
                c.err(format!("{p}.fallback"), format!("unknown channel {f:?}"));
            } else if let Some(chain) = fallback_loop(raw, &ch.id) {
                c.err(
                    format!("{p}.fallback"),
                    format!("the fallbacks go round in a loop: {}", chain.join(" -> ")),
                );
            }
        }
    }
}

/// The fallback chain from channel `start` when it comes back to `start`.
fn fallback_loop(raw: &RawConfig, start: &str) -> Option<Vec<String>> {
    let mut chain = vec![start.to_string()];
    let mut at = start;
    while let Some(next) = raw
        .channel
        .iter()
        .find(|c| c.id == at)
        .and_then(|c| c.fallback.as_deref())
    {
        chain.push(next.to_string());
        if next == start {
            return Some(chain);
        }
        if chain.len() > raw.channel.len() {
            // A loop further on, reported from its own channels.
            return None;
        }
        at = next;
    }
    None
}

/// `"Tue 09:00"` (weekly) or `"09:00"` (daily).
fn check_weekly_time(c: &mut Checker, path: &str, text: &str, weekly: bool) {
    let ok = matches!(super::rules::parse_day_time(text), Some((day, _)) if day.is_some() || !weekly);
    if !ok {
        let example = if weekly {
            "\"Tue 09:00\""
        } else {
            "\"09:00\" or \"Tue 09:00\""
        };
        c.err(
            path,
            format!("cannot parse {text:?}; expected {example} (day Mon..Sun, 24-hour time)"),
        );
    }
}

pub(super) fn parse_time(c: &mut Checker, path: &str, text: &str) -> Option<jiff::Timestamp> {
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            c.err(
                path,
                format!("expected an RFC 3339 time with offset like \"2026-12-24T17:00:00-06:00\", found {text:?}"),
            );
            None
        }
    }
}
