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
//!
//! The pages are written with maud's `html!` macro, which escapes every value put into
//! them: alarm, asset and contact names, comments and the engine's words alike.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::config::Config;
use crate::config::notify::Contact;
use crate::model::site_time;
use crate::model::{TimestampMs, format_rfc3339, now_ms};
use crate::notify::acklink::{self, LinkClaims, LinkError};
use crate::store::acklinks::LinkUse;
use crate::store::alarms::AlarmRow;

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
            let alarm = s.alarm(id)?;
            Ok::<_, crate::store::StoreError>((alarm, s.ack_link_used_at(&nonce)?))
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
            html! { p class="bad" { "Alarm " (id) " is not in this cryowatch's record. Nothing was changed." } },
        );
    };
    let body = shown(&st.config, &alarm, &contact, used, claims.expires_ms);
    page(&st.config, StatusCode::OK, &title(&st.config, &alarm), body)
}

/// The body of the page a link opens: the alarm, then the form when the link is unused
/// and the alarm active (else why there is nothing to do).
fn shown(cfg: &Config, alarm: &AlarmRow, contact: &Contact, used: Option<TimestampMs>, expires: TimestampMs) -> Markup {
    html! {
        (summary(cfg, alarm))
        @if let Some(t) = used {
            p class="bad" { "This link was already used at " (site_time(t, &cfg.site.timezone)) ". A link works once." }
        } @else if alarm.state == crate::model::AlarmState::Active {
            (form(cfg, alarm, contact, expires))
        } @else {
            p class="ok" { "Nothing to do: alarm " (alarm.id) " is " (alarm.state.as_str()) "." }
        }
    }
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
                html! {
                    p class="bad" {
                        "The form could not be read (" (e.body_text()) "). Nothing was changed; open the link again."
                    }
                },
            );
        }
    };
    if comment.chars().count() > MAX_COMMENT {
        return page(
            &st.config,
            StatusCode::BAD_REQUEST,
            "Comment too long",
            html! {
                p class="bad" {
                    "The comment is longer than " (MAX_COMMENT) " characters. Nothing was changed; go back and shorten it."
                }
            },
        );
    }
    let args = json!({"alarm": claims.alarm, "by": contact.name, "comment": comment, "path": "link"});
    let (nonce, alarm, who) = (claims.nonce.clone(), claims.alarm, claims.contact.clone());
    let burned = st
        .with_store(move |s| s.use_ack_link(&nonce, alarm, &who, &args, now))
        .await;
    let request = match burned {
        Ok(LinkUse::Queued(id)) => id,
        Ok(LinkUse::UsedAt(t)) => {
            tracing::warn!(alarm_id = claims.alarm, contact = %claims.contact, "an acknowledgement link was submitted again");
            let now = current(&st, claims.alarm).await;
            let body = html! {
                p class="bad" {
                    "This link was already used at " (site_time(t, &st.config.site.timezone))
                    ". A link works once; nothing was changed."
                }
                (now)
            };
            return page(&st.config, StatusCode::CONFLICT, "Link already used", body);
        }
        Err(e) => return failure(&st, &e),
    };
    tracing::info!(alarm_id = claims.alarm, contact = %claims.contact, request, "acknowledgement by email link queued");
    let answer = match wait_answer(&st, request).await {
        Ok(a) => a,
        Err(e) => return failure(&st, &e),
    };
    let (status, title, said) = answered(request, answer);
    let now = current(&st, claims.alarm).await;
    page(&st.config, status, title, html! { (said) (now) })
}

/// The status, title and words of the page after a submitted form: the engine's
/// `answer` to `request` (`None`: no answer in time).
fn answered(request: i64, answer: Option<(bool, String)>) -> (StatusCode, &'static str, Markup) {
    match answer {
        Some((true, text)) => (StatusCode::OK, "Acknowledged", html! { p class="ok" { (text) "." } }),
        Some((false, text)) => (
            StatusCode::CONFLICT,
            "Not acknowledged",
            html! { p class="bad" { "Not acknowledged: " (text) "." } },
        ),
        None => (
            StatusCode::ACCEPTED,
            "Acknowledgement queued",
            html! {
                p class="bad" {
                    "Your acknowledgement is recorded as request " (request) ", but the monitoring daemon has not \
                     answered within " (ANSWER_WAIT.as_secs()) " s. It will be carried out when the daemon runs \
                     again; until then pages may continue."
                }
            },
        ),
    }
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
        let answer = st.with_store(move |s| s.request_answer(request)).await?;
        if answer.is_some() || Instant::now() >= deadline {
            return Ok(answer);
        }
        tokio::time::sleep(ANSWER_POLL).await;
    }
}

/// The alarm as it is now, for the answer pages (empty when it cannot be read).
async fn current(st: &ApiState, id: i64) -> Markup {
    match st.with_store(move |s| s.alarm(id)).await {
        Ok(row) => row.map_or_else(|| html! {}, |a| summary(&st.config, &a)),
        Err(e) => {
            tracing::error!(error = %e, alarm_id = id, "cannot read the alarm for the acknowledgement page");
            html! {}
        }
    }
}

fn refused(cfg: &Config, r: &Refusal) -> Response {
    let why = match r {
        Refusal::Link(e) => format!("This acknowledgement link cannot be used: {e}."),
        Refusal::Contact => "This link was sent to a contact who is no longer in the configuration.".to_string(),
    };
    page(cfg, StatusCode::FORBIDDEN, "Link not valid", refusal_body(&why))
}

/// Why a link cannot be used, and the other ways to acknowledge.
fn refusal_body(why: &str) -> Markup {
    html! {
        p class="bad" { (why) " Nothing was changed." }
        p {
            "Use the link in the newest page you received, reply to the SMS page with " b { "ACK" }
            " and the alarm number, or run " code { "cryowatch ack" } " on the monitoring server."
        }
    }
}

