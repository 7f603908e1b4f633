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
//!
//! Its stages, one file each: `decide` (what is due: a pure function of the store's
//! facts and the time), `plan` (facts → decisions → texts → outbox), `send` (outbox → channels
//! with fallback, and delivery fates read back), `outage` (the store-outage pager),
//! `scheduled` (test pages, the daily all-OK page, notices) and `inbox` (SMS replies
//! read from the modems).

mod check_reminders;
pub mod decide;
mod inbox;
mod outage;
mod plan;
mod reminders;
mod reviews;
mod scheduled;
mod send;

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
use crate::store::alarms::AlarmRow;
use crate::store::outage::{ConditionFile, Decision, OutageWatch};
use crate::store::outbox::{NewNotification, Notification};
use crate::store::{Store, StoreError};
pub use crate::telemetry::stats::DispatchStats;

/// How often the dispatcher plans and sends without being woken.
const PASS: Duration = Duration::from_millis(500);
/// Backoff after a pass where no channel delivered: 5 s, doubling, at most 5 min.
const RETRY_FIRST: i64 = 5_000;
const RETRY_MAX: i64 = 300_000;
/// How far back a page looks for the trend it names.
const TREND_MS: i64 = 30 * 60_000;
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
    /// What time it is: the wall clock, or a test's.
    clock: Clock,
    /// When the alarm check schedule was last looked at for overdue checks.
    checks_looked_at: TimestampMs,
}

