//! Sending: due notifications from the outbox through their channel and its fallback
//! chain, every attempt recorded; delivery fates read back from the gateways.

use super::*;

impl Dispatcher {
    /// Reads back the fate of messages gateways accepted in the last hour; a carrier
    /// rejection is recorded and the page planned again on the channel's fallback.
    pub async fn check_fates(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        let capable: Vec<String> = self.channels.keys().cloned().collect();
        let waiting = self.store.awaiting_fate(&capable, now - FATE_WINDOW)?;
        for n in waiting {
            let (Some(via), Some(detail)) = (n.via.clone(), n.detail.clone()) else {
                continue;
            };
            if self.fate_checked.get(&n.id).is_some_and(|t| now - *t < FATE_EVERY) {
                continue;
            }
            let Some(sender) = self.channels.get(&via).cloned() else {
                continue;
            };
            let Some(fut) = sender.fate(&detail) else { continue };
            self.fate_checked.insert(n.id, now);
            match fut.await {
                Ok(Fate::Pending(_)) => {}
                Ok(Fate::Delivered(text)) => {
                    self.fate_checked.remove(&n.id);
                    self.stats.count(&via, "fate_delivered");
                    self.store.record_attempt(n.id, &via, "fate_delivered", &text, now)?;
                }
                Ok(Fate::Failed(text)) => {
                    self.fate_checked.remove(&n.id);
                    self.stats.count(&via, "fate_failed");
                    let fallback = self.cfg.notify.channel(&via).and_then(|c| c.fallback.clone());
                    tracing::error!(notification = n.id, channel = %via, fate = %text, fallback = ?fallback,
                        "the carrier did not deliver a page");
                    self.store
                        .record_undelivered_fate(&n, &via, &text, fallback.as_deref(), now)?;
                }
                Err(e) => {
                    tracing::warn!(notification = n.id, channel = %via, error = %e, "cannot read back a message's fate")
                }
            }
        }
        Ok(())
    }

