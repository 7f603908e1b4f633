//! Signing in and out.
//!
//! `GET /login` sets a short-lived random cookie (`cw_login`, only sent to `/login`)
//! and puts the same value in the form; `POST /login` accepts the form only when the
//! two match (a double-submit token: another site can make a browser post the form but
//! cannot read or set the cookie) and the request's `Origin`, when the browser sends
//! one, is this server. That stops another site from signing a person in under the
//! attacker's account. A good password starts a session: the `cw_session` cookie is
//! `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` behind TLS. Sign-ins, failed
//! ones included, and sign-outs are written to the audit trail.

use axum::extract::rejection::FormRejection;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Extension, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::guard::{self, Verdict};
use super::{Nav, over_tls, page, refusal};
use crate::api::ApiState;
use crate::api::auth::{Principal, SESSION_COOKIE, cookie, same};
use crate::model::now_ms;
use crate::store::users;

/// The pre-session cookie of the sign-in form's double-submit token.
pub const LOGIN_COOKIE: &str = "cw_login";
/// How long a sign-in form stays usable.
const FORM_TTL_S: i64 = 3600;
/// Longest user name and password read from the form.
const MAX_FIELD: usize = 256;

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    login_token: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// A path on this server (`/...`, not `//host` nor `/\host`), safe to redirect to.
pub fn local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.chars().any(char::is_control)
}

fn next_or_root(next: Option<&str>) -> String {
    next.filter(|n| local_path(n)).unwrap_or("/").to_string()
}

/// `Set-Cookie` for `name=value` on `path`, HttpOnly and SameSite=Strict, Secure behind
/// TLS; `max_age` 0 deletes it.
fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("cw_invalid=; Max-Age=0"))
}

/// The sign-in page with a fresh double-submit token (and its cookie).
fn login_page(
    st: &ApiState,
    headers: &HeaderMap,
    status: StatusCode,
    user: &str,
    next: &str,
    message: &str,
) -> Response {
    let token = match crate::random::token::<32>() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot read random bytes for the sign-in form");
            return refusal(
                st,
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Try again",
                "Sign-in is unavailable right now.",
            );
        }
    };
    let body = login_body(&token, user, next, message);
    let mut r = page(st, status, "Sign in", None, Nav::Other, body);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, "/login", FORM_TTL_S, over_tls(st, headers)),
    );
    r
}

/// The sign-in page's body: `message` (when not empty), then the form with the
/// double-submit `token`, the `user` name to fill in and where to go `next`.
fn login_body(token: &str, user: &str, next: &str, message: &str) -> Markup {
    html! {
        section class="login" {
            h1 { "Sign in" }
            @if !message.is_empty() {
                p class="notice bad" role="alert" { (message) }
            }
            form method="post" action="/login" {
                input type="hidden" name="login_token" value=(token);
                input type="hidden" name="next" value=(next);
                label for="user" { "User name" }
                input id="user" name="user" autocomplete="username" autocapitalize="none" required maxlength="64"
                    value=(user);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p class="small" {
                "Accounts are made on the monitoring server with " code { "cryowatch user add" } "."
            }
        }
    }
}

/// `GET /login`: the form, or the dashboard when already signed in.
pub async fn form(
    State(st): State<ApiState>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = next_or_root(q.next.as_deref());
    if who.is_some() {
        return Redirect::to(&next).into_response();
    }
    login_page(&st, &headers, StatusCode::OK, "", &next, "")
}

/// Whether the browser says the form came from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` that is neither the host asked for (`Host`, or
/// `X-Forwarded-Host` behind a proxy) nor `[api].public_url`.
fn cross_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return true;
    }
    let Some(origin) = text(header::ORIGIN) else {
        return false; // older browsers and command-line clients send none
    };
    let host_of = |url: &str| {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or("").to_ascii_lowercase()
    };
    let origin_host = host_of(origin);
    let ours = [
        text(header::HOST).map(str::to_ascii_lowercase),
        text(header::HeaderName::from_static("x-forwarded-host")).map(|h| h.trim().to_ascii_lowercase()),
        public_url.map(host_of),
    ];
    origin == "null" || origin_host.is_empty() || !ours.iter().flatten().any(|h| *h == origin_host)
}

enum Outcome {
    SignedIn(String),
    Refused,
}

