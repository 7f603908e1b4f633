//! Who signs over HTTP: the signed-in person of a web session, with their password.
//!
//! Only a web session can sign: a token is not a person (21 CFR 11.100). The first
//! signature of a session needs both components, the user name and the password; later
//! ones in the same session the password (11.200(a)(1)); the session counts as having
//! signed once what it signed is recorded. A wrong password signs nothing and is
//! audited as `signature.refused` (401). Used by corrective actions ([`super::close`])
//! and signed acknowledgements (the JSON API's and the dashboard's).

use axum::http::{HeaderMap, StatusCode};

use super::ApiState;
use super::auth::{Principal, SESSION_COOKIE, cookie};
use crate::model::now_ms;
use crate::store::quality::{NotSigned, Signer};

/// A refusal: the status and the words to answer with.
pub type Refusal = (StatusCode, String);

/// The signed-in user and their session cookie: who can sign. `None` for a token
/// caller, which is not a person.
pub fn person_and_session(who: &Principal, headers: &HeaderMap) -> Option<(String, String)> {
    let user = who.actor.strip_prefix("user:")?;
    let session = cookie(headers, SESSION_COOKIE)?;
    Some((user.to_string(), session.to_string()))
}

/// The 500 of a store that failed while signing; the error is logged.
pub fn internal(e: crate::api::ApiError) -> Refusal {
    tracing::error!(error = %e, "signing failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; nothing was recorded".to_string(),
    )
}

/// Checks the password of `user`, the person of the session of cookie `session` (and,
/// at the session's first signature, that `username` names them), for signing
/// `subject`: the signer, or the refusal (a wrong password is audited and signs
/// nothing).
pub async fn signer(
    st: &ApiState,
    user: String,
    session: &str,
    username: Option<&str>,
    password: String,
    subject: String,
) -> Result<Signer, Refusal> {
    let cookie_value = session.to_string();
    let signed_before = st
        .with_store(move |s| s.session_signed(&cookie_value))
        .await
        .map_err(internal)?;
    if !signed_before && username != Some(user.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the first signature of a session needs your user name and your password".into(),
        ));
    }
    // The same guard as the sign-in form: a user locked out or throttled after wrong
    // passwords cannot try again by signing, only a few Argon2 checks (19 MiB each) run
    // at once, and refusals count towards the sign-in alarm (21 CFR 11.300(d)).
    let now = now_ms();
    match st.guard.with(|t| t.verdict(&user, None, now)) {
        crate::api::web::guard::Verdict::Check => {}
        _ => {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong passwords: signing is held back for a while; nothing was signed".into(),
            ));
        }
    }
    let Ok(turn) = st.guard.turn().await else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "too many password checks at once: try again in a few seconds; nothing was signed".into(),
        ));
    };
    // The password is checked outside the store's lock (Argon2 is slow on purpose).
    let name = user.clone();
    let stored = st.with_store(move |s| s.user_hash(&name)).await.map_err(internal)?;
    let matches = tokio::task::spawn_blocking(move || {
        crate::store::users::verify_password(stored.as_ref().map(|(h, _)| h.as_str()), &password) && stored.is_some()
    })
    .await
    .unwrap_or(false);
    drop(turn);
    if matches {
        st.guard.with(|t| t.succeeded(&user));
    } else {
        st.guard.with(|t| t.failed(&user, None, now));
        st.guard.report(now, false).await;
    }
    let outcome = st
        .with_store(move |s| {
            if !matches {
                s.refuse_signature(&user, &subject, now_ms())?;
                return Ok(Err(NotSigned::WrongPassword));
            }
            s.verified_signer(&user)
        })
        .await
        .map_err(internal)?;
    outcome.map_err(|e| match e {
        NotSigned::WrongPassword => (StatusCode::UNAUTHORIZED, e.to_string()),
        other => (StatusCode::FORBIDDEN, other.to_string()),
    })
}

/// The signer of an acknowledgement of alarm `alarm`, when a password is given: `None`
/// without one (the acknowledgement is then unsigned, as a token caller's always is),
/// the signer and their session cookie when the password is right, the refusal
/// otherwise (a token caller that gives a password is refused: a token cannot sign).
pub async fn ack_signer(
    st: &ApiState,
    who: &Principal,
    headers: &HeaderMap,
    username: Option<&str>,
    password: Option<String>,
    alarm: i64,
) -> Result<Option<(Signer, String)>, Refusal> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let Some((user, session)) = person_and_session(who, headers) else {
        return Err((
            StatusCode::FORBIDDEN,
            "a signature is made by a person: sign in to the dashboard (a token cannot sign); \
             without a password the acknowledgement is recorded unsigned"
                .into(),
        ));
    };
    let username = username.map(str::trim).filter(|u| !u.is_empty());
    let signer = signer(st, user, &session, username, password, format!("alarm {alarm}")).await?;
    Ok(Some((signer, session)))
}

/// Records that the session of cookie `session` has signed, once what it signed is
/// recorded (its next signature needs only the password). A failure is logged: the
/// session's next signature then asks for the user name again.
pub async fn session_signed(st: &ApiState, session: String) {
    if let Err(e) = st.with_store(move |s| s.mark_session_signed(&session, now_ms())).await {
        tracing::error!(error = %e, "cannot record that the session has signed");
    }
}
