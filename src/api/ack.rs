//! The pages behind the acknowledgement links of email pages.
//!
//! - `GET /ack/{token}` checks the link and shows the alarm, the person the link was
//!   sent to and a form. It changes nothing: mail scanners and link previews fetch
//!   links, and must not acknowledge.
//! - `POST /ack/{token}` (form field `comment`) checks the link again, records its nonce
//!   as used (a link works once), queues the acknowledgement for the daemon's alarm
//!   engine with the contact's name, the comment and the path `link`, and shows the
//!   engine's answer.
//!
//! A link that is damaged, altered, expired or made with another key gets 403; a used
//! one 409; an acknowledgement the engine refuses (unknown alarm, already acknowledged,
//! cleared) 409 with the engine's words.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::config::Config;
use crate::config::notify::Contact;
use crate::model::site_time;
use crate::model::{TimestampMs, format_rfc3339, now_ms};
use crate::notify::acklink::{self, LinkClaims, LinkError};
use crate::store::acklinks;
use crate::store::alarms::{self, AlarmRow};

/// How long a submitted form waits for the daemon's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
const ANSWER_POLL: Duration = Duration::from_millis(100);
/// Longest comment accepted, in characters.
pub const MAX_COMMENT: usize = crate::pipeline::control::MAX_TEXT;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/ack/{token}", get(show).post(acknowledge))
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
    #[serde(default)]
    pub comment: String,
}

/// `GET`: the alarm and the form; no change.
async fn show(State(st): State<ApiState>, Path(token): Path<String>) -> Response {
    let now = now_ms();
    let (claims, contact) = match check(&st, &token, now) {
        Ok(x) => x,
        Err(r) => return refused(&st.config, &r),
    };
    let id = claims.alarm;
    let nonce = claims.nonce.clone();
    let found = st
        .with_store(move |s| {
            s.with_conn(|c| {
                Ok((
                    alarms::query_alarms(c, false, Some(id))?.pop(),
                    acklinks::used_at(c, &nonce)?,
                ))
            })
        })
        .await;
    let (alarm, used) = match found {
        Ok(x) => x,
        Err(e) => return failure(&st, &e),
    };
    let Some(alarm) = alarm else {
        return page(
            &st.config,
            StatusCode::NOT_FOUND,
            &format!("Alarm {id} not found"),
            &format!("<p class=\"bad\">Alarm {id} is not in this cryowatch's record. Nothing was changed.</p>"),
        );
    };
    let mut html = summary(&st.config, &alarm);
    if let Some(t) = used {
        let _ = write!(
            html,
            "<p class=\"bad\">This link was already used at {}. A link works once.</p>",
            esc(&site_time(t, &st.config.site.timezone))
        );
    } else if alarm.state == crate::model::AlarmState::Active {
        html.push_str(&form(&st.config, &alarm, &contact, claims.expires_ms));
    } else {
        let _ = write!(
            html,
            "<p class=\"ok\">Nothing to do: alarm {} is {}.</p>",
            alarm.id,
            esc(alarm.state.as_str())
        );
    }
    page(&st.config, StatusCode::OK, &title(&st.config, &alarm), &html)
}

