//! The store-outage pager: while commits keep failing the outbox cannot take pages, so
//! the first responders of a critical alarm are paged from memory, once per outage, and
//! the outage and its pages are recorded once the store takes writes again.

use super::*;

impl Dispatcher {
    /// Watches the store writer's failures: a store that cannot write is raised as a
    /// critical local condition (log, systemd status, `condition` for `status`) and
    /// paged from memory.
    pub fn with_store_watch(mut self, writer: Arc<WriterStats>, condition: Option<ConditionFile>) -> Dispatcher {
        self.store_watch = Some(StoreWatch {
            writer,
            watch: OutageWatch::new(crate::store::outage::RAISE_AFTER),
            condition,
            pages: Vec::new(),
            ended: None,
        });
        self
    }

    /// The escalation a critical alarm with no asset of its own follows: the first route
    /// for every asset that takes critical alarms, else the first route that does, else
    /// the escalation of the first critical rule that names one.
    pub fn critical_escalation(&self) -> Option<&Escalation> {
        let takes = |r: &&crate::config::notify::Route| r.takes(Severity::Critical);
        let routes = &self.cfg.notify.routes;
        routes
            .iter()
            .filter(takes)
            .find(|r| r.asset.is_none())
            .or_else(|| routes.iter().find(takes))
            .and_then(|r| self.cfg.notify.escalation(&r.escalation))
            .or_else(|| {
                self.cfg
                    .rules
                    .iter()
                    .filter(|r| r.severity == Severity::Critical)
                    .find_map(|r| r.escalation.as_deref())
                    .and_then(|id| self.cfg.notify.escalation(id))
            })
    }

    /// Who a critical alarm reaches first, and on which channels: the recipients of the
    /// earliest step(s) of [`Dispatcher::critical_escalation`] at `now`.
    pub fn first_responders(&self, now: TimestampMs) -> Vec<(Contact, String)> {
        let Some(esc) = self.critical_escalation() else {
            return Vec::new();
        };
        let first = esc.steps.iter().map(|s| s.after).min();
        let reaching = |c: &Contact| self.reaching(c);
        let policy = self.policy(&reaching);
        let mut out: Vec<(Contact, String)> = Vec::new();
        for step in esc.steps.iter().filter(|s| Some(s.after) == first) {
            for contact in escalation::recipients(&self.cfg.notify, step, &self.tz, now) {
                for ch in policy.channels_for(&step.via, contact) {
                    if !out.iter().any(|(c, x)| c.id == contact.id && *x == ch) {
                        out.push((contact.clone(), ch));
                    }
                }
            }
        }
        out
    }

    /// Looks at the store writer: raises and pages a store outage, tries undelivered
    /// outage pages again, and records an ended outage once the store takes writes.
    pub async fn watch_store(&mut self, now: TimestampMs) {
        let Some(mut w) = self.store_watch.take() else { return };
        let failing = w.writer.failing_since();
        match w.watch.observe(now, failing) {
            Some(Decision::Raise { since }) => self.raise_store_outage(&mut w, since, now),
            Some(Decision::Recovered { since, until }) => {
                let failures = w.writer.failures.load(Ordering::Relaxed);
                tracing::warn!(
                    since = %format_rfc3339(since),
                    until = %format_rfc3339(until),
                    outage_ms = until - since,
                    failures_total = failures,
                    "the store takes writes again; recording the outage and telling those paged"
                );
                let text = format!(
                    "running; the store refused writes from {} to {}",
                    format_rfc3339(since),
                    format_rfc3339(until)
                );
                crate::service::status(&text);
                if let Some(f) = &w.condition
                    && let Err(e) = f.set("")
                {
                    tracing::warn!(error = %e, "cannot clear the store condition file");
                }
                w.ended = Some(EndedOutage {
                    since,
                    until,
                    failures,
                    error: w.writer.last_error(),
                    pages: std::mem::take(&mut w.pages),
                });
            }
            None => {}
        }
        if w.watch.raised().is_some() {
            for i in 0..w.pages.len() {
                if w.pages[i].delivered.is_none() && w.pages[i].next_try <= now {
                    self.send_from_memory(&mut w.pages[i], now).await;
                }
            }
        }
        if failing.is_none()
            && let Some(ended) = w.ended.take()
        {
            match self.record_outage(&ended, now) {
                Ok(()) => tracing::info!(
                    since = %format_rfc3339(ended.since),
                    pages = ended.pages.len(),
                    "store outage recorded in the audit trail and the outbox"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot record the store outage yet; retrying");
                    w.ended = Some(ended);
                }
            }
        }
        self.store_watch = Some(w);
    }

