//! The dispatcher: plan → outbox → send with fallback → record.
//!
//! Planning is a function of the store, not of events: on every pass (and at once when
//! the alarm engine announces a transition) it looks at the open alarms, works out which
//! escalation steps are due and writes the missing notifications to the outbox. Planning
//! twice, or again after a restart, writes nothing new, so no step is paged twice and
//! none is forgotten. Sending takes due notifications from the outbox, tries the planned
//! channel and then its `fallback` chain, records every attempt, and postpones with
//! exponential backoff when nothing delivered. Acknowledged or cleared alarms cancel
//! their pending pages; a cleared alarm that was paged is announced to everyone paged.
//!
//! It runs on its own thread so the store's short blocking calls never hold up the
//! daemon's sources.
//!
//! It also watches the store writer: when commits keep failing (disk full), the outbox
//! cannot take pages, so the people a critical alarm reaches first are paged straight
//! from memory, once per outage, and told again when the store takes writes; both are
//! recorded in the outbox and the audit trail afterwards ([`crate::store::outage`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::channel::{Delivery, Fate, Outgoing, Sender};
use super::escalation;
use super::message::{self, Facts, Kind};
use crate::config::Config;
use crate::config::notify::{Contact, Escalation};
use crate::config::rules::Severity;
use crate::model::{TimestampMs, format_rfc3339, now_ms};
use crate::pipeline::commit::{AlarmEvent, WriterStats};
use crate::store::alarms::{self, AlarmRow};
use crate::store::outage::{ConditionFile, Decision, OutageWatch};
use crate::store::outbox::{self, NewNotification, Notification};
use crate::store::{Store, StoreError};
pub use crate::telemetry::stats::DispatchStats;

/// How often the dispatcher plans and sends without being woken.
const PASS: Duration = Duration::from_millis(500);
/// Backoff after a pass where no channel delivered: 5 s, doubling, at most 5 min.
const RETRY_FIRST: i64 = 5_000;
const RETRY_MAX: i64 = 300_000;
/// Return-to-normal messages are planned for alarms cleared within this window.
const RTN_WINDOW: i64 = 24 * 3600 * 1000;
/// Acknowledgements by SMS answered within this window get their answer by SMS.
const REPLY_WINDOW: i64 = 3600 * 1000;

pub struct Dispatcher {
    cfg: Arc<Config>,
    store: Store,
    channels: HashMap<String, Arc<dyn Sender>>,
    tz: TimeZone,
    /// GSM modems: read for `ACK` replies and checked periodically.
    modems: Vec<Arc<super::modem::ModemChannel>>,
    /// When each notification's fate was last asked.
    fate_checked: HashMap<i64, TimestampMs>,
    /// Sent but not yet recorded (the store refused the write): never sent again,
    /// recorded as soon as the store takes it.
    unrecorded: HashMap<i64, (String, String, TimestampMs)>,
    /// Watches the store writer for an outage to page from memory.
    store_watch: Option<StoreWatch>,
    pub stats: Arc<DispatchStats>,
}

/// The dispatcher's side of a store outage.
struct StoreWatch {
    writer: Arc<WriterStats>,
    watch: OutageWatch,
    /// Where `status` reads the condition while the store cannot take it.
    condition: Option<ConditionFile>,
    /// Pages of the raised outage, sent from memory (undelivered ones are tried again).
    pages: Vec<MemoryPage>,
    /// An outage that is over and not yet recorded in the store.
    ended: Option<EndedOutage>,
}