/// `POST`: mark the link used, queue the acknowledgement, show the daemon's answer.
async fn acknowledge(
    State(st): State<ApiState>,
    Path(token): Path<String>,
    form: Result<Form<AckForm>, FormRejection>,
) -> Response {
    let now = now_ms();
    let (claims, contact) = match check(&st, &token, now) {
        Ok(x) => x,
        Err(r) => return refused(&st.config, &r),
    };
    let comment = match form {
        Ok(Form(f)) => f.comment.trim().to_string(),
        Err(e) => {
            return page(
                &st.config,
                StatusCode::BAD_REQUEST,
                "Form not understood",
                &format!(
                    "<p class=\"bad\">The form could not be read ({}). Nothing was changed; open the link again.</p>",
                    esc(&e.body_text())
                ),
            );
        }
    };
    if comment.chars().count() > MAX_COMMENT {
        return page(
            &st.config,
            StatusCode::BAD_REQUEST,
            "Comment too long",
            &format!(
                "<p class=\"bad\">The comment is longer than {MAX_COMMENT} characters. Nothing was changed; go back and shorten it.</p>"
            ),
        );
    }
    let args = json!({"alarm": claims.alarm, "by": contact.name, "comment": comment, "path": "link"});
    let (nonce, alarm, who) = (claims.nonce.clone(), claims.alarm, claims.contact.clone());
    let burned = st
        .with_store(move |s| {
            s.transaction(|c| {
                if let Some(t) = acklinks::burn(c, &nonce, now, alarm, &who)? {
                    return Ok(Burn::Used(t));
                }
                Ok(Burn::Queued(alarms::insert_request(c, "ack", &args, now)?))
            })
        })
        .await;
    let request = match burned {
        Ok(Burn::Queued(id)) => id,
        Ok(Burn::Used(t)) => {
            tracing::warn!(alarm_id = claims.alarm, contact = %claims.contact, "an acknowledgement link was submitted again");
            let mut html = format!(
                "<p class=\"bad\">This link was already used at {}. A link works once; nothing was changed.</p>",
                esc(&site_time(t, &st.config.site.timezone))
            );
            html.push_str(&current(&st, claims.alarm).await);
            return page(&st.config, StatusCode::CONFLICT, "Link already used", &html);
        }
        Err(e) => return failure(&st, &e),
    };
    tracing::info!(alarm_id = claims.alarm, contact = %claims.contact, request, "acknowledgement by email link queued");
    let answer = match wait_answer(&st, request).await {
        Ok(a) => a,
        Err(e) => return failure(&st, &e),
    };
    let (status, title, mut html) = match answer {
        Some((true, text)) => (
            StatusCode::OK,
            "Acknowledged",
            format!("<p class=\"ok\">{}.</p>", esc(&text)),
        ),
        Some((false, text)) => (
            StatusCode::CONFLICT,
            "Not acknowledged",
            format!("<p class=\"bad\">Not acknowledged: {}.</p>", esc(&text)),
        ),
        None => (
            StatusCode::ACCEPTED,
            "Acknowledgement queued",
            format!(
                "<p class=\"bad\">Your acknowledgement is recorded as request {request}, but the monitoring \
                 daemon has not answered within {} s. It will be carried out when the daemon runs again; \
                 until then pages may continue.</p>",
                ANSWER_WAIT.as_secs()
            ),
        ),
    };
    html.push_str(&current(&st, claims.alarm).await);
    page(&st.config, status, title, &html)
}

enum Burn {
    Queued(i64),
    Used(TimestampMs),
}

/// Why a link is refused before anything is looked up.
enum Refusal {
    Link(LinkError),
    /// The contact the link names is no longer configured.
    Contact,
}

/// Verifies the token and finds the contact it names.
fn check(st: &ApiState, token: &str, now: TimestampMs) -> Result<(LinkClaims, Contact), Refusal> {
    let claims = acklink::verify(st.key(), token, now).map_err(|e| {
        tracing::warn!(reason = %e, "acknowledgement link refused");
        Refusal::Link(e)
    })?;
    match st.config.notify.contact(&claims.contact) {
        Some(c) => {
            let contact = c.clone();
            Ok((claims, contact))
        }
        None => {
            tracing::warn!(contact = %claims.contact, "acknowledgement link of a contact no longer configured");
            Err(Refusal::Contact)
        }
    }
}

pub(crate) async fn wait_answer(st: &ApiState, request: i64) -> Result<Option<(bool, String)>, ApiError> {
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        let answer = st
            .with_store(move |s| s.with_conn(|c| alarms::request_answer(c, request)))
            .await?;
        if answer.is_some() || Instant::now() >= deadline {
            return Ok(answer);
        }
        tokio::time::sleep(ANSWER_POLL).await;
    }
}

/// The alarm as it is now, for the answer pages (empty when it cannot be read).
async fn current(st: &ApiState, id: i64) -> String {
    match st
        .with_store(move |s| s.with_conn(|c| alarms::query_alarms(c, false, Some(id))))
        .await
    {
        Ok(mut rows) => rows.pop().map(|a| summary(&st.config, &a)).unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, alarm_id = id, "cannot read the alarm for the acknowledgement page");
            String::new()
        }
    }
}

fn refused(cfg: &Config, r: &Refusal) -> Response {
    let why = match r {
        Refusal::Link(e) => format!("This acknowledgement link cannot be used: {}.", esc(&e.to_string())),
        Refusal::Contact => "This link was sent to a contact who is no longer in the configuration.".to_string(),
    };
    let html = format!(
        "<p class=\"bad\">{why} Nothing was changed.</p>\
         <p>Use the link in the newest page you received, reply to the SMS page with <b>ACK</b> and the alarm \
         number, or run <code>cryowatch ack</code> on the monitoring server.</p>"
    );
    page(cfg, StatusCode::FORBIDDEN, "Link not valid", &html)
}

fn failure(st: &ApiState, e: &ApiError) -> Response {
    tracing::error!(error = %e, "acknowledgement page failed");
    page(
        &st.config,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Try again",
        "<p class=\"bad\">The monitoring record cannot be reached right now. Try again in a minute, or \
         acknowledge by SMS reply or with <code>cryowatch ack</code>.</p>",
    )
}

fn title(cfg: &Config, a: &AlarmRow) -> String {
    format!("Alarm {}: {}", a.id, asset_name(cfg, a))
}