/// Where the dispatcher reads the time: every stage is given `now` from it.
pub type Clock = Arc<dyn Fn() -> TimestampMs + Send + Sync>;

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
            checks_looked_at: TimestampMs::MIN,
            unrecorded: HashMap::new(),
            store_watch: None,
            stats: Arc::new(DispatchStats::default()),
            clock: Arc::new(now_ms),
        }
    }

    /// Reads the time from `clock` instead of the wall clock (tests drive it with
    /// `tokio::time::pause`).
    pub fn with_clock(mut self, clock: Clock) -> Dispatcher {
        self.clock = clock;
        self
    }

    /// Modems to read `ACK` replies from and to check.
    pub fn with_modems(mut self, modems: Vec<Arc<super::modem::ModemChannel>>) -> Dispatcher {
        self.modems = modems;
        self
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

    /// What a page says besides the alarm itself: value and rate of the last five
    /// minutes, where the last half hour's trend leads, the units an incident affects,
    /// the synthetic value of a test.
    fn facts(&self, alarm: &AlarmRow, open: &[AlarmRow], now: TimestampMs) -> Facts {
        let mut facts = Facts::default();
        let sensors = self.store.sensors().unwrap_or_default();
        if let Some((id, _)) = sensors.get(&alarm.sensor) {
            let (look, need) = self.trend_window(&alarm.sensor);
            let mut samples: Vec<(i64, f64)> = Vec::new();
            let _ = self.store.history(*id, now - look.max(5 * 60_000), now, |r| {
                if let (crate::model::Quality::Good, Some(v)) = (r.quality, r.value) {
                    samples.push((r.time, v));
                }
                true
            });
            let last = samples.last().copied();
            let first = samples.iter().find(|(t, _)| *t >= now - 5 * 60_000).copied();
            facts.value = last.map(|(_, v)| v);
            if let (Some((t0, v0)), Some((t1, v1))) = (first, last)
                && t1 - t0 >= 60_000
            {
                facts.rate_per_min = Some((v1 - v0) / ((t1 - t0) as f64 / 60_000.0));
            }
            let recent = samples.partition_point(|(t, _)| *t < now - look);
            facts.forecast = self.heading(&alarm.sensor, samples.get(recent..).unwrap_or_default(), need);
        }
        facts.affected = open
            .iter()
            .filter(|a| a.incident == Some(alarm.id) && a.id != alarm.id)
            .map(|a| format!("{} ({})", a.asset, a.rule))
            .collect();
        let test: Option<(f64, String)> = self.store.test_of(alarm.id).unwrap_or(None);
        if let Some((value, by)) = test {
            // The test's synthetic value, not the unit's real reading.
            facts.value = Some(value);
            facts.rate_per_min = None;
            facts.test_by = Some(by);
        }
        facts
    }

    /// How far back a page of `sensor` looks for its trend, and the least span of
    /// readings that makes one: the sensor's shortest forecast window and half of it, or
    /// else the last half hour and ten minutes.
    fn trend_window(&self, sensor: &str) -> (i64, i64) {
        let window = self.cfg.sensor_index(sensor).and_then(|si| {
            self.cfg
                .rules
                .iter()
                .filter(|r| r.sensor == si)
                .filter_map(|r| match r.condition {
                    crate::config::rules::Condition::Forecast { window, .. } => Some(crate::model::millis(window)),
                    _ => None,
                })
                .min()
        });
        match window {
            Some(w) => (w, w / 2),
            None => (TREND_MS, 10 * 60_000),
        }
    }

    /// Where a measured sensor's trend leads: the next limit of its rules ahead of it,
    /// once the readings span `need`. None for discrete sensors.
    fn heading(&self, sensor: &str, samples: &[(i64, f64)], need: i64) -> Option<(f64, i64)> {
        let si = self.cfg.sensor_index(sensor)?;
        if self.cfg.sensors.get(si)?.states.is_some() {
            return None;
        }
        let span = samples.last()?.0 - samples.first()?.0;
        if span < need {
            return None;
        }
        let limits: Vec<f64> = self
            .cfg
            .rules
            .iter()
            .filter(|r| r.sensor == si)
            .filter_map(|r| match r.condition {
                crate::config::rules::Condition::High { threshold, .. }
                | crate::config::rules::Condition::Low { threshold, .. }
                | crate::config::rules::Condition::Forecast { threshold, .. } => Some(threshold),
                _ => None,
            })
            .collect();
        let fit = crate::alarm::forecast::fit(samples)?;
        crate::alarm::forecast::next_threshold(&fit, &limits)
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
            let now = (self.clock)();
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
            if let Err(e) = self.deviation_reminders(now) {
                tracing::error!(error = %e, "planning reminders of open deviations failed; retrying");
            }
            if let Err(e) = self.review_pages(now) {
                tracing::error!(error = %e, "sending periodic reviews failed; retrying");
            }
            if let Err(e) = self.check_reminders(now) {
                tracing::error!(error = %e, "reminding of overdue alarm checks failed; retrying");
            }
            match self.store.abandon_overdue_alarm_checks(now) {
                Ok(ended) => {
                    for a in ended {
                        tracing::warn!(alarm_check = a.id, sensor = %a.sensor, "alarm check not finished in time: abandoned");
                    }
                }
                Err(e) => tracing::error!(error = %e, "ending overdue alarm checks failed; retrying"),
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

/// What a page that belongs to no escalation is about (a reminder, a review): its kind,
/// its alarm if any, and the cycle that keeps it unique in the outbox.
pub(super) struct Page<'a> {
    kind: &'a str,
    alarm: Option<crate::model::AlarmId>,
    cycle: i64,
}

impl<'a> Page<'a> {
    pub(super) fn about(kind: &'a str, alarm: Option<crate::model::AlarmId>, cycle: i64) -> Page<'a> {
        Page { kind, alarm, cycle }
    }
}

impl Dispatcher {
    /// One page per channel reaching each contact of `targets` (on call at `now`).
    pub(super) fn pages_to(
        &self,
        targets: &[crate::config::notify::Target],
        page: Page<'_>,
        now: TimestampMs,
        (subject, body, sms): (&str, &str, &str),
    ) -> Vec<NewNotification> {
        let mut pages = Vec::new();
        for c in crate::notify::escalation::contacts_of(&self.cfg.notify, targets, &self.tz, now) {
            for channel in self.reaching(c) {
                pages.push(NewNotification {
                    alarm: page.alarm,
                    kind: page.kind.into(),
                    cycle: page.cycle,
                    round: 0,
                    step: 0,
                    contact: c.id.clone(),
                    channel,
                    subject: subject.to_string(),
                    body: body.to_string(),
                    sms: message::gsm7(sms),
                });
            }
        }
        pages
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
