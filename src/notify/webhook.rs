//! A JSON webhook: every notification is POSTed to one URL as
//!
//! ```json
//! { "id": 42,
//!   "contact": { "id": "alice", "name": "Alice", "email": "a@x", "phone": "+1555…" },
//!   "subject": "…", "text": "…", "sms": "…", "alarm": 7 }
//! ```
//!
//! `email`, `phone` and `alarm` are `null` when absent. The header
//! `Idempotency-Key: cryowatch-{id}` is the same on every retry of one notification,
//! so a receiver can drop duplicates. Redirects are not followed (a POST would turn
//! into a GET). Webhook URLs often carry a secret token, so reasons never show the
//! path or query.

use std::fmt;
use std::time::Duration;

use serde_json::json;

use super::channel::{Delivery, Outgoing, SetupError};
use crate::config::notify::{Channel, ChannelKind};

/// Time allowed for one request, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Time allowed to open the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of the answer is read (and at most 200 characters of it shown).
const MAX_ANSWER: usize = 16 * 1024;

/// A `webhook` channel.
pub struct WebhookChannel {
    id: String,
    client: reqwest::Client,
    url: reqwest::Url,
    /// `scheme://host:port`, safe to show.
    shown: String,
    timeout: Duration,
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("id", &self.id)
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The JSON document posted for `msg`.
pub fn payload(msg: &Outgoing) -> serde_json::Value {
    json!({
        "id": msg.id,
        "contact": {
            "id": msg.contact.id,
            "name": msg.contact.name,
            "email": msg.contact.email,
            "phone": msg.contact.phone,
        },
        "subject": msg.subject,
        "text": msg.text,
        "sms": msg.sms,
        "alarm": msg.alarm,
    })
}

impl WebhookChannel {
    /// Sets up the channel from its checked configuration. Nothing is contacted yet.
    pub fn new(channel: &Channel) -> Result<WebhookChannel, SetupError> {
        let fail = |reason: String| SetupError {
            channel: channel.id.clone(),
            reason,
        };
        let ChannelKind::Webhook { url } = &channel.kind else {
            return Err(fail("not a webhook channel".into()));
        };
        let url = reqwest::Url::parse(url).map_err(|e| fail(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!("url: unsupported scheme {:?}", url.scheme())));
        }
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let trust = crate::tls::Trust::load(channel.ca_file.as_deref()).map_err(|e| fail(format!("ca_file {e}")))?;
        let client = trust
            .http_client()
            .map_err(fail)?
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cryowatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("HTTP client: {}", crate::http::chain(&e))))?;
        Ok(WebhookChannel {
            id: channel.id.clone(),
            client,
            url,
            shown,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Time allowed for each request (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> WebhookChannel {
        self.timeout = timeout;
        self
    }

    /// POSTs `msg` as JSON. Reaches every contact.
    pub async fn send(&self, msg: &Outgoing) -> Delivery {
        let request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header("Idempotency-Key", format!("cryowatch-{}", msg.id))
            .json(&payload(msg));
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status().as_u16();
        match crate::http::read_limited(&mut response, MAX_ANSWER).await {
            Ok(body) => outcome(&self.shown, status, &body),
            Err(_) if (200..300).contains(&status) => Delivery::Sent {
                detail: format!("HTTP {status}"),
            },
            Err(e) => self.transport_failure(e),
        }
    }

    fn transport_failure(&self, err: reqwest::Error) -> Delivery {
        let retry = !err.is_builder();
        let timeout = err.is_timeout();
        let text = crate::http::failure_text(err);
        let reason = if timeout {
            format!("no answer from {} within {:?} ({text})", self.shown, self.timeout)
        } else {
            format!("cannot reach {}: {text}", self.shown)
        };
        Delivery::failed(retry, reason)
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Maps the receiver's answer to a delivery result.
fn outcome(shown: &str, status: u16, body: &[u8]) -> Delivery {
    let answer = snippet(body);
    let what = if answer.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {answer}")
    };
    match status {
        200..=299 => Delivery::Sent { detail: what },
        408 | 429 | 500..=599 => Delivery::failed(true, format!("{shown} unavailable ({what})")),
        300..=399 => Delivery::failed(false, format!("{shown} redirects ({what}): configure the final URL")),
        400..=499 => Delivery::failed(false, format!("{shown} refused the notification ({what})")),
        _ => Delivery::failed(true, format!("{shown}: unexpected answer ({what})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::Contact;

    fn retry_of(d: &Delivery) -> Option<bool> {
        match d {
            Delivery::Failed { retry, .. } => Some(*retry),
            _ => None,
        }
    }

    #[test]
    fn status_codes_decide_retry() {
        assert!(outcome("h", 200, b"ok").is_sent());
        assert!(outcome("h", 204, b"").is_sent());
        for status in [408, 429, 500, 502, 503] {
            assert_eq!(retry_of(&outcome("h", status, b"")), Some(true), "{status}");
        }
        for status in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(retry_of(&outcome("h", status, b"")), Some(false), "{status}");
        }
    }

    #[test]
    fn payload_has_every_field() {
        let msg = Outgoing {
            id: 9,
            contact: Contact {
                id: "bob".into(),
                name: "Bob".into(),
                email: None,
                phone: Some("+15550001".into()),
            },
            subject: "s".into(),
            text: "t".into(),
            sms: "m".into(),
            alarm: None,
        };
        let v = payload(&msg);
        assert_eq!(v["id"], 9);
        assert_eq!(v["contact"]["phone"], "+15550001");
        assert!(v["contact"]["email"].is_null());
        assert!(v["alarm"].is_null());
        assert_eq!(
            (v["subject"].as_str(), v["text"].as_str(), v["sms"].as_str()),
            (Some("s"), Some("t"), Some("m"))
        );
    }

    #[test]
    fn secrets_in_the_url_are_not_shown() {
        let ch = WebhookChannel::new(&Channel {
            id: "hook".into(),
            kind: ChannelKind::Webhook {
                url: "https://hooks.example.org:8443/services/SECRET?token=SECRET".into(),
            },
            fallback: None,
            ca_file: None,
        })
        .expect("channel");
        assert_eq!(ch.shown, "https://hooks.example.org:8443");
        assert!(!format!("{ch:?}").contains("SECRET"));
        let bad = WebhookChannel::new(&Channel {
            id: "hook".into(),
            kind: ChannelKind::Webhook { url: "ftp://x/".into() },
            fallback: None,
            ca_file: None,
        });
        assert!(bad.is_err());
    }
}