/// `POST /login`: checks the form's origin and token, then the password; on success
/// starts a session and redirects to `next` (default `/`).
pub async fn sign_in(
    State(st): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return login_page(
            &st,
            &headers,
            StatusCode::BAD_REQUEST,
            "",
            "/",
            "The form could not be read; try again.",
        );
    };
    let next = next_or_root(f.next.as_deref());
    let user = f.user.trim().chars().take(MAX_FIELD).collect::<String>();
    if cross_site(&headers, st.config.sections.api_public_url.as_deref()) {
        tracing::warn!(user = %user, "sign-in form posted from another site refused");
        return login_page(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            "",
            "/",
            "This sign-in came from another site and was refused. Sign in here.",
        );
    }
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| !c.is_empty() && same(c.as_bytes(), f.login_token.as_bytes())) {
        return login_page(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            &user,
            &next,
            "The sign-in form expired or cookies are blocked. Allow cookies for this site and sign in again.",
        );
    }
    let password = f.password.chars().take(MAX_FIELD).collect::<String>();
    let client = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let now = now_ms();
    let name = user.clone();
    match st.guard.with(|t| t.verdict(&name, client, now)) {
        Verdict::Check => {}
        verdict => return held_back(&st, &headers, &name, client, now, &verdict).await,
    }
    // Argon2 takes 19 MiB while it runs: only a few checks at once, a few waiting.
    let Ok(_turn) = st.guard.turn().await else {
        let verdict = Verdict::Throttled {
            until: now + 5_000,
            by: "server",
        };
        return held_back(&st, &headers, &name, client, now, &verdict).await;
    };
    // The Argon2 check runs outside the store's lock, so a sign-in never holds up the
    // other requests.
    let lookup = name.clone();
    let stored = match st.with_store(move |s| s.user_hash(&lookup)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read users for a sign-in");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let hash = stored.as_ref().map(|(h, _)| h.clone());
    let matched = tokio::task::spawn_blocking(move || users::verify_password(hash.as_deref(), &password))
        .await
        .unwrap_or(false);
    drop(_turn);
    let verdict = stored.filter(|_| matched).map(|(_, role)| role);
    let failure = match verdict {
        Some(_) => {
            st.guard.with(|t| t.succeeded(&name));
            None
        }
        None => Some(st.guard.with(|t| t.failed(&name, client, now))),
    };
    let idle_ms = crate::model::millis(st.config.sections.api_idle_timeout);
    let address = client.map(|a| a.to_string());
    let outcome = st
        .with_store(move |s| {
            let subject = format!("user {name}");
            let Some(role) = verdict else {
                let mut entries = vec![(
                    "web.login_failed",
                    "anonymous",
                    subject.as_str(),
                    json!({
                        "result": "refused",
                        "reason": "wrong user name or password",
                        "client": address,
                    }),
                )];
                if let Some(until) = failure.and_then(|f| f.locked) {
                    entries.push((
                        "web.account_locked",
                        "anonymous",
                        subject.as_str(),
                        json!({
                            "result": "locked",
                            "reason": format!("{} failed sign-ins in a row", guard::LOCK_AFTER),
                            "until": crate::model::format_rfc3339(until),
                            "client": address,
                        }),
                    ));
                }
                s.append_audits(now, &entries)?;
                return Ok(Outcome::Refused);
            };
            let actor = format!("user:{name}");
            let detail = json!({ "result": "signed in", "role": role.as_str() });
            let session = s.sign_in(
                &name,
                (super::SESSION_TTL_MS, idle_ms),
                ("web.login", &actor, &subject, detail),
                now,
            )?;
            Ok(Outcome::SignedIn(session))
        })
        .await;
    match outcome {
        Ok(Outcome::SignedIn(session)) => {
            tracing::info!(user = %user, "signed in to the web dashboard");
            let tls = over_tls(&st, &headers);
            let mut r = Redirect::to(&next).into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session, "/", super::SESSION_TTL_MS / 1000, tls),
            );
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", "/login", 0, tls));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Outcome::Refused) => {
            tracing::warn!(user = %user, client = ?client, "failed sign-in to the web dashboard");
            st.guard.report(now, false).await;
            login_page(
                &st,
                &headers,
                StatusCode::UNAUTHORIZED,
                &user,
                &next,
                "Wrong user name or password.",
            )
        }
        Err(e) => super::failure(&st, None, &e),
    }
}

