//! Inbound SMS read from the modems (`ACK <id>` replies) and the modems' health.

use super::*;

impl Dispatcher {
    /// Reads every modem's inbox and queues the acknowledgements found.
    pub async fn read_inbox(&mut self) {
        for m in self.modems.clone() {
            match m.receive().await {
                Ok(messages) => {
                    for sms in messages {
                        let now = (self.clock)();
                        let cfg = &self.cfg.notify;
                        let inbound = crate::notify::inbound::Inbound {
                            from: &sms.from,
                            text: &sms.text,
                            path: "sms",
                            via: m.id(),
                        };
                        let handled = self.store.inbound_sms(None, now, |queue| {
                            crate::notify::inbound::handle_sms(cfg, &inbound, |args| queue(args))
                        });
                        match handled {
                            Ok(what) => tracing::info!(from = %sms.from, "{}", what.unwrap_or_default()),
                            Err(e) => {
                                tracing::error!(error = %e, from = %sms.from, "cannot queue an SMS acknowledgement")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the modem's inbox"),
            }
        }
    }

    pub(super) async fn check_modems(&self) {
        for m in &self.modems {
            match m.check().await {
                Ok(h) => tracing::debug!(health = ?h, "modem health"),
                Err(e) => {
                    tracing::error!(error = %e, "CRITICAL: the GSM modem fails its health check; SMS fallback is at risk")
                }
            }
        }
    }
}
