//! Who is calling: a bearer token from `[[api.token]]`, or a signed-in user's session
//! cookie. Handlers take a [`Principal`] (401 when there is none) and call
//! [`Principal::require`] with the role they need (403 otherwise). Forms sent with a
//! session cookie must carry the session's CSRF token; bearer-token calls need none
//! (a browser never attaches a bearer token by itself).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use crate::config::Role;
use crate::model::now_ms;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cw_session";
/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// For the audit trail: `token:<id>` or `user:<name>`.
    pub actor: String,
    pub role: Role,
    /// Set for session (cookie) callers: forms must echo it.
    pub csrf: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthError {
    Unauthenticated,
    Forbidden { needed: Role, had: Role },
    BadCsrf,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AuthError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "authentication required: send Authorization: Bearer <token> or sign in".to_string(),
            ),
            AuthError::Forbidden { needed, had } => (
                StatusCode::FORBIDDEN,
                format!("this needs the {} role; yours is {}", needed.as_str(), had.as_str()),
            ),
            AuthError::BadCsrf => (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again".to_string(),
            ),
        };
        let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if self == AuthError::Unauthenticated {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"cryowatch\""),
            );
        }
        r
    }
}

impl Principal {
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                needed: role,
                had: self.role,
            })
        }
    }

    /// For a change requested with a session cookie, `given` must be the session's CSRF
    /// token; token callers pass.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), AuthError> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes())) => Ok(()),
            Some(_) => Err(AuthError::BadCsrf),
        }
    }
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme's name is
/// case-insensitive and may be surrounded by any spaces (RFC 7235 section 2.1); `None`
/// for another scheme or no token.
pub fn bearer(value: &str) -> Option<&str> {
    let value = value.trim_start_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    let token = rest.trim_matches([' ', '\t']);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn identify(parts: &Parts, state: &ApiState) -> Result<Option<Principal>, Response> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let given = auth.to_str().ok().and_then(bearer).unwrap_or("");
        // Every token is compared, so timing does not tell which one nearly matched.
        let mut found = None;
        for t in &state.config.sections.api_tokens {
            if same(given.as_bytes(), t.secret.0.as_bytes()) && found.is_none() {
                found = Some(Principal {
                    actor: format!("token:{}", t.id),
                    role: t.role,
                    csrf: None,
                });
            }
        }
        // A wrong token is refused outright, even with a valid session beside it.
        return match found {
            Some(p) => Ok(Some(p)),
            None => Err(AuthError::Unauthenticated.into_response()),
        };
    }
    let Some(value) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string) else {
        return Ok(None);
    };
    let idle_ms = crate::model::millis(state.config.sections.api_idle_timeout);
    let found = state
        .with_store(move |s| s.session(&value, now_ms(), SESSION_TTL_MS, idle_ms))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read sessions");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })?;
    Ok(found.map(|(user, role, csrf)| Principal {
        actor: format!("user:{user}"),
        role,
        csrf: Some(csrf),
    }))
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        match identify(parts, state).await? {
            Some(p) => Ok(p),
            None => Err(AuthError::Unauthenticated.into_response()),
        }
    }
}

impl OptionalFromRequestParts<ApiState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Option<Self>, Self::Rejection> {
        identify(parts, state).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below() {
        let p = Principal {
            actor: "token:x".into(),
            role: Role::Operator,
            csrf: None,
        };
        assert!(p.require(Role::Viewer).is_ok() && p.require(Role::Operator).is_ok());
        assert_eq!(
            p.require(Role::Admin),
            Err(AuthError::Forbidden {
                needed: Role::Admin,
                had: Role::Operator
            })
        );
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_with_any_spaces() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "BeArEr   abc  ",
            "  Bearer\tabc",
        ] {
            assert_eq!(bearer(v), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearerabc", "Bearer", "Bearer   ", "", "Token abc"] {
            assert_eq!(bearer(v), None, "{v:?}");
        }
    }

    #[test]
    fn session_callers_must_echo_their_csrf_token() {
        let p = Principal {
            actor: "user:ana".into(),
            role: Role::Operator,
            csrf: Some("abc".into()),
        };
        assert!(p.check_csrf(Some("abc")).is_ok());
        assert_eq!(p.check_csrf(Some("abd")), Err(AuthError::BadCsrf));
        assert_eq!(p.check_csrf(None), Err(AuthError::BadCsrf));
        let t = Principal { csrf: None, ..p };
        assert!(t.check_csrf(None).is_ok());
    }
}
