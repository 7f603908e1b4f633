//! Inbound SMS from an HTTP gateway: `POST /sms/inbound/{channel}` with the form fields
//! of Twilio's incoming-message webhook (`From`, `Body`, …). A reply `ACK <id>` from a
//! configured contact's phone queues the acknowledgement (path `sms_gateway`).
//!
//! The request must carry Twilio's `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed
//! with the channel's auth token, over the URL the gateway called followed by every
//! form field sorted by name (name then value). The URL is `[api].public_url` plus the
//! path, as configured at the gateway.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};

use super::ApiState;
use crate::config::notify::ChannelKind;
use crate::model::now_ms;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/sms/inbound/{channel}", axum::routing::post(inbound))
}

/// The HMAC-SHA1 Twilio computes over `url` and the fields sorted by name.
fn mac(auth_token: &str, url: &str, params: &BTreeMap<String, String>) -> Option<Hmac<sha1::Sha1>> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (k, v) in params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    Some(mac)
}

/// The signature Twilio sends for a request to `url` with `params`.
pub fn signature(auth_token: &str, url: &str, params: &BTreeMap<String, String>) -> String {
    mac(auth_token, url, params)
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Checks `given` in constant time.
fn verify(auth_token: &str, url: &str, params: &BTreeMap<String, String>, given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    mac(auth_token, url, params).is_some_and(|m| m.verify_slice(&given).is_ok())
}

fn twiml(status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response()
}

async fn inbound(
    State(state): State<ApiState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Form(params): Form<BTreeMap<String, String>>,
) -> Response {
    let cfg = state.config.clone();
    let Some(ch) = cfg.notify.channel(&channel) else {
        return (StatusCode::NOT_FOUND, "unknown channel").into_response();
    };
    let ChannelKind::Twilio { auth_token, .. } = &ch.kind else {
        return (StatusCode::NOT_FOUND, "not an SMS gateway channel").into_response();
    };
    let base = cfg.sections.api_public_url.clone().unwrap_or_default();
    let url = format!("{base}/sms/inbound/{channel}");
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !verify(&auth_token.0, &url, &params, given) {
        tracing::warn!(channel = %channel, url = %url, "refused an inbound SMS without a valid gateway signature");
        return (StatusCode::FORBIDDEN, "signature does not match").into_response();
    }
    let from = params.get("From").cloned().unwrap_or_default();
    let text = params.get("Body").cloned().unwrap_or_default();
    // The gateway's id for the message: a webhook call replayed (by the gateway's retry
    // or by someone who captured it) is handled once.
    let sid = params.get("MessageSid").or_else(|| params.get("SmsSid")).cloned();
    let notify = cfg.notify.clone();
    let via = channel.clone();
    let result = state
        .with_store(move |store| {
            let inbound = crate::notify::inbound::Inbound {
                from: &from,
                text: &text,
                path: "sms_gateway",
                via: &via,
            };
            let now = now_ms();
            let handled = store.inbound_sms(sid.as_deref(), now, |queue| {
                crate::notify::inbound::handle_sms(&notify, &inbound, |args| queue(args))
            })?;
            Ok(handled.unwrap_or_else(|| {
                format!(
                    "ignored SMS {} from {from}: already handled (a replayed webhook call)",
                    crate::escape::control(sid.as_deref().unwrap_or_default())
                )
            }))
        })
        .await;
    match result {
        Ok(what) => {
            tracing::info!(channel = %channel, "{what}");
            twiml(StatusCode::OK)
        }
        Err(e) => {
            tracing::error!(channel = %channel, error = %e, "cannot queue an inbound SMS acknowledgement");
            twiml(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_twilios_documented_example() {
        // From Twilio's "Webhooks security" documentation.
        let mut p = BTreeMap::new();
        for (k, v) in [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ] {
            p.insert(k.to_string(), v.to_string());
        }
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = signature("12345", url, &p);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify("12345", url, &p, &sig));
        assert!(!verify("12346", url, &p, &sig));
    }
}
