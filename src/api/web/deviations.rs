//! Open deviations on the dashboard: each cleared excursion that waits for its signed
//! corrective action, with the form that closes it (`POST /alarms/{id}/close`, signed
//! as [`crate::api::close`] signs: user name and password at the session's first
//! signature, the password after).
//!
//! The section sits outside the dashboard's live part, so a form being filled in is
//! not replaced by the refresh.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{csrf_field, local_time, refusal, signature_fields, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::api::close::{Fields, sign_and_close};
use crate::api::sign::person_and_session;
use crate::config::{Config, Role};
use crate::store::alarms::AlarmRow;
use crate::store::quality::Impact;

/// The section listing `rows`, with a closing form each for an operator.
pub fn section(cfg: &Config, who: &Principal, rows: &[AlarmRow]) -> Markup {
    let can_sign = who.role >= Role::Operator && who.actor.starts_with("user:");
    html! {
        section id="deviations" class="alarms" aria-label="Open deviations" {
            h2 { "Open deviations " span class="count" { (rows.len()) } }
            @if rows.is_empty() {
                p class="none" { "Every excursion is closed with a signed corrective action." }
            }
            @for a in rows {
                article class="alarm is-cleared" id={ "deviation-" (a.id) } {
                    h3 { "Alarm " (a.id) " · " (a.rule) " · " (a.sensor) }
                    p class="facts" {
                        "raised " (local_time(cfg, a.raised_at))
                        @if let Some(t) = a.cleared_at { " · cleared " (local_time(cfg, t)) }
                        @if let Some(by) = &a.acked_by { " · acknowledged by " (by) }
                    }
                    @if can_sign {
                        (form(cfg, who, a.id))
                    }
                }
            }
        }
    }
}

fn form(cfg: &Config, who: &Principal, id: i64) -> Markup {
    html! {
        form method="post" action={ "/alarms/" (id) "/close" } class="close" {
            (csrf_field(who))
            label { "Reason "
                select name="reason" required {
                    @for r in &cfg.reasons {
                        option value=(r.code) { (r.code) " — " (r.text) @if r.requires_comment { " (comment required)" } }
                    }
                }
            }
            label { "Action taken " input type="text" name="action" required maxlength="4000"; }
            label { "Stored product "
                select name="impact" {
                    @for i in Impact::ALL { option value=(i) { (i) } }
                }
            }
            label { "Comment " textarea name="comment" maxlength="4000" {} }
            (signature_fields("Signature: corrective action", true))
            button type="submit" { "Sign and close alarm " (id) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CloseForm {
    reason: String,
    action: String,
    impact: Option<String>,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    username: String,
    password: String,
    csrf: Option<String>,
}

/// `POST /alarms/{id}/close`: a signed-in operator, with the session's CSRF token.
pub async fn close(
    State(st): State<ApiState>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CloseForm>, FormRejection>,
) -> Response {
    let Some(who) = who else {
        return to_login("/");
    };
    if let Some(r) = super::forbidden(&st, &who, Role::Operator) {
        return r;
    }
    let refused = |status, text: &str| refusal(&st, status, Some(&who), "Not closed", text);
    let Some((user, session)) = person_and_session(&who, &headers) else {
        return refused(StatusCode::FORBIDDEN, "Only a signed-in person can sign.");
    };
    let Ok(Form(f)) = form else {
        return refused(StatusCode::BAD_REQUEST, "Form not understood. Nothing was recorded.");
    };
    if who.check_csrf(f.csrf.as_deref()).is_err() {
        return refused(
            StatusCode::FORBIDDEN,
            "The form carried no valid token (it may be from an old page). Nothing was recorded; reload the dashboard.",
        );
    }
    let Ok(id) = id.parse::<i64>() else {
        return refused(StatusCode::NOT_FOUND, "No such alarm. Nothing was recorded.");
    };
    let fields = Fields {
        reason: f.reason,
        action: f.action,
        impact: f.impact,
        comment: f.comment,
        username: Some(f.username.trim().to_string()).filter(|u| !u.is_empty()),
        password: f.password,
    };
    match sign_and_close(&st, user, session, id, fields).await {
        Ok(_) => Redirect::to(&format!("/?closed={id}#deviations")).into_response(),
        Err((status, text)) => refused(status, &text),
    }
}