    /// Sends what is due. Returns how many notifications were delivered.
    pub async fn send_due(&mut self, now: TimestampMs) -> Result<usize, StoreError> {
        // First record what went out while the store refused writes.
        let pending: Vec<(i64, (String, String, TimestampMs))> =
            self.unrecorded.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (id, (via, detail, at)) in pending {
            self.store.record_sent(id, &via, &detail, at)?;
            self.unrecorded.remove(&id);
        }
        let due = self.store.due_notifications(now, 50)?;
        let mut delivered = 0;
        for n in due {
            if self.unrecorded.contains_key(&n.id) {
                continue;
            }
            if n.kind == "page"
                && let Some(reason) = self.page_obsolete(&n)?
            {
                self.store.finish_notification(n.id, "cancelled", &reason, now)?;
                continue;
            }
            if n.kind == "reminder"
                && let Some(alarm) = n.alarm
                && let Some(done) = self.store.corrective_action(alarm)?
            {
                let reason = format!("closed by {} before it was sent", done.printed_name);
                self.store.finish_notification(n.id, "cancelled", &reason, now)?;
                continue;
            }
            if n.kind == "review-overdue"
                && let Some(r) = self.store.review_by_id(n.cycle)?
                && let Some(s) = r.signatures.first()
            {
                let reason = format!("signed by {} before it was sent", s.printed_name);
                self.store.finish_notification(n.id, "cancelled", &reason, now)?;
                continue;
            }
            if self.send_one(&n).await? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Why a pending page should no longer go out (acknowledged, cleared, suppressed).
    /// The page of an alarm raised during a running alarm check to the person doing it
    /// always goes out: the check is held (suppressed) by design, the probe may be cooled
    /// again before the page is sent, and that page is what proves the path to a person.
    pub(super) fn page_obsolete(&self, n: &Notification) -> Result<Option<String>, StoreError> {
        let Some(id) = n.alarm else { return Ok(None) };
        let a = self.store.alarm(id)?;
        if let Some(a) = &a
            && a.state != crate::model::AlarmState::Acknowledged
            && let Some(check) = self.store.running_alarm_check(&a.sensor)?
            && !check.silent
            && check.started_by == n.contact
            && a.raised_at >= check.started_at
        {
            return Ok(None);
        }
        Ok(match a {
            None => Some("the alarm no longer exists".into()),
            Some(a) if a.state == crate::model::AlarmState::Acknowledged => Some(format!(
                "acknowledged by {} before it was sent",
                a.acked_by.unwrap_or_default()
            )),
            Some(a) if a.state == crate::model::AlarmState::Cleared => {
                Some("the alarm cleared before it was sent".into())
            }
            Some(a) if a.suppressed.is_some() => Some(format!("suppressed: {}", a.suppressed.unwrap_or_default())),
            Some(_) => None,
        })
    }

    pub(super) async fn send_one(&mut self, n: &Notification) -> Result<bool, StoreError> {
        let Some(contact) = self.cfg.notify.contact(&n.contact).cloned() else {
            let now = (self.clock)();
            self.store
                .finish_notification(n.id, "failed", "the contact is no longer configured", now)?;
            return Ok(false);
        };
        let msg = Outgoing {
            id: n.id,
            contact,
            subject: n.subject.clone(),
            text: n.body.clone(),
            sms: n.sms.clone(),
            alarm: n.alarm,
        };
        let mut errors = Vec::new();
        let mut any_retryable = false;
        // The longest Retry-After (ms) any channel was given this round.
        let mut wait_at_least: i64 = 0;
        // A test proves one channel: no fallback that would hide its failure.
        let chain = if n.kind == "test" {
            vec![n.channel.clone()]
        } else {
            self.chain(&n.channel)
        };
        for ch in chain {
            let Some(sender) = self.channels.get(&ch).cloned() else {
                self.stats.count(&ch, "unavailable");
                errors.push(format!("{ch}: channel not available"));
                any_retryable = true;
                continue;
            };
            let result = sender.send(&msg).await;
            let now = (self.clock)();
            let (label, detail) = result.record();
            self.stats.count(&ch, label);
            if let Delivery::Sent { detail } = &result {
                // Recorded in one transaction; if the store refuses, remember it so the
                // page is not sent again on the next pass.
                let recorded = self.store.record_sent(n.id, &ch, detail, now);
                if let Err(e) = recorded {
                    tracing::error!(notification = n.id, error = %e, "page sent but not recorded yet; the store refuses writes");
                    self.unrecorded.insert(n.id, (ch.clone(), detail.clone(), now));
                }
            } else {
                self.store.record_attempt(n.id, &ch, label, &detail, now)?;
            }
            match result {
                Delivery::Sent { .. } => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    if ch != n.channel {
                        tracing::warn!(notification = n.id, channel = %n.channel, fallback = %ch, "page delivered through the fallback channel");
                    }
                    return Ok(true);
                }
                Delivery::Failed {
                    retry,
                    reason,
                    retry_after,
                } => {
                    self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    any_retryable |= retry;
                    if let Some(after) = retry_after {
                        wait_at_least = wait_at_least.max(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
                    }
                    tracing::warn!(notification = n.id, channel = %ch, retry, reason = %reason, "notification attempt failed");
                    errors.push(format!("{ch}: {reason}"));
                }
                Delivery::Unreachable { reason } => errors.push(format!("{ch}: {reason}")),
            }
        }
        let now = (self.clock)();
        let error = errors.join("; ");
        self.stats.undeliverable.fetch_add(1, Ordering::Relaxed);
        if any_retryable {
            // Backoff, but never sooner than a server's Retry-After asked.
            let delay = (RETRY_FIRST << n.attempts.clamp(0, 10))
                .min(RETRY_MAX)
                .max(wait_at_least);
            tracing::error!(notification = n.id, alarm_id = n.alarm, contact = %n.contact, error = %error, retry_in_ms = delay,
                "CRITICAL: no channel could deliver this page; retrying");
            self.store
                .postpone_notification(n.id, &error, now.saturating_add(delay))?;
        } else {
            tracing::error!(notification = n.id, alarm_id = n.alarm, contact = %n.contact, error = %error,
                "CRITICAL: no channel can deliver this page and retrying cannot help; fix the contact or channels");
            self.store.finish_notification(n.id, "failed", &error, now)?;
        }
        Ok(false)
    }
}
