//! Reminders of overdue physical alarm checks: a probe under an
//! `[[alarm_check_schedule]]` whose last period ended without a finished check is
//! paged, once per probe and period, to `[quality] notify`. Looked at once a minute:
//! the schedule's periods are weeks and longer.

use super::*;
use crate::alarm_check::{DueCheck, due_checks, overdue};

/// How often the schedule is looked at.
const EVERY_MS: TimestampMs = 60_000;

impl Dispatcher {
    /// Queues a reminder for every overdue check not reminded of yet.
    pub fn check_reminders(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        if self.cfg.alarm_check.schedules.is_empty() || self.cfg.quality.notify.is_empty() {
            return Ok(());
        }
        if now / EVERY_MS == self.checks_looked_at / EVERY_MS {
            return Ok(());
        }
        self.checks_looked_at = now;
        let due = due_checks(&self.cfg, &self.store, now)?;
        for d in overdue(&due) {
            if self.store.alarm_check_reminded(&d.sensor, &d.period)? {
                continue;
            }
            let pages = self.check_pages(d, now);
            if pages.is_empty() {
                tracing::error!(sensor = %d.sensor, period = %d.period, "alarm check overdue, but [quality] notify reaches nobody");
                continue;
            }
            if self.store.remind_alarm_check(&d.sensor, &d.period, &pages, now)? {
                tracing::warn!(sensor = %d.sensor, asset = %d.asset, period = %d.period, "alarm check overdue: reminder queued");
            }
        }
        Ok(())
    }

    /// One page per channel reaching each contact of `[quality] notify`.
    fn check_pages(&self, d: &DueCheck, now: TimestampMs) -> Vec<NewNotification> {
        let site = &self.cfg.site.name;
        let subject = format!(
            "REMINDER {site}: the {} alarm check of {} ({}) for {} is overdue",
            d.every, d.sensor, d.asset, d.period
        );
        let body = format!(
            "{subject}: it was due {}.\n\nA physical alarm check warms the probe until its alarm triggers and \
             records the reference thermometer's reading at that moment:\n\n  \
             cryowatch alarm-check start -c FILE --sensor {} --by USER\n  \
             cryowatch alarm-check finish -c FILE --sensor {} --reference VALUE --by USER\n",
            crate::model::format_rfc3339(d.due_at),
            d.sensor,
            d.sensor
        );
        let sms = format!(
            "REMINDER cryowatch {site}: alarm check of {} for {} is overdue",
            d.sensor, d.period
        );
        self.pages_to(
            &self.cfg.quality.notify,
            Page::about("alarm-check-overdue", None, d.due_at),
            now,
            (&subject, &body, &sms),
        )
    }
}
