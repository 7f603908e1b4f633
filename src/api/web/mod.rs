//! The web dashboard: server-rendered pages for people signed in with a user name and
//! password (`cryowatch user add`).
//!
//! - [`login`]: `GET/POST /login`, `POST /logout`; sessions in an HttpOnly cookie
//! - [`dashboard`]: `GET /` (a tile per asset, the open alarms with an acknowledge form),
//!   and `GET /dashboard/live` (the same two parts, polled by the page's script)
//! - [`ack`]: `POST /alarms/{id}/ack`, the acknowledge form
//! - [`sensor`]: `GET /sensors/{id}`, a sensor's history chart with its thresholds and
//!   excursions
//! - [`history`]: `GET /alarms/history`, every alarm of a period: who acknowledged it,
//!   when, how and with which comment
//! - [`deviations`]: the open deviations and the form that closes one with a signed
//!   corrective action
//! - [`reviews`]: `GET /reviews`, periodic reviews with their reports and signing form
//! - [`indicators`]: `GET /quality`, the alarm system's own performance per month and
//!   asset (the figures of `cryowatch quality`)
//! - [`assets`]: `GET /assets/app.css` and `/assets/app.js`, compiled into the binary
//!
//! Pages are written with maud's `html!` macro: checked when compiling, and every value
//! put into a page is HTML-escaped; the one piece of markup taken as it is, the sensor
//! page's chart, is drawn by the report renderer, which escapes its labels itself.
//!
//! Nothing is loaded from another server (facility networks are often closed): the CSS
//! and the script come from this binary, charts are inline SVG. A page asked for
//! without a session redirects to `/login`. Forms sent with a session carry its CSRF
//! token; the sign-in form, before there is a session, is protected by a double-submit
//! cookie and by refusing another site's `Origin`. Acknowledgements go through the
//! same request queue as the JSON API and the command line, recorded with the path
//! `web`.

pub mod ack;
pub mod alarm_checks;
pub mod assets;
pub mod dashboard;
pub mod deviations;
pub mod guard;
pub mod history;
pub mod indicators;
pub mod login;
pub mod reviews;
pub mod sensor;
#[cfg(test)]
pub(crate) mod testkit;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use super::ApiState;
use super::auth::Principal;
use crate::config::{Config, Role};
use crate::model::TimestampMs;

pub use super::auth::SESSION_TTL_MS;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard/live", get(dashboard::live))
        .route("/alarms/{id}/ack", post(ack::acknowledge))
        .route("/alarms/{id}/close", post(deviations::close))
        .route("/alarms/history", get(history::page))
        .route("/reviews", get(reviews::page))
        .route("/quality", get(indicators::page))
        .route("/reviews/{id}/report.pdf", get(reviews::report))
        .route("/reviews/{id}/sign", post(reviews::sign))
        .route("/sensors/{id}", get(sensor::page))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/assets/{name}", get(assets::serve))
}

/// 303 to the sign-in page, coming back to `next` afterwards.
pub fn to_login(next: &str) -> Response {
    if next == "/" || !login::local_path(next) {
        return Redirect::to("/login").into_response();
    }
    Redirect::to(&format!("/login?next={}", percent(next))).into_response()
}

/// Percent-encodes everything but unreserved characters and `/`.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which link of the navigation bar is the current page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nav {
    Dashboard,
    History,
    Reviews,
    Quality,
    Other,
}

/// A whole page: the navigation bar (with the signed-in user and a sign-out button when
/// `who` is set), then `body`, with the headers of [`secure_headers`].
pub fn page(
    st: &ApiState,
    status: StatusCode,
    title: &str,
    who: Option<&Principal>,
    nav: Nav,
    body: Markup,
) -> Response {
    let html = layout(&st.config, title, who, nav, body);
    (status, secure_headers(), Html(html.into_string())).into_response()
}

/// The markup of [`page`].
fn layout(cfg: &Config, title: &str, who: Option<&Principal>, nav: Nav, body: Markup) -> Markup {
    let site = cfg.site.name.as_str();
    let current = |here: Nav| (nav == here).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · " (site) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/" { (site) small { "cryowatch" } }
                    @if let Some(p) = who {
                        nav {
                            a href="/" aria-current=[current(Nav::Dashboard)] { "Dashboard" }
                            a href="/alarms/history" aria-current=[current(Nav::History)] { "Alarm history" }
                            a href="/reviews" aria-current=[current(Nav::Reviews)] { "Reviews" }
                            a href="/quality" aria-current=[current(Nav::Quality)] { "Quality" }
                        }
                        div class="who" {
                            span { (p.actor.strip_prefix("user:").unwrap_or(&p.actor)) " · " (p.role.as_str()) }
                            form method="post" action="/logout" {
                                (csrf_field(p))
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Headers of every page: not cached, not framed, only this server's script and style.
pub fn secure_headers() -> [(header::HeaderName, HeaderValue); 6] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (
            header::HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        ),
    ]
}

/// The hidden form field carrying the session's CSRF token (empty for token callers,
/// who need none).
pub fn csrf_field(who: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf.as_deref().unwrap_or("")); }
}

/// The fields that sign a form (see [`crate::api::sign`]): the user name, needed at the
/// session's first signature, and the password, which a form that only signs
/// (`required`) cannot go without.
pub fn signature_fields(legend: &str, required: bool) -> Markup {
    html! {
        fieldset {
            legend { (legend) }
            label { "User name (at your first signature since you signed in) "
                input type="text" name="username" autocomplete="username";
            }
            label { "Password " input type="password" name="password" required[required] autocomplete="current-password"; }
        }
    }
}