/// A sign-in refused before its password was checked (the user name is locked, it or
/// the address tried too soon after a failure, or no room to check): audited, counted,
/// answered 429 (503 when the server had no room) with `Retry-After`. It says nothing
/// about the password, which was not looked at.
async fn held_back(
    st: &ApiState,
    headers: &HeaderMap,
    name: &str,
    client: Option<IpAddr>,
    now: crate::model::TimestampMs,
    verdict: &Verdict,
) -> Response {
    let (status, kind, reason, until, message) = match verdict {
        Verdict::Locked { until } => (
            StatusCode::TOO_MANY_REQUESTS,
            "web.login_locked",
            "account locked after repeated failed sign-ins".to_string(),
            *until,
            format!(
                "This account is locked after repeated failed sign-ins. Try again in {} minutes, or ask an administrator.",
                (until - now + 59_999) / 60_000
            ),
        ),
        Verdict::Throttled { until, by: "server" } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "web.login_throttled",
            "too many sign-ins at once".to_string(),
            *until,
            "Too many sign-ins at once. Try again in a few seconds.".to_string(),
        ),
        Verdict::Throttled { until, by } => (
            StatusCode::TOO_MANY_REQUESTS,
            "web.login_throttled",
            format!("too soon after a failed sign-in of this {by}"),
            *until,
            "Too many failed sign-ins. Wait a little and try again.".to_string(),
        ),
        Verdict::Check => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    st.guard.with(|t| t.refused(now));
    let detail = json!({
        "result": "refused",
        "reason": reason,
        "until": crate::model::format_rfc3339(until),
        "client": client.map(|a| a.to_string()),
    });
    let subject = format!("user {name}");
    let audited = st
        .with_store(move |s| s.append_audit(now, kind, "anonymous", &subject, &detail))
        .await;
    if let Err(e) = audited {
        tracing::error!(error = %e, "could not audit a refused sign-in");
    }
    tracing::warn!(user = %name, client = ?client, reason = kind, "sign-in refused before the password check");
    st.guard.report(now, false).await;
    let retry = ((until - now).max(1_000) + 999) / 1000;
    let next = "/";
    let mut r = login_page(st, headers, status, name, next, &message);
    if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `POST /logout` (CSRF-checked): ends the session and clears its cookie.
pub async fn sign_out(
    State(st): State<ApiState>,
    who: Option<Principal>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Some(who) = who else {
        return Redirect::to("/login").into_response();
    };
    let given = form.ok().and_then(|Form(f)| f.csrf);
    if who.check_csrf(given.as_deref()).is_err() {
        return refusal(
            &st,
            StatusCode::FORBIDDEN,
            Some(&who),
            "Not signed out",
            "The form carried no valid token (it may be from an old page). Reload the page and sign out again.",
        );
    }
    if let Some(value) = cookie(&headers, SESSION_COOKIE).map(str::to_string) {
        let actor = who.actor.clone();
        let ended = st
            .with_store(move |s| {
                let subject = format!("user {}", actor.strip_prefix("user:").unwrap_or(&actor));
                s.sign_out(&value, ("web.logout", &actor, &subject, json!({})), now_ms())
            })
            .await;
        if let Err(e) = ended {
            return super::failure(&st, Some(&who), &e);
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, over_tls(&st, &headers)),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{assert_escaped, hostile};
    use super::*;

    #[test]
    fn every_outside_string_on_the_sign_in_page_is_escaped() {
        let html = login_body(
            &hostile("token"),
            &hostile("user-name"),
            &hostile("next"),
            &hostile("error-message"),
        )
        .into_string();
        assert_escaped(&html, &["token", "user-name", "next", "error-message"]);
        assert!(
            html.contains("<input type=\"hidden\" name=\"login_token\" value=\"&lt;"),
            "{html}"
        );
        assert!(html.contains("<p class=\"notice bad\" role=\"alert\">&lt;"), "{html}");
        assert!(!login_body("t", "", "/", "").into_string().contains("notice"));
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert!(local_path("/sensors/dewar-1.temp?from=-6h"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "/\nx",
        ] {
            assert!(!local_path(bad), "{bad:?}");
        }
        assert_eq!(next_or_root(Some("//evil")), "/");
    }

    #[test]
    fn another_sites_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(!cross_site(&h, None), "no Origin: allowed (the token still applies)");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8470"));
        assert!(!cross_site(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h, None));
        // Behind a proxy that does not pass Host on: the public URL or X-Forwarded-Host.
        h.insert(header::ORIGIN, HeaderValue::from_static("https://cw.lab.example.org"));
        assert!(cross_site(&h, None));
        assert!(!cross_site(&h, Some("https://CW.lab.example.org/")));
        h.insert("x-forwarded-host", HeaderValue::from_static("cw.lab.example.org"));
        assert!(!cross_site(&h, None));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, Some("https://cw.lab.example.org")));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        let c = set_cookie("cw_session", "abc", "/", 60, true);
        assert_eq!(
            c,
            "cw_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
        let c = set_cookie("cw_session", "abc", "/", 60, false);
        assert!(!c.to_str().unwrap_or("").contains("Secure"));
    }
}
