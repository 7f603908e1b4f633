//! What every notification channel speaks: an outgoing message and a delivery result
//! that says whether trying again makes sense.

use crate::config::notify::Contact;

/// One notification to one contact, as taken from the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Outbox id: unique per notification, stable across retries and restarts (usable as
    /// an idempotency key or Message-ID).
    pub id: i64,
    pub contact: Contact,
    /// Email subject.
    pub subject: String,
    /// Full text (email body, webhook `text`).
    pub text: String,
    /// Short text for SMS: fits one 160-character GSM-7 segment where possible.
    pub sms: String,
    /// The alarm it is about, if any (test pages have none).
    pub alarm: Option<i64>,
}

/// The channel cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("channel {channel}: {reason}")]
pub struct SetupError {
    pub channel: String,
    pub reason: String,
}

/// The outcome of one attempt on one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Accepted by the server, gateway or modem. `detail`: what it answered (provider
    /// message id, SMTP response, modem message reference).
    Sent { detail: String },
    /// Not sent. `retry`: a later attempt on this channel may work (timeouts, 5xx, 429,
    /// modem busy); otherwise only another channel can help (authentication refused,
    /// number rejected).
    /// `retry_after`: the server asked not to be asked again before this long (HTTP
    /// `Retry-After`); the next attempt waits at least that.
    Failed {
        retry: bool,
        reason: String,
        retry_after: Option<std::time::Duration>,
    },
    /// This channel cannot reach this contact at all (no email address, no phone).
    Unreachable { reason: String },
}

impl Delivery {
    pub fn failed(retry: bool, reason: impl Into<String>) -> Delivery {
        Delivery::Failed {
            retry,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A retryable failure where the server said when to come back.
    pub fn retry_after(reason: impl Into<String>, after: Option<std::time::Duration>) -> Delivery {
        Delivery::Failed {
            retry: true,
            reason: reason.into(),
            retry_after: after,
        }
    }

    /// How the attempt is recorded: its result label (`sent`, `failed_retryable`,
    /// `failed`, `unreachable`) and the server's answer or the reason.
    pub fn record(&self) -> (&'static str, String) {
        match self {
            Delivery::Sent { detail } => ("sent", detail.clone()),
            Delivery::Failed {
                retry: true, reason, ..
            } => ("failed_retryable", reason.clone()),
            Delivery::Failed {
                retry: false, reason, ..
            } => ("failed", reason.clone()),
            Delivery::Unreachable { reason } => ("unreachable", reason.clone()),
        }
    }

    pub fn is_sent(&self) -> bool {
        matches!(self, Delivery::Sent { .. })
    }
}

/// The boxed future a channel's send returns.
pub type SendFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Delivery> + Send + 'a>>;

/// What became of a message after it was accepted, for channels that can tell (an SMS
/// gateway reading back the carrier's verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Not known yet: ask again later.
    Pending(String),
    Delivered(String),
    /// The carrier rejected it: another channel must carry the page.
    Failed(String),
}

/// The boxed future a status read-back returns.
pub type FateFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fate, String>> + Send + 'a>>;

/// A channel the dispatcher can send through.
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a>;
    /// Reads back what became of a sent message (`detail` as `Delivery::Sent` gave it).
    /// `None`: this channel cannot tell.
    fn fate<'a>(&'a self, _detail: &'a str) -> Option<FateFuture<'a>> {
        None
    }
    /// Can this channel reach the contact at all (email for mail, phone for SMS)?
    fn reaches(&self, contact: &Contact) -> bool;
}