/// A page sent without the outbox, with every attempt, to be recorded later.
struct MemoryPage {
    msg: Outgoing,
    channel: String,
    created: TimestampMs,
    attempts: Vec<(String, &'static str, String, TimestampMs)>,
    delivered: Option<(String, String, TimestampMs)>,
    next_try: TimestampMs,
}

struct EndedOutage {
    since: TimestampMs,
    until: TimestampMs,
    failures: u64,
    error: String,
    pages: Vec<MemoryPage>,
}

/// Undelivered pages of a store outage are tried again this often while it lasts.
const MEMORY_RETRY: i64 = 30_000;

/// Fates are read back for messages accepted this long ago at most, this often each.
const FATE_WINDOW: i64 = 3600 * 1000;
const FATE_EVERY: i64 = 15_000;

/// How often modems are read for inbound SMS, and checked.
const INBOX_EVERY: Duration = Duration::from_secs(5);
const HEALTH_EVERY: Duration = Duration::from_secs(300);

impl Dispatcher {
    pub fn new(cfg: Arc<Config>, store: Store, channels: HashMap<String, Arc<dyn Sender>>) -> Dispatcher {
        let tz = cfg.site.timezone.clone();
        Dispatcher {
            cfg,
            store,
            channels,
            tz,
            modems: Vec::new(),
            fate_checked: HashMap::new(),
            unrecorded: HashMap::new(),
            store_watch: None,
            stats: Arc::new(DispatchStats::default()),
        }
    }

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
        let mut out: Vec<(Contact, String)> = Vec::new();
        for step in esc.steps.iter().filter(|s| Some(s.after) == first) {
            for contact in escalation::recipients(&self.cfg.notify, step, &self.tz, now) {
                for ch in self.channels_for(&step.via, contact) {
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

    fn raise_store_outage(&mut self, w: &mut StoreWatch, since: TimestampMs, now: TimestampMs) {
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
    async fn send_from_memory(&self, page: &mut MemoryPage, now: TimestampMs) {
        let mut errors = Vec::new();
        for ch in self.chain(&page.channel) {
            let Some(sender) = self.channels.get(&ch).cloned() else {
                self.stats.count(&ch, "unavailable");
                errors.push(format!("{ch}: channel not available"));
                continue;
            };
            let result = sender.send(&page.msg).await;
            let at = now_ms();
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
    fn record_outage(&mut self, o: &EndedOutage, now: TimestampMs) -> Result<(), StoreError> {
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
        self.store.transaction(|c| {
            for p in &o.pages {
                let n = NewNotification {
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
                };
                let Some(id) = outbox::enqueue(c, &n, p.created)? else {
                    continue;
                };
                for (ch, label, detail, t) in &p.attempts {
                    outbox::record_attempt(c, id, ch, label, detail, *t)?;
                }
                match &p.delivered {
                    Some((via, detail, t)) => outbox::finish(c, id, "sent", Some(via), detail, *t)?,
                    None => outbox::finish(
                        c,
                        id,
                        "failed",
                        None,
                        "not delivered while the store refused writes",
                        now,
                    )?,
                }
                let again = NewNotification {
                    kind: "store_recovered".into(),
                    subject: subject.clone(),
                    body: body.clone(),
                    sms: sms.clone(),
                    ..n
                };
                outbox::enqueue(c, &again, now)?;
            }
            let detail = serde_json::json!({
                "since": format_rfc3339(o.since),
                "until": format_rfc3339(o.until),
                "failures": o.failures,
                "error": o.error,
                "paged": paged,
            });
            crate::store::audit::append(c, now, "store.write_failed", "daemon", &store, &detail)?;
            Ok(())
        })
    }

    /// Modems to read `ACK` replies from and to check.
    pub fn with_modems(mut self, modems: Vec<Arc<super::modem::ModemChannel>>) -> Dispatcher {
        self.modems = modems;
        self
    }

    /// Reads every modem's inbox and queues the acknowledgements found.
    pub async fn read_inbox(&mut self) {
        for m in self.modems.clone() {
            match m.receive().await {
                Ok(messages) => {
                    for sms in messages {
                        let now = now_ms();
                        let cfg = &self.cfg.notify;
                        let inbound = super::inbound::Inbound {
                            from: &sms.from,
                            text: &sms.text,
                            path: "sms",
                            via: m.id(),
                        };
                        match self.store.with_conn(|c| {
                            super::inbound::handle_sms(cfg, &inbound, |args| {
                                alarms::insert_request(c, "ack", args, now)
                            })
                        }) {
                            Ok(what) => tracing::info!(from = %sms.from, "{what}"),
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

    async fn check_modems(&self) {
        for m in &self.modems {
            match m.check().await {
                Ok(h) => tracing::debug!(health = ?h, "modem health"),
                Err(e) => {
                    tracing::error!(error = %e, "CRITICAL: the GSM modem fails its health check; SMS fallback is at risk")
                }
            }
        }
    }

    /// The escalation an alarm follows: its rule's, else the first matching route's.
    pub fn escalation_for(&self, alarm: &AlarmRow) -> Option<&Escalation> {
        let rule = self.cfg.rules.iter().find(|r| r.id == alarm.rule);
        if let Some(id) = rule.and_then(|r| r.escalation.as_deref()) {
            return self.cfg.notify.escalation(id);
        }
        self.cfg
            .notify
            .routes
            .iter()
            .find(|r| r.asset.as_deref().is_none_or(|a| a == alarm.asset) && r.takes(alarm.severity))
            .and_then(|r| self.cfg.notify.escalation(&r.escalation))
    }

    /// Whether the alarm is about the power supply itself: a UPS point read through NUT,
    /// or a sensor of an asset of kind `ups`.
    fn is_power(&self, a: &AlarmRow) -> bool {
        let ups_point = self
            .cfg
            .sensors
            .iter()
            .any(|s| s.id == a.sensor && matches!(s.source, crate::config::SensorSource::Ups(_)));
        ups_point || self.cfg.assets.iter().any(|x| x.id == a.asset && x.kind == "ups")
    }

    /// The channels a step uses for a contact: the step's `via`, or every channel that
    /// reaches the contact and is nobody's fallback.
    fn channels_for(&self, via: &[String], contact: &Contact) -> Vec<String> {
        if !via.is_empty() {
            return via.to_vec();
        }
        let fallbacks: Vec<&str> = self
            .cfg
            .notify
            .channels
            .iter()
            .filter_map(|c| c.fallback.as_deref())
            .collect();
        let mut ids = self.reaching(contact);
        ids.retain(|id| !fallbacks.contains(&id.as_str()));
        ids
    }

    /// Every configured channel that reaches the contact, in configuration order.
    fn reaching(&self, contact: &Contact) -> Vec<String> {
        self.cfg
            .notify
            .channels
            .iter()
            .filter(|c| self.channels.get(&c.id).is_some_and(|s| s.reaches(contact)))
            .map(|c| c.id.clone())
            .collect()
    }

    fn facts(&self, alarm: &AlarmRow, open: &[AlarmRow]) -> Facts {
        let mut facts = Facts::default();
        let sensors = self.store.sensors().unwrap_or_default();
        if let Some((id, _)) = sensors.get(&alarm.sensor) {
            let now = now_ms();
            let mut first: Option<(i64, f64)> = None;
            let mut last: Option<(i64, f64)> = None;
            let _ = self.store.history(*id, now - 5 * 60_000, now, |r| {
                if let (crate::model::Quality::Good, Some(v)) = (r.quality, r.value) {
                    first.get_or_insert((r.time, v));
                    last = Some((r.time, v));
                }
                true
            });
            facts.value = last.map(|(_, v)| v);
            if let (Some((t0, v0)), Some((t1, v1))) = (first, last)
                && t1 - t0 >= 60_000
            {
                facts.rate_per_min = Some((v1 - v0) / ((t1 - t0) as f64 / 60_000.0));
            }
        }
        facts.affected = open
            .iter()
            .filter(|a| a.incident == Some(alarm.id) && a.id != alarm.id)
            .map(|a| format!("{} ({})", a.asset, a.rule))
            .collect();
        let test: Option<(f64, String)> = self.store.with_conn(|c| alarms::test_of(c, alarm.id)).unwrap_or(None);
        if let Some((value, by)) = test {
            // The test's synthetic value, not the unit's real reading.
            facts.value = Some(value);
            facts.rate_per_min = None;
            facts.test_by = Some(by);
        }
        facts
    }

    /// Writes every due, missing notification to the outbox. Returns how many are new.
    pub fn plan(&mut self, now: TimestampMs) -> Result<usize, StoreError> {
        let open = self.store.with_conn(|c| alarms::query_alarms(c, true, None))?;
        let mut new = Vec::new();
        for a in &open {
            // Acknowledged and suppressed alarms are not escalated. A member of a power
            // incident is paged through the incident's alarm while that alarm is open and
            // unacknowledged — unless it is more severe than anything the incident paged
            // yet: then it pages on its own escalation as an incident update. Once
            // someone owns the incident, or power is back, a member escalates on its own.
            let incident = a.incident.filter(|i| *i != a.id).and_then(|i| {
                open.iter()
                    .find(|o| o.id == i && o.state == crate::model::AlarmState::Active)
            });
            let update = match incident {
                Some(inc) => {
                    let members = self.store.with_conn(|c| alarms::incident_members(c, inc.id))?;
                    let worse = super::incident::brings_worse(a, inc, &members, |m| self.is_power(m));
                    Some((inc, worse, members))
                }
                None => None,
            };
            let covered = matches!(update, Some((_, false, _)));
            if a.state != crate::model::AlarmState::Active || a.suppressed.is_some() || covered {
                continue;
            }
            let Some(esc) = self.escalation_for(a) else { continue };
            let Some((cycle, start)) = self.store.with_conn(|c| outbox::cycle_start(c, a.id))? else {
                continue;
            };
            let mut text = None;
            // Only the latest due occurrence of each step: after the daemon was down
            // through several rounds, each step pages once, not once per missed round.
            let mut latest: Vec<escalation::Due> = Vec::new();
            for d in escalation::due(esc, start, now) {
                match latest.iter_mut().find(|l| l.step == d.step) {
                    Some(l) if l.round < d.round => *l = d,
                    Some(_) => {}
                    None => latest.push(d),
                }
            }
            for d in latest {
                let planned = self
                    .store
                    .with_conn(|c| outbox::step_planned(c, a.id, cycle, d.round as i64, d.step as i64))?;
                if planned {
                    continue;
                }
                let text = text.get_or_insert_with(|| match &update {
                    Some((inc, _, members)) => {
                        let mut facts = self.facts(a, &open);
                        facts.incident = Some((inc.id, format!("{} {}", inc.sensor, inc.rule)));
                        facts.members = super::incident::member_lines(members);
                        message::compose(&self.cfg, a, Kind::Update, &facts, now)
                    }
                    None => message::compose(&self.cfg, a, Kind::Page, &self.facts(a, &open), now),
                });
                let step = &esc.steps[d.step];
                let contacts = escalation::recipients(&self.cfg.notify, step, &self.tz, now);
                if contacts.is_empty() {
                    tracing::error!(alarm_id = a.id, escalation = %esc.id, step = d.step, "escalation step has nobody to page");
                }
                for contact in contacts {
                    for channel in self.channels_for(&step.via, contact) {
                        new.push(NewNotification {
                            alarm: Some(a.id),
                            kind: "page".into(),
                            cycle,
                            round: d.round as i64,
                            step: d.step as i64,
                            contact: contact.id.clone(),
                            body: super::acklink::page_body(
                                &self.cfg,
                                &self.store,
                                &text.body,
                                a.id,
                                &contact.id,
                                &channel,
                                now,
                            ),
                            channel,
                            subject: text.subject.clone(),
                            sms: text.sms.clone(),
                        });
                    }
                }
            }
        }
        // Return to normal, to everyone a page of the alarm reached.
        let cleared = self
            .store
            .with_conn(|c| outbox::cleared_unannounced(c, now - RTN_WINDOW))?;
        for id in cleared {
            let Some(a) = self
                .store
                .with_conn(|c| alarms::query_alarms(c, false, Some(id)))?
                .pop()
            else {
                continue;
            };
            // A member whose incident is over is announced in the incident's return to
            // normal (the query leaves out those already announced there).
            if let Some(i) = a.incident.filter(|i| *i != a.id) {
                let over = self
                    .store
                    .with_conn(|c| alarms::query_alarms(c, false, Some(i)))?
                    .pop()
                    .is_some_and(|inc| inc.state == crate::model::AlarmState::Cleared);
                if over && !self.store.with_conn(|c| outbox::normal_planned(c, i))? {
                    continue;
                }
            }
            let members = self.store.with_conn(|c| alarms::incident_members(c, id))?;
            if super::incident::settling(&members, a.cleared_at.unwrap_or(now), now) {
                continue;
            }
            let mut facts = self.facts(&a, &open);
            if !members.is_empty() {
                // The list below says which members are still open.
                facts.affected.clear();
                facts.members = super::incident::member_lines(&members);
            }
            let text = message::compose(&self.cfg, &a, Kind::Normal, &facts, now);
            // Everyone paged for the alarm, and, for an incident, for any member this
            // message announces.
            let mut to = self.store.with_conn(|c| outbox::paged(c, id))?;
            for m in members.iter().filter(|m| m.state == crate::model::AlarmState::Cleared) {
                for r in self.store.with_conn(|c| outbox::paged(c, m.id))? {
                    if !to.contains(&r) {
                        to.push(r);
                    }
                }
            }
            for (contact, channel) in to {
                new.push(NewNotification {
                    alarm: Some(id),
                    kind: "normal".into(),
                    cycle: 0,
                    round: 0,
                    step: 0,
                    contact,
                    channel,
                    subject: text.subject.clone(),
                    body: text.body.clone(),
                    sms: text.sms.clone(),
                });
            }
        }
        // Answers to acknowledgements by SMS, once the engine's answer is on disk.
        for r in self
            .store
            .with_conn(|c| outbox::sms_acks_answered(c, now - REPLY_WINDOW))?
        {
            let text = super::inbound::answer(r.alarm, r.ok, &r.result);
            new.push(NewNotification {
                alarm: Some(r.alarm),
                kind: "reply".into(),
                cycle: r.request,
                round: 0,
                step: 0,
                contact: r.contact,
                channel: r.via,
                subject: format!("ACK {}", r.alarm),
                body: text.clone(),
                sms: text,
            });
        }
        let count = self.store.transaction(|c| {
            let mut n = 0;
            for x in &new {
                n += usize::from(outbox::enqueue(c, x, now)?.is_some());
            }
            Ok(n)
        })?;
        Ok(count)
    }

    /// Queues the scheduled test pages whose time has come (once per occurrence, and
    /// only within a grace period, so a restart does not send last week's test).
    pub fn scheduled_tests(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        for i in 0..self.cfg.test_pages.len() {
            let t = &self.cfg.test_pages[i];
            let Some(at) = crate::alarm::suppress::open_since(&t.window, &self.tz, now) else {
                continue;
            };
            let contact = t.contact.clone();
            let done = self
                .store
                .with_conn(|c| crate::store::outbox::test_page_queued(c, at, &contact))?;
            if !done {
                match self.test_page_at(&contact, now, at) {
                    Ok(ids) => tracing::info!(contact = %contact, notifications = ?ids, "scheduled test page queued"),
                    Err(e) => {
                        tracing::error!(contact = %contact, error = %e, "CRITICAL: scheduled test page cannot be sent")
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues the daily "all OK" page (`[heartbeat] all_ok_at`/`all_ok_to`) once per day,
    /// within an hour of its time, with what the monitor sees: its absence is the alarm.
    pub fn daily_all_ok(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        let Some((time, contacts)) = self.cfg.heartbeat.as_ref().and_then(|h| h.all_ok.clone()) else {
            return Ok(());
        };
        let window = crate::config::rules::Window::Daily {
            time,
            duration: std::time::Duration::from_secs(3600),
        };
        let Some(day) = crate::alarm::suppress::open_since(&window, &self.tz, now) else {
            return Ok(());
        };
        let done = self.store.with_conn(|c| crate::store::outbox::all_ok_queued(c, day))?;
        if done {
            return Ok(());
        }
        let mut rows = crate::report::status::gather(&self.cfg, &self.store, now)?;
        // The monitor's own record-integrity sensor is told apart below, not counted as a
        // sensor of the lab (its failure is an open critical alarm).
        let record = rows
            .iter()
            .position(|r| r.sensor == crate::config::monitor::RECORD_SENSOR)
            .map(|i| rows.remove(i));
        let ok = rows.iter().filter(|r| r.state == "ok").count();
        let open = self
            .store
            .with_conn(|c| crate::store::alarms::query_alarms(c, true, None))?
            .len();
        let verdict = if ok == rows.len() && open == 0 {
            "all OK"
        } else {
            "running, with problems"
        };
        let subject = format!("cryowatch {}: {verdict}", self.cfg.site.name);
        let mut body = format!(
            "{subject}\n\nThe monitor is running at {}: {ok} of {} sensors reporting normally, {open} open alarms.\n",
            crate::model::format_rfc3339(now),
            rows.len()
        );
        for r in rows.iter().filter(|r| r.state != "ok") {
            body.push_str(&format!("- {}: {}\n", r.sensor, r.state));
        }
        // The record's head, kept in every mailbox this page reaches: a trail rewritten
        // after today no longer carries it (`audit verify --anchor`).
        let checked = match record.as_ref().and_then(|r| r.value.map(|v| (v, r.time.clone()))) {
            Some((v, _)) if v == crate::config::monitor::RECORD_BROKEN => {
                "FAILS its check (see the open alarm)".to_string()
            }
            Some((_, Some(at))) => format!("verified by the monitor at {at}"),
            _ => "not checked yet since the monitor started".to_string(),
        };
        body.push_str(&format!("\nRecord: {checked}.\n"));
        if let Some((seq, hash)) = self.store.with_conn(crate::store::audit::head)? {
            body.push_str(&format!(
                "Audit trail head {seq} {hash}\n(cryowatch audit verify --anchor {seq}:{hash} proves later that the record was not rewritten since this page)\n"
            ));
        }
        body.push_str("\nThis page comes every day; if it does not, the monitor itself has failed.\n");
        let sms = format!("{subject} ({ok}/{} sensors ok, {open} alarms)", rows.len());
        for contact in &contacts {
            if let Err(e) = self.notice(contact, "all_ok", day, &subject, &body, &sms, now) {
                tracing::error!(contact = %contact, error = %e, "the daily all-OK page cannot be queued");
            }
        }
        Ok(())
    }

    /// Queues a test page to `contact` on every channel that reaches it.
    pub fn test_page(&mut self, contact: &str, now: TimestampMs) -> Result<Vec<i64>, String> {
        self.test_page_at(contact, now, now)
    }

    fn test_page_at(&mut self, contact: &str, now: TimestampMs, cycle: TimestampMs) -> Result<Vec<i64>, String> {
        let subject = format!("TEST page from cryowatch ({})", self.cfg.site.name);
        let sms = message::gsm7(&format!(
            "TEST cryowatch {}: alarm path test, no action needed.",
            self.cfg.site.name
        ));
        let name = self
            .cfg
            .notify
            .contact(contact)
            .or_else(|| self.cfg.notify.contacts.iter().find(|c| c.name == contact))
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let body = format!(
            "This is a test of the cryowatch alarm path for {name}.\nNo action is needed. Sent at {}.\n",
            crate::model::format_rfc3339(now)
        );
        self.notice(contact, "test", cycle, &subject, &body, &sms, now)
    }

    /// Queues a message that belongs to no alarm (a test page, "the monitor is down") to
    /// `contact` (id or name) on every channel that reaches them, fallbacks included.
    /// Unique per (kind, cycle, contact, channel): queuing it again is a no-op.
    #[allow(clippy::too_many_arguments)]
    pub fn notice(
        &mut self,
        contact: &str,
        kind: &str,
        cycle: TimestampMs,
        subject: &str,
        body: &str,
        sms: &str,
        now: TimestampMs,
    ) -> Result<Vec<i64>, String> {
        let c = self
            .cfg
            .notify
            .contact(contact)
            .or_else(|| self.cfg.notify.contacts.iter().find(|c| c.name == contact))
            .ok_or_else(|| format!("unknown contact {contact:?} (give its id or its name)"))?
            .clone();
        let channels = self.reaching(&c);
        if channels.is_empty() {
            return Err(format!("no channel can reach contact {contact:?}"));
        }
        let sms = message::gsm7(sms);
        self.store
            .transaction(|tx| {
                let mut ids = Vec::new();
                for ch in &channels {
                    let n = NewNotification {
                        alarm: None,
                        kind: kind.into(),
                        cycle,
                        round: 0,
                        step: 0,
                        contact: c.id.clone(),
                        channel: ch.clone(),
                        subject: subject.into(),
                        body: body.into(),
                        sms: sms.clone(),
                    };
                    ids.extend(outbox::enqueue(tx, &n, now)?);
                }
                Ok(ids)
            })
            .map_err(|e| e.to_string())
    }

    /// The channel and its fallback chain, each once.
    fn chain(&self, first: &str) -> Vec<String> {
        let mut out = vec![first.to_string()];
        let mut cur = first;
        while let Some(next) = self.cfg.notify.channel(cur).and_then(|c| c.fallback.as_deref()) {
            if out.iter().any(|o| o == next) {
                break;
            }
            out.push(next.to_string());
            cur = next;
        }
        out
    }

    /// Reads back the fate of messages gateways accepted in the last hour; a carrier
    /// rejection is recorded and the page planned again on the channel's fallback.
    pub async fn check_fates(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        let capable: Vec<String> = self.channels.keys().cloned().collect();
        let waiting = self
            .store
            .with_conn(|c| outbox::awaiting_fate(c, &capable, now - FATE_WINDOW))?;
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
                    self.store
                        .transaction(|c| outbox::record_attempt(c, n.id, &via, "fate_delivered", &text, now))?;
                }
                Ok(Fate::Failed(text)) => {
                    self.fate_checked.remove(&n.id);
                    self.stats.count(&via, "fate_failed");
                    let fallback = self.cfg.notify.channel(&via).and_then(|c| c.fallback.clone());
                    tracing::error!(notification = n.id, channel = %via, fate = %text, fallback = ?fallback,
                        "the carrier did not deliver a page");
                    self.store.transaction(|c| {
                        outbox::record_attempt(c, n.id, &via, "fate_failed", &text, now)?;
                        if let Some(f) = &fallback {
                            outbox::resend_via(c, &n, f, now)?;
                        }
                        Ok(())
                    })?;
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
            self.store.transaction(|c| {
                outbox::record_attempt(c, id, &via, "sent", &detail, at)?;
                outbox::finish(c, id, "sent", Some(&via), &detail, at)
            })?;
            self.unrecorded.remove(&id);
        }
        let due = self.store.with_conn(|c| outbox::due(c, now, 50))?;
        let mut delivered = 0;
        for n in due {
            if self.unrecorded.contains_key(&n.id) {
                continue;
            }
            if n.kind == "page"
                && let Some(reason) = self.page_obsolete(&n)?
            {
                self.store
                    .transaction(|c| outbox::finish(c, n.id, "cancelled", None, &reason, now))?;
                continue;
            }
            if self.send_one(&n).await? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Why a pending page should no longer go out (acknowledged, cleared, suppressed).
    fn page_obsolete(&self, n: &Notification) -> Result<Option<String>, StoreError> {
        let Some(id) = n.alarm else { return Ok(None) };
        let a = self
            .store
            .with_conn(|c| alarms::query_alarms(c, false, Some(id)))?
            .pop();
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

    async fn send_one(&mut self, n: &Notification) -> Result<bool, StoreError> {
        let Some(contact) = self.cfg.notify.contact(&n.contact).cloned() else {
            let now = now_ms();
            self.store
                .transaction(|c| outbox::finish(c, n.id, "failed", None, "the contact is no longer configured", now))?;
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
            let now = now_ms();
            let (label, detail) = result.record();
            self.stats.count(&ch, label);
            if let Delivery::Sent { detail } = &result {
                // Recorded in one transaction; if the store refuses, remember it so the
                // page is not sent again on the next pass.
                let recorded = self.store.transaction(|c| {
                    outbox::record_attempt(c, n.id, &ch, label, detail, now)?;
                    outbox::finish(c, n.id, "sent", Some(&ch), detail, now)
                });
                if let Err(e) = recorded {
                    tracing::error!(notification = n.id, error = %e, "page sent but not recorded yet; the store refuses writes");
                    self.unrecorded.insert(n.id, (ch.clone(), detail.clone(), now));
                }
            } else {
                self.store
                    .transaction(|c| outbox::record_attempt(c, n.id, &ch, label, &detail, now))?;
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
        let now = now_ms();
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
                .transaction(|c| outbox::postpone(c, n.id, &error, now.saturating_add(delay)))?;
        } else {
            tracing::error!(notification = n.id, alarm_id = n.alarm, contact = %n.contact, error = %error,
                "CRITICAL: no channel can deliver this page and retrying cannot help; fix the contact or channels");
            self.store
                .transaction(|c| outbox::finish(c, n.id, "failed", None, &error, now))?;
        }
        Ok(false)
    }

    /// Plans and sends until `shutdown`, woken early by alarm transitions.
    pub async fn run(mut self, shutdown: CancellationToken, mut events: broadcast::Receiver<AlarmEvent>) {
        let mut inbox = tokio::time::interval(INBOX_EVERY);
        let mut health = tokio::time::interval(HEALTH_EVERY);
        loop {
            if !self.modems.is_empty() {
                tokio::select! {
                    biased;
                    _ = health.tick() => self.check_modems().await,
                    _ = inbox.tick() => self.read_inbox().await,
                    _ = std::future::ready(()) => {}
                }
            }
            let now = now_ms();
            self.watch_store(now).await;
            if let Err(e) = self.scheduled_tests(now) {
                tracing::error!(error = %e, "planning scheduled test pages failed; retrying");
            }
            if let Err(e) = self.daily_all_ok(now) {
                tracing::error!(error = %e, "planning the daily all-OK page failed; retrying");
            }
            if let Err(e) = self.plan(now) {
                tracing::error!(error = %e, "planning notifications failed; retrying");
            }
            if let Err(e) = self.send_due(now).await {
                tracing::error!(error = %e, "sending notifications failed; retrying");
            }
            if let Err(e) = self.check_fates(now).await {
                tracing::error!(error = %e, "reading back message fates failed; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(PASS) => {}
                ev = events.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = ev {
                        tokio::time::sleep(PASS).await;
                    }
                }
            }
        }
    }
}

/// Starts the dispatcher on its own thread with its own runtime.
pub fn spawn(
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
    events: broadcast::Receiver<AlarmEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("dispatcher".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(dispatcher.run(shutdown, events)),
            Err(e) => tracing::error!(error = %e, "CRITICAL: cannot start the notification dispatcher"),
        }
    })
}
