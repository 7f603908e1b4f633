//! SMS through an HTTP gateway speaking Twilio's Messages API
//! (<https://www.twilio.com/docs/messaging/api/message-resource>), with a configurable
//! base URL so compatible gateways work too.
//!
//! Sending: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic
//! auth (AccountSid, AuthToken) and the form fields `To`, `From`, `Body`. The answer's
//! `sid` identifies the message; [`TwilioChannel::status`] reads back what became of
//! it (`delivered`, or `undelivered`/`failed` with the carrier's error code).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::channel::{Delivery, Outgoing, SetupError};
use crate::config::Secret;
use crate::config::notify::{Channel, ChannelKind};

/// Time allowed for one request, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Time allowed to open the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers are small JSON documents; anything longer is cut here.
const MAX_ANSWER: usize = 64 * 1024;

/// What the gateway says became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatus {
    pub sid: String,
    /// `accepted`, `scheduled`, `queued`, `sending`, `sent`, `delivered`,
    /// `undelivered`, `failed`, `canceled`, … as the gateway wrote it.
    pub status: String,
    /// The gateway's or carrier's error code (e.g. 30005: unknown destination handset).
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

impl MessageStatus {
    /// The message did not reach the phone and will not.
    pub fn is_failure(&self) -> bool {
        matches!(self.status.as_str(), "undelivered" | "failed" | "canceled")
    }

    /// Nothing more will happen to the message.
    pub fn is_final(&self) -> bool {
        self.is_failure() || matches!(self.status.as_str(), "delivered" | "read")
    }
}

/// A `twilio` channel.
pub struct TwilioChannel {
    id: String,
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: Secret,
    from: String,
    timeout: Duration,
}

impl fmt::Debug for TwilioChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioChannel")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TwilioChannel {
    /// Sets up the channel from its checked configuration. Nothing is contacted yet.
    pub fn new(channel: &Channel) -> Result<TwilioChannel, SetupError> {
        let fail = |reason: String| SetupError {
            channel: channel.id.clone(),
            reason,
        };
        let ChannelKind::Twilio {
            base_url,
            account_sid,
            auth_token,
            from,
        } = &channel.kind
        else {
            return Err(fail("not a twilio channel".into()));
        };
        let base_url = base_url.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => return Err(fail(format!("base_url: unsupported scheme {:?}", u.scheme()))),
            Err(e) => return Err(fail(format!("base_url {base_url:?}: {e}"))),
        }
        if account_sid.is_empty() || !account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(fail(format!("account_sid {account_sid:?} must be letters and digits")));
        }
        let trust = crate::tls::Trust::load(channel.ca_file.as_deref()).map_err(|e| fail(format!("ca_file {e}")))?;
        let client = trust
            .http_client()
            .map_err(fail)?
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cryowatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("HTTP client: {}", crate::http::chain(&e))))?;
        Ok(TwilioChannel {
            id: channel.id.clone(),
            client,
            base_url,
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            from: from.clone(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Time allowed for each request (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> TwilioChannel {
        self.timeout = timeout;
        self
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base_url, self.account_sid
        )
    }

    /// Sends `msg.sms` to the contact's phone. `Sent { detail }` is the message sid.
    pub async fn send(&self, msg: &Outgoing) -> Delivery {
        let Some(phone) = msg.contact.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) else {
            return Delivery::Unreachable {
                reason: format!("contact {} has no phone number", msg.contact.id),
            };
        };
        let body = if msg.sms.trim().is_empty() {
            msg.subject.as_str()
        } else {
            msg.sms.as_str()
        };
        let request = self
            .client
            .post(self.messages_url())
            .basic_auth(&self.account_sid, Some(&self.auth_token.0))
            .timeout(self.timeout)
            .form(&[("To", phone), ("From", self.from.as_str()), ("Body", body)]);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match crate::http::read_limited(&mut response, MAX_ANSWER).await {
            Ok(body) => send_outcome(status, retry_after.as_deref(), location.as_deref(), &body),
            // The status line already says whether the gateway took the message.
            Err(e) if (200..300).contains(&status) => Delivery::Sent {
                detail: format!(
                    "accepted (HTTP {status}); reading the answer failed: {}",
                    crate::http::chain(&e)
                ),
            },
            Err(e) => self.transport_failure(e),
        }
    }

    /// Reads back what became of message `sid` (as returned in `Sent { detail }`).
    pub async fn status(&self, sid: &str) -> Result<MessageStatus, String> {
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{sid:?} is not a message sid"));
        }
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages/{sid}.json",
            self.base_url, self.account_sid
        );
        let mut response = self
            .client
            .get(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token.0))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.describe_error(e))?;
        let status = response.status().as_u16();
        let body = crate::http::read_limited(&mut response, MAX_ANSWER)
            .await
            .map_err(|e| self.describe_error(e))?;
        status_outcome(sid, status, &body)
    }

    fn describe_error(&self, err: reqwest::Error) -> String {
        let timeout = err.is_timeout();
        let text = crate::http::failure_text(err);
        if timeout {
            format!("no answer from {} within {:?} ({text})", self.base_url, self.timeout)
        } else {
            format!("cannot reach {}: {text}", self.base_url)
        }
    }

    fn transport_failure(&self, err: reqwest::Error) -> Delivery {
        // A request that could not even be built will not work next time either.
        let retry = !err.is_builder();
        Delivery::failed(retry, self.describe_error(err))
    }
}

