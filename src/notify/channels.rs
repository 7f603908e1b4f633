//! Builds the configured channels and adapts each to the dispatcher's [`Sender`].

use std::collections::HashMap;
use std::sync::Arc;

use super::channel::{Fate, FateFuture, Outgoing, SendFuture, Sender};
use super::modem::ModemChannel;
use super::smtp::SmtpChannel;
use super::twilio::TwilioChannel;
use super::webhook::WebhookChannel;
use crate::config::notify::{ChannelKind, Contact, NotifyConfig};

impl Sender for SmtpChannel {
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(SmtpChannel::send(self, msg))
    }
    fn reaches(&self, contact: &Contact) -> bool {
        contact.email.is_some()
    }
}

impl Sender for TwilioChannel {
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(TwilioChannel::send(self, msg))
    }
    fn fate<'a>(&'a self, sid: &'a str) -> Option<FateFuture<'a>> {
        Some(Box::pin(async move {
            let st = self.status(sid).await?;
            let text = match (&st.error_code, &st.error_message) {
                (Some(code), Some(m)) => format!("{} (error {code}: {m})", st.status),
                (Some(code), None) => format!("{} (error {code})", st.status),
                _ => st.status.clone(),
            };
            Ok(if st.is_failure() {
                Fate::Failed(text)
            } else if st.is_final() {
                Fate::Delivered(text)
            } else {
                Fate::Pending(text)
            })
        }))
    }
    fn reaches(&self, contact: &Contact) -> bool {
        contact.phone.is_some()
    }
}

impl Sender for WebhookChannel {
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(WebhookChannel::send(self, msg))
    }
    fn reaches(&self, _contact: &Contact) -> bool {
        true
    }
}

/// The configured channels, by id, and the modems among them (for inbound SMS and
/// health checks). A channel that cannot be set up is left out with an error logged:
/// its pages fall back to the next channel.
pub struct Built {
    pub senders: HashMap<String, Arc<dyn Sender>>,
    pub modems: Vec<Arc<ModemChannel>>,
}

/// `scope`: an installation tag for mail Message-IDs (see
/// [`super::acklink::installation_tag`]).
pub fn build(cfg: &NotifyConfig, scope: Option<&str>) -> Built {
    let mut senders: HashMap<String, Arc<dyn Sender>> = HashMap::new();
    let mut modems = Vec::new();
    for ch in &cfg.channels {
        let made: Result<Arc<dyn Sender>, String> = match &ch.kind {
            ChannelKind::Smtp { .. } => SmtpChannel::new(ch)
                .map(|c| match scope {
                    Some(s) => c.with_message_id_scope(s),
                    None => c,
                })
                .map(|c| Arc::new(c) as _)
                .map_err(|e| e.to_string()),
            ChannelKind::Twilio { .. } => TwilioChannel::new(ch)
                .map(|c| Arc::new(c) as _)
                .map_err(|e| e.to_string()),
            ChannelKind::Webhook { .. } => WebhookChannel::new(ch)
                .map(|c| Arc::new(c) as _)
                .map_err(|e| e.to_string()),
            ChannelKind::GsmModem { serial, baud, ring } => {
                let m = Arc::new(ModemChannel::new(ch.id.clone(), serial.clone(), *baud).with_ring(*ring));
                modems.push(m.clone());
                Ok(m as _)
            }
        };
        match made {
            Ok(s) => {
                senders.insert(ch.id.clone(), s);
            }
            Err(e) => {
                tracing::error!(channel = %ch.id, error = %e, "CRITICAL: channel cannot be set up; its pages use its fallback")
            }
        }
    }
    Built { senders, modems }
}
