//! Reminders of open deviations: an alarm that cleared `[quality] close_within` ago and
//! still has no signed corrective action is paged, once, to `[quality] notify`.

use super::*;

impl Dispatcher {
    /// Queues a reminder for every open deviation past `[quality] close_within` that has
    /// none yet: one query a pass, which finds nothing while all is closed or reminded.
    pub fn deviation_reminders(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        if self.cfg.quality.notify.is_empty() {
            return Ok(());
        }
        let within = self.cfg.quality.close_within;
        let due_rows = self.store.reminders_due(crate::model::earlier(now, within))?;
        if due_rows.is_empty() {
            return Ok(());
        }
        for a in due_rows {
            let Some(cleared) = a.cleared_at else { continue };
            let due = crate::model::later(cleared, within);
            let subject = format!(
                "REMINDER {}: alarm {} ({} on {}) cleared {} and is not closed",
                self.cfg.site.name,
                a.id,
                a.rule,
                a.sensor,
                crate::model::format_rfc3339(cleared)
            );
            let body = format!(
                "{subject}.\n\nEvery excursion needs a corrective action signed by the person who closes it: \
                 the reason, what was done, and whether stored product was affected.\n\n  \
                 cryowatch close -c FILE {} --by USER --reason CODE --action TEXT [--impact none|assessed|quarantined]\n\n\
                 Open deviations: cryowatch alarms -c FILE --open-deviations\n",
                a.id
            );
            let sms = format!(
                "REMINDER cryowatch {}: alarm {} on {} is not closed; sign its corrective action",
                self.cfg.site.name, a.id, a.sensor
            );
            let new = self.pages_to(
                &self.cfg.quality.notify,
                Page::about("reminder", Some(a.id), due),
                now,
                (&subject, &body, &sms),
            );
            if new.is_empty() {
                tracing::error!(
                    alarm_id = a.id,
                    "open deviation past close_within, but [quality] notify reaches nobody"
                );
                continue;
            }
            let ids = self.store.enqueue_new(&new, now)?;
            tracing::warn!(alarm_id = a.id, notifications = ?ids, "open deviation past close_within: reminder queued");
        }
        Ok(())
    }
}