/// `code N: message` from a Twilio error document, if it is one.
fn twilio_error(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code").and_then(number);
    let message = v.get("message").and_then(Value::as_str).map(str::trim);
    match (code, message) {
        (Some(c), Some(m)) if !m.is_empty() => Some(format!("code {c}: {m}")),
        (Some(c), _) => Some(format!("code {c}")),
        (None, Some(m)) if !m.is_empty() => Some(m.to_string()),
        _ => None,
    }
}

/// A JSON number, or a string holding one (both occur in gateway answers).
fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The first bytes of an answer that is not a Twilio error document.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

fn explain(status: u16, body: &[u8]) -> String {
    match twilio_error(body) {
        Some(e) => format!("HTTP {status}, {e}"),
        None if body.is_empty() => format!("HTTP {status}"),
        None => format!("HTTP {status}: {}", snippet(body)),
    }
}

/// Maps the gateway's answer to a message POST to a delivery result.
fn send_outcome(status: u16, retry_after: Option<&str>, location: Option<&str>, body: &[u8]) -> Delivery {
    match status {
        200..=299 => {
            let sid = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("sid").and_then(Value::as_str).map(str::to_string))
                .filter(|s| !s.is_empty());
            Delivery::Sent {
                detail: sid.unwrap_or_else(|| format!("accepted (HTTP {status}) without a message sid")),
            }
        }
        401 | 403 => Delivery::failed(
            false,
            format!(
                "gateway refused the credentials ({}): check account_sid/auth_token",
                explain(status, body)
            ),
        ),
        404 => Delivery::failed(
            false,
            format!(
                "gateway has no such resource ({}): check base_url/account_sid",
                explain(status, body)
            ),
        ),
        408 | 429 | 500..=599 => {
            let mut reason = format!("gateway unavailable ({})", explain(status, body));
            let after = retry_after.map(str::trim).filter(|a| !a.is_empty());
            if let Some(after) = after {
                reason.push_str(&format!("; Retry-After {after}"));
            }
            // Retry-After in seconds; an HTTP-date is kept in the reason only, and the
            // backoff applies.
            let wait = after
                .and_then(|a| a.parse::<u64>().ok())
                .map(|s| std::time::Duration::from_secs(s.min(3600)));
            Delivery::retry_after(reason, wait)
        }
        300..=399 => Delivery::failed(
            false,
            format!(
                "gateway redirects (HTTP {status} to {}): configure the final base_url",
                location.unwrap_or("?")
            ),
        ),
        400..=499 => Delivery::failed(
            false,
            format!("gateway rejected the message ({})", explain(status, body)),
        ),
        _ => Delivery::failed(true, format!("unexpected answer ({})", explain(status, body))),
    }
}

