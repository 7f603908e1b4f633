//! `POST /api/v1/alarms/{id}/close`: a corrective action that closes a cleared
//! excursion, signed by the signed-in person (see [`crate::store::quality`]).
//!
//! Only a web session can sign: a token is not a person (21 CFR 11.100), so token
//! callers are refused (403). The first signature of a session needs both components,
//! the user name and the password; later ones in the same session the password
//! (11.200(a)(1)). Sessions end after `[api] idle_timeout` of inactivity. A wrong
//! password signs nothing and is audited (401).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::auth::{Principal, SESSION_COOKIE, cookie};
use super::v1::error;
use crate::config::Role;
use crate::model::now_ms;
use crate::pipeline::control::checked_text;
use crate::store::quality::{Closing, Impact, NotSigned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    reason: String,
    action: String,
    #[serde(default)]
    impact: Option<String>,
    #[serde(default)]
    comment: String,
    /// Required at the first signature of a session: the signed-in user's name.
    #[serde(default)]
    username: Option<String>,
    password: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /api/v1/alarms/{id}/close`.
pub async fn close(
    State(st): State<ApiState>,
    who: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<CloseBody>, JsonRejection>,
) -> Response {
    if let Err(e) = who.require(Role::Operator) {
        return e.into_response();
    }
    let (Some(user), Some(session)) = (
        who.actor.strip_prefix("user:").map(str::to_string),
        cookie(&headers, SESSION_COOKIE).map(str::to_string),
    ) else {
        return error(
            StatusCode::FORBIDDEN,
            "a corrective action is signed by a person: sign in to the dashboard (a token cannot sign)",
        );
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), format!("body: {}", e.body_text())),
    };
    let header = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if let Err(e) = who.check_csrf(body.csrf.as_deref().or(header)) {
        return e.into_response();
    }
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no alarm {id:?}"));
    };
    let Some(reason) = st.config.reasons.iter().find(|r| r.code == body.reason).cloned() else {
        let known: Vec<&str> = st.config.reasons.iter().map(|r| r.code.as_str()).collect();
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "reason: unknown code {:?}; expected one of [{}]",
                body.reason,
                known.join(", ")
            ),
        );
    };
    let Some(impact) = Impact::parse(body.impact.as_deref().unwrap_or("none")) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("impact: expected one of {}", Impact::ALL.join(", ")),
        );
    };
    for (field, text) in [("action", &body.action), ("comment", &body.comment)] {
        if let Err(e) = checked_text(text) {
            return error(StatusCode::BAD_REQUEST, format!("{field}: {e}"));
        }
    }
    if body.action.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "action: say what was done");
    }
    if reason.requires_comment && body.comment.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("comment: reason {:?} requires a comment", reason.code),
        );
    }
    let cookie_value = session.clone();
    let signed_before = match st.with_store(move |s| s.session_signed(&cookie_value)).await {
        Ok(b) => b,
        Err(e) => return super::v1::internal(e),
    };
    if !signed_before && body.username.as_deref() != Some(user.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "the first signature of a session needs your user name and your password",
        );
    }
    // The password is checked outside the store's lock (Argon2 is slow on purpose).
    let name = user.clone();
    let stored = match st.with_store(move |s| s.user_hash(&name)).await {
        Ok(h) => h,
        Err(e) => return super::v1::internal(e),
    };
    let password = body.password.clone();
    let matches = tokio::task::spawn_blocking(move || {
        crate::store::users::verify_password(stored.as_ref().map(|(h, _)| h.as_str()), &password) && stored.is_some()
    })
    .await
    .unwrap_or(false);
    let subject = format!("alarm {id}");
    let outcome = st
        .with_store(move |s| {
            let now = now_ms();
            if !matches {
                s.refuse_signature(&user, &subject, now)?;
                return Ok(Err(NotSigned::WrongPassword.to_string()));
            }
            let signer = match s.verified_signer(&user)? {
                Ok(signer) => signer,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let closing = Closing {
                alarm: id,
                reason: &reason,
                action: body.action.trim(),
                impact,
                comment: body.comment.trim(),
            };
            let done = s.close_alarm(&signer, &closing, now)?;
            if done.is_ok() {
                s.mark_session_signed(&session, now)?;
            }
            Ok(Ok(done))
        })
        .await;
    match outcome {
        Err(e) => super::v1::internal(e),
        Ok(Err(not_signed)) => {
            let status = if not_signed == NotSigned::WrongPassword.to_string() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            error(status, not_signed)
        }
        Ok(Ok(Err(refused))) => {
            let status = match refused {
                crate::store::quality::Refused::NoSuchAlarm(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            error(status, format!("{refused}; nothing was recorded"))
        }
        Ok(Ok(Ok(done))) => (StatusCode::OK, Json(done)).into_response(),
    }
}
