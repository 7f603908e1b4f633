//! `[api]`: the HTTP API's address, limits and bearer tokens.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::check::{Checker, Secret};
use super::raw;

/// `[api]`, checked (`Config::sections`); without an `[api]` section, the defaults and no
/// listen address.
#[derive(Debug, Clone)]
pub struct OtherSections {
    pub api_listen: Option<SocketAddr>,
    /// Where acknowledgement links point: `[api].public_url`, else `http://<listen>`.
    pub api_public_url: Option<String>,
    /// Bearer tokens of the HTTP API (`[[api.token]]`).
    pub api_tokens: Vec<ApiToken>,
    /// `[api].idle_timeout`: a web session unused this long has ended.
    pub api_idle_timeout: Duration,
    /// `[api].max_connections`: HTTP connections served at once.
    pub api_max_connections: usize,
}

/// Default of `[api].idle_timeout`.
pub const DEFAULT_API_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default of `[api].max_connections`.
pub const DEFAULT_API_MAX_CONNECTIONS: usize = 256;
/// Most HTTP connections `[api].max_connections` may allow.
pub const MAX_API_CONNECTIONS: u64 = 16_384;

impl Default for OtherSections {
    fn default() -> Self {
        OtherSections {
            api_listen: None,
            api_public_url: None,
            api_tokens: Vec::new(),
            api_idle_timeout: DEFAULT_API_IDLE_TIMEOUT,
            api_max_connections: DEFAULT_API_MAX_CONNECTIONS,
        }
    }
}

/// What an API caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read status, alarms, history.
    Viewer,
    /// Also acknowledge and shelve.
    Operator,
    /// Also manage users.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A bearer token of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub role: Role,
    pub secret: Secret,
}

/// The shortest API token accepted: a token is a password that never expires.
const MIN_TOKEN_LEN: usize = 16;

/// Checks `[api]` and its `[[api.token]]`s.
pub(super) fn api(c: &mut Checker, api: Option<&raw::Api>, base: &Path) -> OtherSections {
    let Some(api) = api else {
        return OtherSections::default();
    };
    let api_idle_timeout = c.positive_duration(
        "api.idle_timeout",
        api.idle_timeout.as_deref(),
        DEFAULT_API_IDLE_TIMEOUT,
    );
    let mut api_max_connections = DEFAULT_API_MAX_CONNECTIONS;
    match api.max_connections {
        Some(n) if n == 0 || n > MAX_API_CONNECTIONS => c.err(
            "api.max_connections",
            format!("expected 1 to {MAX_API_CONNECTIONS} connections, found {n}"),
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
    let api_listen = match api.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.err("api.listen", format!("expected ip:port, found {:?}", api.listen));
            None
        }
    };
    let api_tokens = tokens(c, &api.token, base);
    OtherSections {
        api_public_url: api
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .or_else(|| api_listen.map(|l| format!("http://{l}"))),
        api_listen,
        api_tokens,
        api_idle_timeout,
        api_max_connections,
    }
}

/// Checks `[[api.token]]`: each needs a role and a secret of its own.
fn tokens(c: &mut Checker, raw: &[raw::ApiToken], base: &Path) -> Vec<ApiToken> {
    c.unique_ids("api.token", raw.iter().map(|t| t.id.as_str()));
    let mut out: Vec<ApiToken> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let p = format!("api.token[{i}]");
        let role = c
            .one_of(&format!("{p}.role"), &t.role, &["viewer", "operator", "admin"])
            .and_then(Role::parse);
        let secret = c.secret(&p, "token", &t.token, &t.token_env, &t.token_file, base);
        if secret.is_none() && t.token.is_none() && t.token_env.is_none() && t.token_file.is_none() {
            c.err(format!("{p}.token"), "missing: give token, token_env or token_file");
        }
        if c.secrets == super::Secrets::Defer && secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            // Not resolved while reading only; nothing will be served with it.
            continue;
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
            if let Some(same) = out.iter().find(|o| o.secret.0 == secret) {
                c.err(
                    format!("{p}.token"),
                    format!("the same secret as token {:?}: every token needs its own", same.id),
                );
                continue;
            }
            out.push(ApiToken {
                id: t.id.clone(),
                role,
                secret: Secret(secret),
            });
        }
    }
    out
}

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