    pub(super) fn raise_store_outage(&mut self, w: &mut StoreWatch, since: TimestampMs, now: TimestampMs) {
        let failures = w.writer.failures.load(Ordering::Relaxed);
        let error = w.writer.last_error();
        let store = self.cfg.store.path.display().to_string();
        let people = self.first_responders(now);
        let condition = format!(
            "CRITICAL: the store {store} cannot write since {} ({failures} failed commits): {error}",
            format_rfc3339(since)
        );
        tracing::error!(
            since = %format_rfc3339(since),
            failing_for_ms = now - since,
            failures_total = failures,
            error = %error,
            store = %store,
            paging = ?people.iter().map(|(c, ch)| format!("{}/{ch}", c.id)).collect::<Vec<_>>(),
            "CRITICAL: the store cannot write; readings are held by the sources, alarms are not evaluated; paging from memory"
        );
        if people.is_empty() {
            tracing::error!(
                "CRITICAL: no route or escalation reaches anyone for a critical alarm: nobody can be paged about the store"
            );
        }
        crate::service::status(&condition);
        if let Some(f) = &w.condition
            && let Err(e) = f.set(&condition)
        {
            tracing::warn!(error = %e, "cannot write the store condition file");
        }
        let site = &self.cfg.site.name;
        let subject = format!("CRITICAL: cryowatch {site} cannot write its store");
        let body = format!(
            "{subject}.\n\nSince {} the store {store} refuses writes ({failures} failed commits so far).\n\
             Last error: {error}\n\n\
             While this lasts, readings wait at their sources (MQTT messages stay with the broker), alarms \
             are not evaluated and no other page can be queued. Free space on the store's filesystem or \
             repair it; cryowatch resumes by itself and sends a message when the store takes writes again.\n\n\
             This page was sent without the outbox; it is recorded in the audit trail once the store \
             takes writes.\n",
            format_rfc3339(since)
        );
        let sms = message::gsm7(&format!(
            "CRIT cryowatch {site}: store cannot write since {} ({}). Readings not stored, alarms not evaluated. Free disk space.",
            format_rfc3339(since),
            error.chars().take(40).collect::<String>()
        ));
        w.pages = people
            .into_iter()
            .enumerate()
            .map(|(i, (contact, channel))| MemoryPage {
                // Not an outbox row: a negative id, unique per outage and recipient, keeps
                // Message-IDs and idempotency keys apart from the outbox's.
                msg: Outgoing {
                    id: -(since.saturating_mul(100).saturating_add(i as i64 % 100)),
                    contact,
                    subject: subject.clone(),
                    text: body.clone(),
                    sms: sms.clone(),
                    alarm: None,
                },
                channel,
                created: now,
                attempts: Vec::new(),
                delivered: None,
                next_try: now,
            })
            .collect();
    }

    /// Sends one outage page on its channel and then its fallbacks, remembering every
    /// attempt.
    pub(super) async fn send_from_memory(&self, page: &mut MemoryPage, now: TimestampMs) {
        let mut errors = Vec::new();
        for ch in self.chain(&page.channel) {
            let Some(sender) = self.channels.get(&ch).cloned() else {
                self.stats.count(&ch, "unavailable");
                errors.push(format!("{ch}: channel not available"));
                continue;
            };
            let result = sender.send(&page.msg).await;
            let at = (self.clock)();
            let (label, detail) = result.record();
            self.stats.count(&ch, label);
            page.attempts.push((ch.clone(), label, detail.clone(), at));
            if result.is_sent() {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(contact = %page.msg.contact.id, channel = %ch, detail = %detail,
                    "store outage paged from memory");
                page.delivered = Some((ch, detail, at));
                return;
            }
            if let Delivery::Failed { .. } = result {
                self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
            errors.push(format!("{ch}: {detail}"));
        }
        self.stats.undeliverable.fetch_add(1, Ordering::Relaxed);
        page.next_try = now + MEMORY_RETRY;
        tracing::error!(contact = %page.msg.contact.id, error = %errors.join("; "), retry_in_ms = MEMORY_RETRY,
            "CRITICAL: no channel could deliver the store outage page; retrying");
    }

    /// Records an ended outage in one transaction: each page sent from memory as an
    /// outbox row with its attempts, the outage in the audit trail, and the "store takes
    /// writes again" message queued in the outbox for everyone paged.
    pub(super) fn record_outage(&mut self, o: &EndedOutage, now: TimestampMs) -> Result<(), StoreError> {
        let site = &self.cfg.site.name;
        let store = self.cfg.store.path.display().to_string();
        let subject = format!("cryowatch {site}: the store takes writes again");
        let body = format!(
            "{subject}.\n\nThe store {store} refused writes from {} to {} ({} s, {} failed commits; last error: {}).\n\
             Readings held at their sources during that time are being stored now, and alarms are evaluated again.\n",
            format_rfc3339(o.since),
            format_rfc3339(o.until),
            (o.until - o.since) / 1000,
            o.failures,
            o.error
        );
        let sms = message::gsm7(&format!(
            "OK cryowatch {site}: store takes writes again (outage {} s). Readings resume.",
            (o.until - o.since) / 1000
        ));
        let paged: Vec<serde_json::Value> = o
            .pages
            .iter()
            .map(|p| {
                serde_json::json!({
                    "contact": p.msg.contact.id,
                    "channel": p.channel,
                    "via": p.delivered.as_ref().map(|d| d.0.clone()),
                    "delivered": p.delivered.is_some(),
                })
            })
            .collect();
        let pages = o
            .pages
            .iter()
            .map(|p| crate::store::outage::MemoryPageRecord {
                page: NewNotification {
                    alarm: None,
                    kind: "store_failure".into(),
                    cycle: o.since,
                    round: 0,
                    step: 0,
                    contact: p.msg.contact.id.clone(),
                    channel: p.channel.clone(),
                    subject: p.msg.subject.clone(),
                    body: p.msg.text.clone(),
                    sms: p.msg.sms.clone(),
                },
                created: p.created,
                attempts: &p.attempts,
                delivered: p.delivered.as_ref(),
            })
            .collect();
        let recovered = |n: NewNotification| NewNotification {
            kind: "store_recovered".into(),
            subject: subject.clone(),
            body: body.clone(),
            sms: sms.clone(),
            ..n
        };
        let detail = serde_json::json!({
            "since": format_rfc3339(o.since),
            "until": format_rfc3339(o.until),
            "failures": o.failures,
            "error": o.error,
            "paged": paged,
        });
        self.store.record_outage(pages, recovered, &store, &detail, now)
    }
}
