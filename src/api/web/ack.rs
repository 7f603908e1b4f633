//! `POST /alarms/{id}/ack` (form fields `comment`, `csrf`, and to sign it `password`,
//! with `username` at the session's first signature): operators only, with the
//! session's CSRF token. The acknowledgement is queued for the daemon's alarm engine
//! like the JSON API's and the command line's, with the signed-in user as `by` and the
//! path `web`, and audited as `web.ack` in the same transaction; with a password it is
//! signed ([`crate::api::sign`]; a wrong one acknowledges nothing). The engine's answer
//! decides the page: back to the dashboard (303) when done, 409 with its words when
//! refused, 202 when the daemon has not answered yet.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{refusal, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::api::sign::ack_signer;
use crate::config::Role;
use crate::pipeline::control::ack_args;

#[derive(Debug, Deserialize)]
pub struct AckForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    csrf: Option<String>,
}

/// `POST /alarms/{id}/ack`: operators only, with the session's CSRF token.
pub async fn acknowledge(
    State(st): State<ApiState>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<AckForm>, FormRejection>,
) -> Response {
    let Some(who) = who else {
        return to_login("/");
    };
    if let Some(r) = super::forbidden(&st, &who, Role::Operator) {
        return r;
    }
    let Ok(Form(f)) = form else {
        return refusal(
            &st,
            StatusCode::BAD_REQUEST,
            Some(&who),
            "Form not understood",
            "Nothing was changed; reload the page and try again.",
        );
    };
    if who.check_csrf(f.csrf.as_deref()).is_err() {
        return refusal(
            &st,
            StatusCode::FORBIDDEN,
            Some(&who),
            "Not acknowledged",
            "The form carried no valid token (it may be from an old page or another site). Nothing was changed; reload the dashboard and acknowledge again.",
        );
    }
    let Ok(id) = id.parse::<i64>() else {
        return refusal(
            &st,
            StatusCode::NOT_FOUND,
            Some(&who),
            "No such alarm",
            "Nothing was changed.",
        );
    };
    let comment = f.comment.trim().to_string();
    if comment.chars().count() > crate::api::ack::MAX_COMMENT {
        return refusal(
            &st,
            StatusCode::BAD_REQUEST,
            Some(&who),
            "Comment too long",
            "Nothing was changed; shorten the comment.",
        );
    }
    let by = who.actor.strip_prefix("user:").unwrap_or(&who.actor).to_string();
    let signed = ack_signer(&st, &who, &headers, Some(&f.username), Some(f.password), id).await;
    let (signer, session) = match signed {
        Ok(s) => s.unzip(),
        Err((status, text)) => {
            let text = format!("{text}. Nothing was acknowledged.");
            return refusal(&st, status, Some(&who), "Not acknowledged", &text);
        }
    };
    let args = ack_args(id, &by, &comment, "web", signer.as_ref());
    let queued = st
        .queue_request("ack", args, "web.ack".into(), who.actor.clone(), format!("alarm {id}"))
        .await;
    let request = match queued {
        Ok(r) => r,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    tracing::info!(alarm_id = id, user = %by, request, "acknowledgement from the web dashboard queued");
    match crate::api::ack::wait_answer(&st, request).await {
        Ok(Some((true, _))) => {
            if let Some(session) = session {
                crate::api::sign::session_signed(&st, session).await;
            }
            Redirect::to(&format!("/?acked={id}")).into_response()
        }
        Ok(Some((false, text))) => refusal(&st, StatusCode::CONFLICT, Some(&who), "Not acknowledged", &text),
        Ok(None) => refusal(
            &st,
            StatusCode::ACCEPTED,
            Some(&who),
            "Acknowledgement queued",
            &format!(
                "Your acknowledgement is recorded as request {request}, but the monitoring daemon has not answered yet. \
                 It is carried out when the daemon runs again; until then pages may continue."
            ),
        ),
        Err(e) => super::failure(&st, Some(&who), &e),
    }
}