/// Maps the answer to a status read-back.
fn status_outcome(sid: &str, status: u16, body: &[u8]) -> Result<MessageStatus, String> {
    if !(200..300).contains(&status) {
        return Err(format!("status of {sid}: {}", explain(status, body)));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("status of {sid}: answer is not JSON ({e}): {}", snippet(body)))?;
    let state = v
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("status of {sid}: answer has no status: {}", snippet(body)))?;
    Ok(MessageStatus {
        sid: v.get("sid").and_then(Value::as_str).unwrap_or(sid).to_string(),
        status: state.to_string(),
        error_code: v.get("error_code").and_then(number),
        error_message: v
            .get("error_message")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_of(d: &Delivery) -> Option<bool> {
        match d {
            Delivery::Failed { retry, .. } => Some(*retry),
            _ => None,
        }
    }

    fn reason_of(d: &Delivery) -> &str {
        match d {
            Delivery::Failed { reason, .. } => reason,
            _ => "",
        }
    }

    #[test]
    fn created_gives_the_sid() {
        let body = br#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}"#;
        assert_eq!(
            send_outcome(201, None, None, body),
            Delivery::Sent {
                detail: "SM0123456789abcdef0123456789abcdef".into()
            }
        );
        // Accepted without a readable sid is still accepted: resending would duplicate.
        assert!(send_outcome(201, None, None, b"<html>").is_sent());
    }

    #[test]
    fn busy_and_server_errors_retry() {
        let d = send_outcome(
            429,
            Some("7"),
            None,
            br#"{"code": 20429, "message": "Too Many Requests"}"#,
        );
        assert_eq!(retry_of(&d), Some(true));
        assert!(
            reason_of(&d).contains("20429") && reason_of(&d).contains("Retry-After 7"),
            "{d:?}"
        );
        assert!(
            matches!(d, Delivery::Failed { retry_after: Some(a), .. } if a == std::time::Duration::from_secs(7)),
            "the dispatcher must wait the 7 s the gateway asked: {d:?}"
        );
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(retry_of(&send_outcome(status, None, None, b"")), Some(true), "{status}");
        }
    }

    #[test]
    fn rejections_do_not_retry_and_name_the_code() {
        let body = br#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let d = send_outcome(400, None, None, body);
        assert_eq!(retry_of(&d), Some(false));
        assert!(reason_of(&d).contains("code 21211: The 'To' number"), "{d:?}");
        let d = send_outcome(
            400,
            None,
            None,
            br#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient"}"#,
        );
        assert!(reason_of(&d).contains("21610"), "{d:?}");
        let d = send_outcome(401, None, None, br#"{"code": 20003, "message": "Authenticate"}"#);
        assert_eq!(retry_of(&d), Some(false));
        assert!(reason_of(&d).contains("check account_sid/auth_token"), "{d:?}");
        let d = send_outcome(301, None, Some("https://elsewhere/"), b"");
        assert_eq!(retry_of(&d), Some(false));
        assert!(reason_of(&d).contains("https://elsewhere/"), "{d:?}");
        let d = send_outcome(404, None, None, b"not found");
        assert_eq!(retry_of(&d), Some(false));
    }

    #[test]
    fn status_read_back() {
        let body = br#"{"sid": "SMabc", "status": "undelivered", "error_code": 30005, "error_message": "Unknown destination handset"}"#;
        let s = status_outcome("SMabc", 200, body).expect("status");
        assert_eq!(s.status, "undelivered");
        assert_eq!(s.error_code, Some(30005));
        assert!(s.is_failure() && s.is_final());
        let s = status_outcome("SMabc", 200, br#"{"status": "sent", "error_code": null}"#).expect("status");
        assert_eq!((s.sid.as_str(), s.error_code), ("SMabc", None));
        assert!(!s.is_final());
        let s = status_outcome("SMabc", 200, br#"{"status": "failed", "error_code": "30008"}"#).expect("status");
        assert_eq!(s.error_code, Some(30008));
        assert!(
            status_outcome("SMabc", 404, br#"{"code": 20404, "message": "Not found"}"#)
                .is_err_and(|e| e.contains("20404"))
        );
        assert!(status_outcome("SMabc", 200, b"{}").is_err());
    }

    #[test]
    fn long_answers_are_cut() {
        let body = vec![b'x'; 1000];
        assert!(explain(500, &body).chars().count() < 260);
    }
}
