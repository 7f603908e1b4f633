//! `POST /api/v1/alarms/{id}/close`: a corrective action that closes a cleared
//! excursion, signed by the signed-in person (see [`crate::store::quality`]).
//!
//! Signed as [`super::sign`] signs: only a web session can sign, so token callers are
//! refused (403); the first signature of a session needs the user name and the
//! password, later ones the password. Sessions end after `[api] idle_timeout` of
//! inactivity. A wrong password signs nothing and is audited (401).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::sign::{self, person_and_session};
use super::v1::error;
use crate::config::Role;
use crate::model::now_ms;
use crate::store::quality::{Closing, CorrectiveAction, Refused, check_closing};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    reason: String,
    action: String,
    #[serde(default, deserialize_with = "super::v1::string_if_given")]
    impact: Option<String>,
    #[serde(default)]
    comment: String,
    /// Required at the first signature of a session: the signed-in user's name.
    #[serde(default, deserialize_with = "super::v1::string_if_given")]
    username: Option<String>,
    password: String,
    #[serde(default, deserialize_with = "super::v1::string_if_given")]
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
    let Some((user, session)) = person_and_session(&who, &headers) else {
        return error(
            StatusCode::FORBIDDEN,
            "a corrective action is signed by a person: sign in to the dashboard (a token cannot sign)",
        );
    };
    let body = match super::v1::accept(&who, &headers, body, |b| b.csrf.as_deref()) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no alarm {id:?}"));
    };
    let fields = Fields {
        reason: body.reason,
        action: body.action,
        impact: body.impact,
        comment: body.comment,
        username: body.username,
        password: body.password,
    };
    match sign_and_close(&st, user, session, id, fields).await {
        Ok(done) => (StatusCode::OK, Json(done)).into_response(),
        Err((status, message)) => error(status, message),
    }
}

/// What a person fills in to close an excursion.
pub struct Fields {
    pub reason: String,
    pub action: String,
    pub impact: Option<String>,
    pub comment: String,
    pub username: Option<String>,
    pub password: String,
}

/// Checks `f`, the signer's password (and, at the first signature of the session of
/// cookie `session`, their user name), and closes alarm `id` signed by `user`; the
/// status and words of a refusal otherwise (nothing recorded but a refused signature).
pub async fn sign_and_close(
    st: &ApiState,
    user: String,
    session: String,
    id: i64,
    f: Fields,
) -> Result<CorrectiveAction, (StatusCode, String)> {
    let (reason, impact) = check_closing(
        &st.config.reasons,
        &f.reason,
        &f.action,
        f.impact.as_deref().unwrap_or("none"),
        &f.comment,
    )
    .map(|(r, i)| (r.clone(), i))
    .map_err(|(field, problem)| (StatusCode::BAD_REQUEST, format!("{field}: {problem}")))?;
    let signer = sign::signer(
        st,
        user,
        &session,
        f.username.as_deref(),
        f.password,
        format!("alarm {id}"),
    )
    .await?;
    let outcome = st
        .with_store(move |s| {
            let now = now_ms();
            let closing = Closing {
                alarm: id,
                reason: &reason,
                action: f.action.trim(),
                impact,
                comment: f.comment.trim(),
            };
            let done = s.close_alarm(&signer, &closing, now)?;
            if done.is_ok() {
                s.mark_session_signed(&session, now)?;
            }
            Ok(done)
        })
        .await
        .map_err(sign::internal)?;
    outcome.map_err(|refused| {
        let status = match refused {
            Refused::NoSuchAlarm(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        (status, format!("{refused}; nothing was recorded"))
    })
}
