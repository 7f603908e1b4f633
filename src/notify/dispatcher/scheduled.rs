//! Scheduled pages: test pages of `[[test_page]]` windows, the daily all-OK page, manual
//! test pages and notices.

use super::*;

impl Dispatcher {
    /// Queues the scheduled test pages whose time has come (once per occurrence, and
    /// only within a grace period, so a restart does not send last week's test).
    pub fn scheduled_tests(&mut self, now: TimestampMs) -> Result<(), StoreError> {
        for i in 0..self.cfg.test_pages.len() {
            let t = &self.cfg.test_pages[i];
            let Some(at) = crate::alarm::suppress::open_since(&t.window, &self.tz, now) else {
                continue;
            };
            let contact = t.contact.clone();
            let done = self.store.test_page_queued(at, &contact)?;
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
        let done = self.store.all_ok_queued(day)?;
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
        let open = self.store.alarms(true)?.len();
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
        if let Some((seq, hash)) = self.store.audit_head()? {
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

    pub(super) fn test_page_at(
        &mut self,
        contact: &str,
        now: TimestampMs,
        cycle: TimestampMs,
    ) -> Result<Vec<i64>, String> {
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
        let new: Vec<NewNotification> = channels
            .iter()
            .map(|ch| NewNotification {
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
            })
            .collect();
        self.store.enqueue_new(&new, now).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ms(s: &str) -> TimestampMs {
        s.parse::<jiff::Timestamp>().expect("time").as_millisecond()
    }

    /// A dispatcher of a Berlin site whose `[[test_page]]` to alice is `every`.
    fn dispatcher(dir: &std::path::Path, every: &str) -> Dispatcher {
        let path = dir.join("cryowatch.toml");
        let text = format!(
            r#"[site]
name = "scheduled"
timezone = "Europe/Berlin"
[store]
path = "{store}/cryowatch.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "t"
[[contact]]
id = "alice"
email = "alice@example.org"
[[test_page]]
contact = "alice"
every = "{every}"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = 1
tls = "none"
from = "cw@example.org"
"#,
            store = dir.display()
        );
        std::fs::write(&path, text).expect("config");
        let cfg = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&cfg.store.path).expect("store");
        let senders = crate::notify::channels::build(&cfg.notify, None).senders;
        Dispatcher::new(Arc::new(cfg), store, senders)
    }

    /// The cycles (the occurrences) of the test pages queued so far.
    fn test_pages(d: &Dispatcher) -> Vec<TimestampMs> {
        d.store
            .notifications(None)
            .expect("outbox")
            .into_iter()
            .filter(|n| n.kind == "test")
            .map(|n| n.cycle)
            .collect()
    }

    #[test]
    fn a_quarterly_test_page_is_queued_once_at_each_occurrence() {
        let dir = tempfile::tempdir().expect("dir");
        let mut d = dispatcher(dir.path(), "1st Mon of Jan,Apr,Jul,Oct 10:00");
        // 2026-10-05 10:00 Berlin (summer time) is 08:00 UTC; 2027-01-04 10:00 is 09:00 UTC.
        let october = ms("2026-10-05T08:00:00Z");
        let january = ms("2027-01-04T09:00:00Z");
        for t in [
            "2026-10-05T07:59:00Z", // before its time
            "2026-10-05T08:00:30Z", // due
            "2026-10-05T08:05:00Z", // again within the grace: nothing more
            "2026-10-05T08:11:00Z", // past the grace
            "2026-11-02T09:00:30Z", // 1st Monday of November: not a quarter
            "2026-12-07T09:00:30Z",
            "2027-01-04T09:00:10Z", // the next quarter, across the year
            "2027-01-04T09:02:00Z",
        ] {
            d.scheduled_tests(ms(t)).expect("scheduled tests");
        }
        assert_eq!(test_pages(&d), vec![october, january]);
    }
}