fn failure(st: &ApiState, e: &ApiError) -> Response {
    tracing::error!(error = %e, "acknowledgement page failed");
    let body = html! {
        p class="bad" {
            "The monitoring record cannot be reached right now. Try again in a minute, or acknowledge by SMS \
             reply or with " code { "cryowatch ack" } "."
        }
    };
    page(&st.config, StatusCode::INTERNAL_SERVER_ERROR, "Try again", body)
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
fn summary(cfg: &Config, a: &AlarmRow) -> Markup {
    let tz = &cfg.site.timezone;
    let when = |t: TimestampMs| html! { (site_time(t, tz)) " " span class="small" { "(" (format_rfc3339(t)) ")" } };
    let asset = cfg.assets.iter().find(|x| x.id == a.asset);
    let location = asset.map(|x| x.location.as_str()).filter(|l| !l.is_empty());
    let unit = cfg
        .sensors
        .iter()
        .find(|s| s.id == a.sensor)
        .map_or("", |s| s.unit.as_str());
    let sev_class = match a.severity.as_str() {
        "critical" | "alarm" => "sev-alarm",
        _ => "sev-warning",
    };
    html! {
        dl {
            dt { "Alarm" } dd { (a.id) }
            dt { "Unit" }
            dd {
                (asset_name(cfg, a))
                @if let Some(l) = location { " (" (l) ")" }
            }
            dt { "Sensor" } dd { (a.sensor) }
            @if let Some(v) = a.value {
                dt { "Value" } dd { (format!("{v:.1}")) " " (unit) }
            }
            dt { "Severity" } dd { span class=(sev_class) { (a.severity.as_str()) } }
            dt { "State" }
            dd {
                (a.state.as_str())
                @if let Some(s) = &a.suppressed { " (suppressed: " (s) ")" }
            }
            dt { "Raised" } dd { (when(a.raised_at)) }
            @if let Some(by) = &a.acked_by {
                dt { "Acknowledged" }
                dd {
                    (by)
                    @if let Some(t) = a.acked_at { ", " (when(t)) }
                    @if let Some(p) = &a.ack_path { ", by " (p) }
                }
                @if let Some(c) = a.ack_comment.as_deref().filter(|c| !c.is_empty()) {
                    dt { "Comment" } dd { (c) }
                }
            }
            @if let Some(t) = a.cleared_at {
                dt { "Cleared" } dd { (when(t)) }
            }
        }
    }
}

fn form(cfg: &Config, a: &AlarmRow, contact: &Contact, expires: TimestampMs) -> Markup {
    let name = contact.name.as_str();
    html! {
        form method="post" {
            label for="comment" { "Comment for the record: what you found, what you did or will do" }
            textarea id="comment" name="comment" rows="4" maxlength=(MAX_COMMENT) {}
            button type="submit" { "Acknowledge alarm " (a.id) " as " (name) }
        }
        p class="small" {
            "Acknowledging stops further pages for this alarm. It is recorded with your name, the time, your \
             comment and that it came through this link. This link is for " (name) " only, works once, and is \
             valid until " (site_time(expires, &cfg.site.timezone)) "."
        }
    }
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
fn page(cfg: &Config, status: StatusCode, title: &str, body: Markup) -> Response {
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
        Html(layout(cfg, title, body).into_string()),
    )
        .into_response()
}

/// The markup of [`page`].
fn layout(cfg: &Config, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · cryowatch" }
                // Safe: CSS is this file's constant, and a style element's text is not
                // HTML (escaping would break a `>` selector, were one added).
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    p class="small" { (cfg.site.name) " · cryowatch" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::web::testkit::{self, assert_escaped, hostile};

    #[test]
    fn html_is_escaped() {
        let cfg = testkit::config();
        let html = layout(&cfg, r#"<script>alert("x&'y")</script>"#, html! { p { "Zoë −196 °C" } }).into_string();
        assert!(
            html.contains("<h1>&lt;script&gt;alert(&quot;x&amp;'y&quot;)&lt;/script&gt;</h1>"),
            "{html}"
        );
        assert!(html.contains("<p>Zoë −196 °C</p>"), "{html}");
    }

    #[test]
    fn every_outside_string_on_the_link_pages_is_escaped() {
        let cfg = testkit::config();
        let contact = Contact {
            id: "alice".into(),
            name: hostile("contact-name"),
            email: None,
            phone: None,
        };
        let now = 1_795_420_800_000;
        // Opening a link: the alarm and the form.
        let active = testkit::alarm(now - 600_000, false);
        let body = shown(&cfg, &active, &contact, None, now + 86_400_000);
        let html = layout(&cfg, &title(&cfg, &active), body).into_string();
        assert_escaped(
            &html,
            &[
                "site-name",
                "asset-name",
                "asset-location",
                "sensor-id",
                "unit",
                "suppressed",
                "contact-name",
            ],
        );
        assert!(html.contains("<form method=\"post\"><label for=\"comment\">"), "{html}");
        // After acknowledging: who, by which path and why.
        let acked = summary(&cfg, &testkit::alarm(now - 600_000, true)).into_string();
        assert_escaped(&acked, &["acked-by", "ack-path", "comment"]);
        // The engine's words and a refused link's reason.
        for answer in [
            Some((true, hostile("engine-answer"))),
            Some((false, hostile("engine-answer"))),
        ] {
            assert_escaped(&answered(1, answer).2.into_string(), &["engine-answer"]);
        }
        assert_escaped(&refusal_body(&hostile("link-error")).into_string(), &["link-error"]);
    }
}
