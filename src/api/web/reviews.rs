//! Periodic reviews on the dashboard ([`crate::review`]):
//!
//! - `GET /reviews`: each period's review, newest first, with its status, due time,
//!   signatures and report, and a signing form for an operator;
//! - `GET /reviews/{id}/report.pdf`: the report exactly as it was generated (the bytes
//!   its SHA-256 and its signatures cover);
//! - `POST /reviews/{id}/sign` (form fields `meaning`, `username`, `password`, `csrf`):
//!   signed as [`crate::api::sign`] signs (user name and password at the session's
//!   first signature, the password after). A report whose period's record has changed
//!   since it was generated is not signed: the next version is generated and the page
//!   says so.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, csrf_field, local_time, refusal, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::api::sign::person_and_session;
use crate::config::{Config, Role};
use crate::model::{TimestampMs, now_ms};
use crate::review::SignError;
use crate::store::Store;
use crate::store::quality::Meaning;
use crate::store::quality::review::Review;

/// Most reviews on the page.
const MAX_ROWS: usize = 200;

/// `GET /reviews`.
pub async fn page(State(st): State<ApiState>, who: Option<Principal>) -> Response {
    let Some(who) = who else {
        return to_login("/reviews");
    };
    let rows = match st.with_store(|s| s.reviews(None, MAX_ROWS)).await {
        Ok(r) => r,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let body = render(&st.config, &who, &rows, now_ms());
    super::page(&st, StatusCode::OK, "Reviews", Some(&who), Nav::Reviews, body)
}

fn render(cfg: &Config, who: &Principal, rows: &[Review], now: TimestampMs) -> Markup {
    let can_sign = who.role >= Role::Operator && who.actor.starts_with("user:");
    html! {
        h1 { "Periodic reviews" }
        @if cfg.quality.reviews.is_empty() && rows.is_empty() {
            p class="none" { "No periodic review is configured ([[review]])." }
        } @else if rows.is_empty() {
            p class="none" { "No period has ended with readings to review yet." }
        }
        @for r in rows {
            article class={ "review" @if r.overdue(now) { " is-overdue" } } id={ "review-" (r.id) } {
                h2 { (asset_name(cfg, &r.asset)) " · " (r.period) }
                p class="facts" {
                    (r.every) " review, version " (r.version) " · generated " (local_time(cfg, r.generated_at))
                    " · due " (local_time(cfg, r.due_at))
                }
                p class="status" {
                    strong { (r.status) }
                    @if r.overdue(now) { " — overdue" }
                }
                p class="hash" { "Report SHA-256 " code { (r.report_sha256) } }
                p { a href={ "/reviews/" (r.id) "/report.pdf" } { "Read the report (PDF)" } }
                @if !r.signatures.is_empty() {
                    ul class="signatures" {
                        @for s in &r.signatures {
                            li { (s.meaning) " by " (s.printed_name) " (" (s.user) ") at " (local_time(cfg, s.t)) }
                        }
                    }
                }
                @if can_sign && r.status != "approved" {
                    (form(who, r))
                }
            }
        }
    }
}

/// The dashboard's line about reviews that wait for a signature (nothing when none do).
pub fn notice(unsigned: &[Review], now: TimestampMs) -> Markup {
    let overdue = unsigned.iter().filter(|r| r.overdue(now)).count();
    html! {
        @if !unsigned.is_empty() {
            p class={ "notice" @if overdue > 0 { " bad" } } id="reviews-notice" {
                (unsigned.len()) " periodic review(s) await a signature"
                @if overdue > 0 { ", " (overdue) " overdue" }
                ": " a href="/reviews" { "Reviews" }
            }
        }
    }
}

fn asset_name<'a>(cfg: &'a Config, id: &'a str) -> &'a str {
    cfg.assets.iter().find(|a| a.id == id).map_or(id, |a| a.name.as_str())
}

fn form(who: &Principal, r: &Review) -> Markup {
    html! {
        form method="post" action={ "/reviews/" (r.id) "/sign" } class="sign" {
            (csrf_field(who))
            label { "Meaning "
                select name="meaning" {
                    option value="reviewed" { "reviewed" }
                    option value="approved" { "approved" }
                }
            }
            (super::signature_fields("Signature", true))
            button type="submit" { "Sign the review of " (r.asset) " for " (r.period) }
        }
    }
}

/// `GET /reviews/{id}/report.pdf`.
pub async fn report(State(st): State<ApiState>, who: Option<Principal>, Path(id): Path<String>) -> Response {
    let Some(who) = who else {
        return to_login("/reviews");
    };
    let Ok(id) = id.parse::<i64>() else {
        return refusal(
            &st,
            StatusCode::NOT_FOUND,
            Some(&who),
            "No such review",
            "No such review.",
        );
    };
    match st.with_store(move |s| s.review_report(id)).await {
        Ok(Some(pdf)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"review-{id}.pdf\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            pdf,
        )
            .into_response(),
        Ok(None) => refusal(
            &st,
            StatusCode::NOT_FOUND,
            Some(&who),
            "No such review",
            "No such review.",
        ),
        Err(e) => super::failure(&st, Some(&who), &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignForm {
    meaning: String,
    #[serde(default)]
    username: String,
    password: String,
    csrf: Option<String>,
}

/// `POST /reviews/{id}/sign`: a signed-in operator, with the session's CSRF token.
pub async fn sign(
    State(st): State<ApiState>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<SignForm>, FormRejection>,
) -> Response {
    let Some(who) = who else {
        return to_login("/reviews");
    };
    if let Some(r) = super::forbidden(&st, &who, Role::Operator) {
        return r;
    }
    let refused = |status, text: &str| refusal(&st, status, Some(&who), "Not signed", text);
    let Some((user, session)) = person_and_session(&who, &headers) else {
        return refused(StatusCode::FORBIDDEN, "Only a signed-in person can sign.");
    };
    let Ok(Form(f)) = form else {
        return refused(StatusCode::BAD_REQUEST, "Form not understood. Nothing was signed.");
    };
    if who.check_csrf(f.csrf.as_deref()).is_err() {
        return refused(
            StatusCode::FORBIDDEN,
            "The form carried no valid token (it may be from an old page). Nothing was signed; reload the page.",
        );
    }
    let meaning = match f.meaning.as_str() {
        "reviewed" => Meaning::Reviewed,
        "approved" => Meaning::Approved,
        _ => return refused(StatusCode::BAD_REQUEST, "A review is signed as reviewed or approved."),
    };
    let Ok(id) = id.parse::<i64>() else {
        return refused(StatusCode::NOT_FOUND, "No such review. Nothing was signed.");
    };
    let review = match st.with_store(move |s| s.review_by_id(id)).await {
        Ok(Some(r)) => r,
        Ok(None) => return refused(StatusCode::NOT_FOUND, "No such review. Nothing was signed."),
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let username = Some(f.username.trim()).filter(|u| !u.is_empty());
    let signer = match crate::api::sign::signer(&st, user, &session, username, f.password, review.subject()).await {
        Ok(s) => s,
        Err((status, text)) => return refused(status, &text),
    };
    // Gathering the period again takes a while: on a connection of its own, not the
    // one the dashboard's pages share.
    let cfg = st.config.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&cfg.store.path).map_err(SignError::Store)?;
        let now = now_ms();
        let what = crate::review::Signing {
            asset: &review.asset,
            period: &review.period,
            // The version on the page the person read, not whatever is newest now.
            version: Some(review.version),
            meaning,
        };
        let done = crate::review::sign(&cfg, &mut store, &signer, what, now)?;
        // Signed and committed: a session not marked only asks for the user name again.
        if let Err(e) = store.mark_session_signed(&session, now) {
            tracing::error!(error = %e, "a review was signed, but its session is not marked as having signed");
        }
        Ok::<_, SignError>(done)
    })
    .await;
    match outcome {
        Ok(Ok(done)) => Redirect::to(&format!("/reviews?signed={}#review-{}", done.id, done.id)).into_response(),
        Ok(Err(SignError::Refused(e))) => refused(StatusCode::CONFLICT, &format!("{e}; nothing was signed.")),
        Ok(Err(e @ SignError::Changed(_))) => refused(StatusCode::CONFLICT, &format!("{e}; nothing was signed.")),
        Ok(Err(e)) => {
            tracing::error!(error = %e, review = id, "signing a review failed");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; nothing was signed.")
        }
        Err(e) => {
            tracing::error!(error = %e, review = id, "signing a review failed");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; nothing was signed.")
        }
    }
}