pub(crate) fn asset_name<'a>(cfg: &'a Config, a: &'a AlarmRow) -> &'a str {
    cfg.assets
        .iter()
        .find(|x| x.id == a.asset)
        .map_or(a.asset.as_str(), |x| x.name.as_str())
}

/// The alarm as a definition list.
fn summary(cfg: &Config, a: &AlarmRow) -> String {
    let tz = &cfg.site.timezone;
    let when = |t: TimestampMs| {
        format!(
            "{} <span class=\"small\">({})</span>",
            esc(&site_time(t, tz)),
            esc(&format_rfc3339(t))
        )
    };
    let asset = cfg.assets.iter().find(|x| x.id == a.asset);
    let location = asset.map(|x| x.location.as_str()).filter(|l| !l.is_empty());
    let unit = cfg
        .sensors
        .iter()
        .find(|s| s.id == a.sensor)
        .map_or("", |s| s.unit.as_str());
    let mut h = String::from("<dl>");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row("Alarm", a.id.to_string());
    row(
        "Unit",
        match location {
            Some(l) => format!("{} ({})", esc(asset_name(cfg, a)), esc(l)),
            None => esc(asset_name(cfg, a)),
        },
    );
    row("Sensor", esc(&a.sensor));
    if let Some(v) = a.value {
        row("Value", format!("{} {}", esc(&format!("{v:.1}")), esc(unit)));
    }
    let sev_class = match a.severity.as_str() {
        "critical" | "alarm" => "sev-alarm",
        _ => "sev-warning",
    };
    row(
        "Severity",
        format!("<span class=\"{sev_class}\">{}</span>", esc(a.severity.as_str())),
    );
    let mut state = esc(a.state.as_str());
    if let Some(s) = &a.suppressed {
        let _ = write!(state, " (suppressed: {})", esc(s));
    }
    row("State", state);
    row("Raised", when(a.raised_at));
    if let Some(by) = &a.acked_by {
        let mut v = esc(by);
        if let Some(t) = a.acked_at {
            let _ = write!(v, ", {}", when(t));
        }
        if let Some(p) = &a.ack_path {
            let _ = write!(v, ", by {}", esc(p));
        }
        row("Acknowledged", v);
        if let Some(c) = a.ack_comment.as_deref().filter(|c| !c.is_empty()) {
            row("Comment", esc(c));
        }
    }
    if let Some(t) = a.cleared_at {
        row("Cleared", when(t));
    }
    h.push_str("</dl>");
    h
}

fn form(cfg: &Config, a: &AlarmRow, contact: &Contact, expires: TimestampMs) -> String {
    format!(
        "<form method=\"post\">\
         <label for=\"comment\">Comment for the record: what you found, what you did or will do</label>\
         <textarea id=\"comment\" name=\"comment\" rows=\"4\" maxlength=\"{MAX_COMMENT}\"></textarea>\
         <button type=\"submit\">Acknowledge alarm {id} as {name}</button>\
         </form>\
         <p class=\"small\">Acknowledging stops further pages for this alarm. It is recorded with your name, \
         the time, your comment and that it came through this link. This link is for {name} only, works once, \
         and is valid until {until}.</p>",
        id = a.id,
        name = esc(&contact.name),
        until = esc(&site_time(expires, &cfg.site.timezone)),
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:1rem;\
background:#f2f3f5;color:#111;font-size:1.05rem;line-height:1.45}\
main{max-width:36rem;margin:0 auto;background:#fff;border-radius:8px;padding:1rem 1.25rem;\
box-shadow:0 1px 3px rgba(0,0,0,.15)}\
h1{font-size:1.35rem;margin:.2rem 0 .8rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .8rem;margin:0 0 1rem}\
dt{color:#555}dd{margin:0;overflow-wrap:anywhere}\
.sev-alarm{color:#b00020;font-weight:600}.sev-warning{color:#8a5a00;font-weight:600}\
label{display:block;font-weight:600}\
textarea{width:100%;box-sizing:border-box;font:inherit;padding:.5rem;margin:.4rem 0 .8rem}\
button{width:100%;padding:.9rem;font:inherit;font-weight:600;background:#0b5cad;color:#fff;border:0;\
border-radius:6px}\
.ok{border-left:4px solid #1a7f37;padding-left:.7rem}.bad{border-left:4px solid #b00020;padding-left:.7rem}\
.small{font-size:.9rem;color:#555}";

/// A whole page: no external assets, readable on a phone, not cached, not indexed, and
/// the link never leaks through a Referer header.
fn page(cfg: &Config, status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{t} · cryowatch</title><style>{CSS}</style></head>\
         <body><main><p class=\"small\">{site} · cryowatch</p><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        site = esc(&cfg.site.name),
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
        ],
        Html(html),
    )
        .into_response()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    crate::report::render::escape_html(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(esc("Zoë −196 °C"), "Zoë −196 °C");
    }
}