/// A page saying why a request was refused, with a way back.
pub fn refusal(st: &ApiState, status: StatusCode, who: Option<&Principal>, title: &str, text: &str) -> Response {
    page(st, status, title, who, Nav::Other, refusal_body(title, text))
}

/// The markup of [`refusal`]'s page body.
fn refusal_body(title: &str, text: &str) -> Markup {
    html! {
        h1 { (title) }
        p class="notice bad" { (text) }
        p { a href="/" { "Back to the dashboard" } }
    }
}

/// The period of a page's `from` and `to` fields (RFC 3339, relative, a date at the
/// site's midnight, or `now`; empty or absent: the defaults), or what to tell the person
/// on a 400 page: which is not understood, or that `from` is not before `to`.
pub fn period(
    cfg: &Config,
    q: &std::collections::HashMap<String, String>,
    default_from: TimestampMs,
    default_to: TimestampMs,
) -> Result<(TimestampMs, TimestampMs), String> {
    let now = crate::model::now_ms();
    let tz = &cfg.site.timezone;
    let time = |key: &str, default: TimestampMs| match q.get(key).map(String::as_str).filter(|v| !v.is_empty()) {
        Some(text) => crate::timearg::parse_in(text, now, tz).map_err(|e| format!("{key}: {e}")),
        None => Ok(default),
    };
    match (time("from", default_from)?, time("to", default_to)?) {
        (f, t) if f < t => Ok((f, t)),
        _ => Err("from must be before to".into()),
    }
}

/// The 400 page of a period [`period`] did not understand.
pub fn bad_period(st: &ApiState, who: &Principal, why: &str) -> Response {
    refusal(st, StatusCode::BAD_REQUEST, Some(who), "Period not understood", why)
}

/// The page for a store failure: logged, and the person told to try again.
pub fn failure(st: &ApiState, who: Option<&Principal>, e: &super::ApiError) -> Response {
    tracing::error!(error = %e, "web page failed");
    refusal(
        st,
        StatusCode::INTERNAL_SERVER_ERROR,
        who,
        "Try again",
        "The monitoring record cannot be reached right now. Try again in a minute; to acknowledge an alarm \
         meanwhile, reply to the SMS page or run `cryowatch ack` on the monitoring server.",
    )
}

/// The 403 page when `who` lacks `role`; `None` when allowed.
pub fn forbidden(st: &ApiState, who: &Principal, role: Role) -> Option<Response> {
    who.require(role).err().map(|_| {
        refusal(
            st,
            StatusCode::FORBIDDEN,
            Some(who),
            "Not allowed",
            &format!(
                "This needs the {} role; you are signed in as {}. Nothing was changed.",
                role.as_str(),
                who.role.as_str()
            ),
        )
    })
}

/// `ms` as local time of the site, e.g. `2026-11-23 14:05:09 CET`.
pub fn local_time(cfg: &Config, ms: TimestampMs) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned(cfg.site.timezone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// How long ago, for people: `8 s`, `4 min`, `3 h`, `2 d`.
pub fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} d", (s + 43_200) / 86_400),
    }
}

/// An alarm's asset as people call it and its sensor's unit symbol.
pub fn alarm_labels<'a>(cfg: &'a Config, a: &'a crate::store::alarms::AlarmRow) -> (&'a str, &'a str) {
    let unit = cfg
        .sensors
        .iter()
        .find(|s| s.id == a.sensor)
        .map_or("", |s| crate::model::unit_symbol(&s.unit));
    (super::ack::asset_name(cfg, a), unit)
}

/// A value with as many decimals as a display needs.
pub fn number(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Whether the request reached us over TLS: directly, or through a proxy that says so.
pub fn over_tls(st: &ApiState, headers: &HeaderMap) -> bool {
    let public_https = st
        .config
        .sections
        .api_public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https:"));
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        || headers
            .get(header::FORWARDED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    public_https || forwarded
}

#[cfg(test)]
mod tests {
    use super::testkit::{assert_escaped, hostile};
    use super::*;

    #[test]
    fn the_frame_and_refusal_pages_escape_what_they_show() {
        let cfg = testkit::config();
        let who = Principal {
            actor: format!("user:{}", hostile("user-name")),
            role: Role::Operator,
            csrf: Some(hostile("csrf")),
        };
        // A refusal shows the engine's or the store's words, and a sensor page's title is
        // the sensor id from the address.
        let body = refusal_body(&hostile("title"), &hostile("error-message"));
        let html = layout(&cfg, &hostile("title"), Some(&who), Nav::Dashboard, body).into_string();
        assert_escaped(&html, &["site-name", "user-name", "csrf", "title", "error-message"]);
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"), "{html}");
        assert!(html.contains("<a href=\"/\" aria-current=\"page\">Dashboard</a><a href=\"/alarms/history\">"));
        assert!(
            html.contains("<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"&lt;")
        );
        let signed_out = layout(&cfg, "Sign in", None, Nav::Other, html! {}).into_string();
        assert!(
            !signed_out.contains("<nav>") && !signed_out.contains("/logout"),
            "{signed_out}"
        );
    }

    #[test]
    fn ages_are_rounded_to_the_unit_people_read() {
        assert_eq!(age(-5), "0 s");
        assert_eq!(age(8_400), "8 s");
        assert_eq!(age(89_000), "89 s");
        assert_eq!(age(4 * 60_000), "4 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(49 * 3_600_000), "2 d");
    }

    #[test]
    fn next_pages_are_percent_encoded() {
        assert_eq!(
            percent("/sensors/dewar-1.temp?from=-6h"),
            "/sensors/dewar-1.temp%3Ffrom%3D-6h"
        );
    }
}
