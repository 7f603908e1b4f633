//! Who signs through the web: the person of the session, never a token (21 CFR
//! 11.100). The first signature of a session needs both components, the user name and
//! the password; later ones in the same session the password (11.200(a)(1)). A wrong
//! password signs nothing and is audited.

use axum::http::StatusCode;

use super::ApiState;
use crate::model::now_ms;
use crate::store::quality::{NotSigned, Signer};

/// Checks `password` (and, at the first signature of the session of cookie `session`,
/// `username`) for signed-in `user` signing `subject`: the signer, or the status and
/// words of the refusal (a wrong password is recorded as `signature.refused`).
pub async fn signer(
    st: &ApiState,
    user: &str,
    session: &str,
    username: Option<&str>,
    password: String,
    subject: String,
) -> Result<Signer, (StatusCode, String)> {
    let internal = |e: crate::api::ApiError| {
        tracing::error!(error = %e, "checking a signature failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; nothing was recorded".to_string(),
        )
    };
    let cookie_value = session.to_string();
    let signed_before = st
        .with_store(move |s| s.session_signed(&cookie_value))
        .await
        .map_err(internal)?;
    if !signed_before && username != Some(user) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the first signature of a session needs your user name and your password".into(),
        ));
    }
    // The password is checked outside the store's lock (Argon2 is slow on purpose).
    let name = user.to_string();
    let stored = st.with_store(move |s| s.user_hash(&name)).await.map_err(internal)?;
    let matches = tokio::task::spawn_blocking(move || {
        crate::store::users::verify_password(stored.as_ref().map(|(h, _)| h.as_str()), &password) && stored.is_some()
    })
    .await
    .unwrap_or(false);
    let name = user.to_string();
    let outcome = st
        .with_store(move |s| {
            if !matches {
                s.refuse_signature(&name, &subject, now_ms())?;
                return Ok(Err(NotSigned::WrongPassword));
            }
            s.verified_signer(&name)
        })
        .await
        .map_err(internal)?;
    match outcome {
        Ok(signer) => Ok(signer),
        Err(NotSigned::WrongPassword) => Err((StatusCode::UNAUTHORIZED, NotSigned::WrongPassword.to_string())),
        Err(not_signed) => Err((StatusCode::FORBIDDEN, not_signed.to_string())),
    }
}
