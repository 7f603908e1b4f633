//! Reading the record into [`Counted`] records: the period's alarms, notifications,
//! alarm tests and readings, each turned into the records of the figures it counts in
//! (see [`Figure`] for each definition).

use jiff::tz::TimeZone;

use super::calendar::{hour_of, month_of, months, occurrences};
use super::{Counted, Figure, Indicators, summarize};
use crate::config::Config;
use crate::config::rules::Condition;
use crate::model::{TimestampMs, format_rfc3339};
use crate::report::asset::fmt_duration;
use crate::report::asset::people::person;
use crate::store::indicators::{AlarmRecord, PageRecord};
use crate::store::{Store, StoreError};

const DAY_MS: f64 = 86_400_000.0;

/// The period asked for: `from..to`, generated at `now` (test pages due only up to now).
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub now: TimestampMs,
}

/// Reads the record of `req`'s period and computes every figure.
pub fn gather(cfg: &Config, store: &Store, req: Request) -> Result<Indicators, StoreError> {
    let Request { from, to, now } = req;
    let tz = &cfg.site.timezone;
    let (alarms, pages, tests) = store.snapshot(|s| {
        Ok((
            s.indicator_alarms(from, to)?,
            s.indicator_pages(from, to)?,
            s.tests_between(from, to)?,
        ))
    })?;
    let nuisance_ms = crate::model::millis(cfg.quality.nuisance_within);
    let base = Base { cfg, tz };
    let mut records = Vec::new();
    // Each month's end within the period: open deviations are counted as they stood then.
    let month_ends: Vec<TimestampMs> = months(from, to, tz)
        .iter()
        .filter_map(|m| super::calendar::month_span(m, tz))
        .map(|(_, end)| end.min(to))
        .collect();
    for a in &alarms {
        base.alarm(a, &pages, (from, to), nuisance_ms, &mut records);
        base.open_deviation(a, &month_ends, &mut records);
    }
    for p in &pages {
        base.page(p, &mut records);
    }
    for t in tests.iter().filter(|t| t.started_at < to) {
        let asset = base.asset_of_sensor(&t.sensor);
        let mut r = base.record(Figure::AlarmTest, t.started_at, &asset, format!("alarm test {}", t.id));
        r.rule = t.rule.clone();
        r.contact = person(cfg, &t.by);
        r.detail = format!(
            "{} at {}: alarm {}, {} pages delivered",
            t.sensor,
            format_rfc3339(t.started_at),
            t.alarm.map_or_else(|| "?".into(), |a| a.to_string()),
            t.pages
        );
        records.push(r);
    }
    base.test_pages_due(&pages, from, to.min(now), &mut records);
    for month in months(from, to, tz) {
        base.readings(store, &month, from, to, &mut records)?;
    }
    base.calibration(store, to, &mut records)?;
    base.alarm_checks(store, from, to.min(now), &mut records)?;
    Ok(Indicators {
        site: cfg.site.name.clone(),
        from,
        to,
        timezone: tz.iana_name().unwrap_or("UTC").to_string(),
        generated_at: now,
        nuisance_within_s: cfg.quality.nuisance_within.as_secs(),
        months: months(from, to, tz),
        summaries: summarize(&records),
        records,
    })
}

impl Base<'_> {
    /// Each physical alarm check started in `from..until` and ended, and each scheduled
    /// probe's period that ended in `from..=until`.
    fn alarm_checks(
        &self,
        store: &Store,
        from: TimestampMs,
        until: TimestampMs,
        out: &mut Vec<Counted>,
    ) -> Result<(), StoreError> {
        use crate::store::quality::alarm_check::CheckState;
        let checks = store.alarm_checks()?;
        for a in checks.iter().filter(|a| a.started_at >= from && a.started_at < until) {
            if a.state == CheckState::Running {
                continue;
            }
            let asset = self.asset_of_sensor(&a.sensor);
            let mut r = self.record(
                Figure::AlarmCheck,
                a.started_at,
                &asset,
                format!("alarm check {}", a.id),
            );
            r.rule = a.rule.clone().unwrap_or_default();
            r.contact = person(self.cfg, &a.started_by);
            r.value = if a.state == CheckState::Passed { 1.0 } else { 0.0 };
            r.detail = format!(
                "{}: {}; difference {}",
                a.sensor,
                a.state.as_str(),
                a.difference.map_or_else(|| "-".into(), |d| format!("{d:+}"))
            );
            out.push(r);
        }
        for d in crate::alarm_check::periods_ended(self.cfg, store, from, until)? {
            let done = checks.iter().find(|a| {
                a.sensor == d.sensor && crate::alarm_check::counts(a) && (d.from..d.to).contains(&a.started_at)
            });
            let mut r = self.record(
                Figure::AlarmCheckDue,
                d.to.saturating_sub(1),
                &d.asset,
                format!("{} {} {}", d.sensor, d.every, d.label),
            );
            r.value = if done.is_some() { 1.0 } else { 0.0 };
            r.detail = match done {
                Some(a) => format!("done: alarm check {} ({})", a.id, a.state.as_str()),
                None => "no alarm check finished in the period".into(),
            };
            out.push(r);
        }
        Ok(())
    }

    /// Each probe watched by `[calibration]` or with a calibration on record, as it
    /// stood at `to`: the newest certificate recorded before then.
    fn calibration(&self, store: &Store, to: TimestampMs, out: &mut Vec<Counted>) -> Result<(), StoreError> {
        let cfg = self.cfg;
        let mut probes: Vec<String> = cfg
            .calibration
            .iter()
            .flat_map(|c| c.sensors.iter())
            .filter_map(|&si| match cfg.sensors.get(si)?.source {
                crate::config::SensorSource::Calibration(w) => cfg.sensors.get(w).map(|s| s.id.clone()),
                _ => None,
            })
            .collect();
        for c in store.latest_calibrations()? {
            if !probes.contains(&c.record.sensor) {
                probes.push(c.record.sensor);
            }
        }
        probes.sort();
        let last = to.saturating_sub(1);
        for probe in probes {
            let latest = store.calibrations_of(&probe)?.into_iter().rev().find(|c| c.t < to);
            let status = crate::calibration::status(cfg, latest.as_ref(), last);
            let asset = self.asset_of_sensor(&probe);
            let record = latest
                .as_ref()
                .map_or_else(|| format!("sensor {probe}"), |c| format!("calibration {}", c.id));
            let mut r = self.record(Figure::Calibration, last, &asset, record);
            r.value = if matches!(status, "ok" | "due soon") { 1.0 } else { 0.0 };
            r.detail = match &latest {
                Some(c) => format!(
                    "{probe}: {status}; certificate {}, calibrated {}, due {}",
                    c.record.certificate, c.record.calibrated, c.record.due
                ),
                None => format!("{probe}: {status}; no calibration on record"),
            };
            out.push(r);
        }
        Ok(())
    }
}

struct Base<'a> {
    cfg: &'a Config,
    tz: &'a TimeZone,
}

impl Base<'_> {
    fn record(&self, figure: Figure, t: TimestampMs, asset: &str, record: String) -> Counted {
        Counted {
            figure,
            month: month_of(t, self.tz),
            asset: asset.to_string(),
            rule: String::new(),
            contact: String::new(),
            hour: None,
            value: 1.0,
            of: None,
            record,
            detail: String::new(),
        }
    }

    fn asset_of_sensor(&self, sensor: &str) -> String {
        self.cfg
            .sensors
            .iter()
            .find(|s| s.id == sensor)
            .and_then(|s| self.cfg.assets.get(s.asset))
            .map(|a| a.id.clone())
            .unwrap_or_default()
    }

    /// Whether `rule` watches a limit (not staleness or a device fault); a rule no
    /// longer configured is counted as one.
    fn is_limit(&self, rule: &str) -> bool {
        match self.cfg.rules.iter().find(|r| r.id == rule) {
            Some(r) => !matches!(r.condition, Condition::Stale { .. } | Condition::Fault),
            None => true,
        }
    }

    /// An alarm's open deviation at each of `month_ends` at which it had cleared and was
    /// not yet closed, counted in the month that ends there.
    fn open_deviation(&self, rec: &AlarmRecord, month_ends: &[TimestampMs], out: &mut Vec<Counted>) {
        let a = &rec.alarm;
        let Some(cleared) = a.cleared_at.filter(|_| !rec.test) else {
            return;
        };
        for &end in month_ends {
            if cleared >= end || rec.closed_at.is_some_and(|c| c < end) {
                continue;
            }
            let mut r = self.record(
                Figure::OpenDeviation,
                end.saturating_sub(1),
                &a.asset,
                format!("alarm {}", a.id),
            );
            r.rule = a.rule.clone();
            r.hour = hour_of(a.raised_at, self.tz);
            r.value = end.saturating_sub(cleared) as f64 / DAY_MS;
            r.detail = format!(
                "cleared {}, open {} at {}",
                format_rfc3339(cleared),
                fmt_duration(end.saturating_sub(cleared)),
                format_rfc3339(end)
            );
            out.push(r);
        }
    }

    /// The records of one alarm: its own, its excursion, acknowledgement, escalation and
    /// nuisance.
    fn alarm(
        &self,
        rec: &AlarmRecord,
        pages: &[PageRecord],
        (from, to): (TimestampMs, TimestampMs),
        nuisance_ms: i64,
        out: &mut Vec<Counted>,
    ) {
        if rec.test {
            return;
        }
        let a = &rec.alarm;
        let base = |figure: Figure, t: TimestampMs| {
            let mut r = self.record(figure, t, &a.asset, format!("alarm {}", a.id));
            r.rule = a.rule.clone();
            r.hour = hour_of(a.raised_at, self.tz);
            r
        };
        let raised = format_rfc3339(a.raised_at);
        if a.raised_at < from {
            return;
        }
        let mut r = base(Figure::Alarm, a.raised_at);
        r.detail = format!("{} {} on {}, raised {raised}", a.severity.as_str(), a.rule, a.sensor);
        out.push(r);
        if self.is_limit(&a.rule) {
            let end = rec.returned_at.or(a.cleared_at).unwrap_or(to).min(to);
            let mut r = base(Figure::Excursion, a.raised_at);
            r.value = end.saturating_sub(a.since).max(0) as f64 / 60_000.0;
            r.detail = format!(
                "condition from {} to {} ({})",
                format_rfc3339(a.since),
                format_rfc3339(end),
                fmt_duration(end.saturating_sub(a.since))
            );
            out.push(r);
        }
        match (a.acked_at.filter(|t| *t < to), &a.acked_by) {
            (Some(at), Some(by)) => {
                let mut r = base(Figure::Ack, a.raised_at);
                r.contact = person(self.cfg, by);
                r.value = at.saturating_sub(a.raised_at) as f64 / 1000.0;
                r.detail = format!(
                    "active {raised}, acknowledged {} via {}",
                    format_rfc3339(at),
                    a.ack_path.as_deref().unwrap_or("?")
                );
                out.push(r);
            }
            _ => {
                let mut r = base(Figure::NotAcknowledged, a.raised_at);
                r.detail = format!("active {raised}, no acknowledgement before the period's end");
                out.push(r);
            }
        }
        let beyond: Vec<&PageRecord> = pages
            .iter()
            .filter(|p| p.alarm == Some(a.id) && p.kind == "page" && (p.step > 0 || p.round > 0))
            .collect();
        if let Some(first) = beyond.first() {
            let highest = beyond.iter().map(|p| p.step).max().unwrap_or(first.step);
            let rounds = beyond.iter().map(|p| p.round).max().unwrap_or(first.round);
            let mut r = base(Figure::Escalation, a.raised_at);
            r.value = (highest.saturating_add(1)) as f64;
            r.detail = format!(
                "notification {} (round {}, step {}) queued {}; highest step {}, round {}",
                first.id,
                first.round + 1,
                first.step + 1,
                format_rfc3339(first.created_at),
                highest + 1,
                rounds + 1
            );
            out.push(r);
        }
        if let Some(cleared) = a.cleared_at
            && a.acked_at.is_none()
            && cleared < to
            && cleared.saturating_sub(a.raised_at) <= nuisance_ms
        {
            let mut r = base(Figure::Nuisance, a.raised_at);
            r.value = cleared.saturating_sub(a.raised_at) as f64 / 1000.0;
            r.detail = format!("active {raised}, cleared {} unacknowledged", format_rfc3339(cleared));
            out.push(r);
        }
    }

    /// The records of one notification: undeliverable, delivered through a fallback,
    /// a test page delivered.
    fn page(&self, p: &PageRecord, out: &mut Vec<Counted>) {
        let asset = p.asset.clone().unwrap_or_default();
        let mk = |figure: Figure, detail: String| {
            let mut r = self.record(figure, p.created_at, &asset, format!("notification {}", p.id));
            r.contact = person(self.cfg, &p.contact);
            r.detail = detail;
            r
        };
        let what = format!(
            "{} {}to {} by {}, queued {}",
            p.kind,
            p.alarm.map_or_else(String::new, |a| format!("of alarm {a} ")),
            p.contact,
            p.channel,
            format_rfc3339(p.created_at)
        );
        if p.state == "failed" || p.fate_failed {
            let why = if p.fate_failed {
                "reported undelivered by the carrier"
            } else {
                "given up"
            };
            out.push(mk(Figure::Undeliverable, format!("{what}: {why}")));
        }
        let other_channel = p.state == "sent" && p.via.as_deref().is_some_and(|v| v != p.channel);
        if other_channel || p.resent_after_failure {
            let via = p.via.as_deref().unwrap_or(&p.channel);
            out.push(mk(Figure::Fallback, format!("{what}: delivered by {via}")));
        }
        if p.kind == "test" && p.state == "sent" {
            out.push(mk(Figure::TestPage, what));
        }
    }

    /// A record per `[[test_page]]` occurrence in `from..until`, 1 when a test page of
    /// it was delivered.
    fn test_pages_due(&self, pages: &[PageRecord], from: TimestampMs, until: TimestampMs, out: &mut Vec<Counted>) {
        for (i, t) in self.cfg.test_pages.iter().enumerate() {
            for at in occurrences(&t.window, self.tz, from, until) {
                let done = pages
                    .iter()
                    .find(|p| p.kind == "test" && p.cycle == at && p.contact == t.contact && p.state == "sent");
                let mut r = self.record(
                    Figure::TestPageDue,
                    at,
                    "",
                    format!("test_page[{i}] {}", format_rfc3339(at)),
                );
                r.contact = person(self.cfg, &t.contact);
                r.value = if done.is_some() { 1.0 } else { 0.0 };
                r.detail = match done {
                    Some(p) => format!("delivered: notification {}", p.id),
                    None => "no test page delivered".into(),
                };
                out.push(r);
            }
        }
    }

    /// A record per configured sensor for `month` (within `from..to`): readings stored,
    /// and expected when it is read on a schedule.
    fn readings(
        &self,
        store: &Store,
        month: &str,
        from: TimestampMs,
        to: TimestampMs,
        out: &mut Vec<Counted>,
    ) -> Result<(), StoreError> {
        let Some((start, end)) = super::calendar::month_span(month, self.tz) else {
            return Ok(());
        };
        let (start, end) = (start.max(from), end.min(to));
        for s in self.cfg.sensors.iter().filter(|s| !s.source.is_own()) {
            let Some(asset) = self.cfg.assets.get(s.asset) else {
                continue;
            };
            let (stored, good) = store.reading_count(&s.id, start, end)?;
            let interval = crate::report::asset::gathering::poll_interval(self.cfg, s);
            let mut r = self.record(Figure::Readings, start, &asset.id, format!("sensor {}", s.id));
            r.value = stored as f64;
            r.of = interval.map(|i| (end.saturating_sub(start) / crate::model::millis(i).max(1)) as f64);
            r.detail = format!(
                "{stored} readings ({good} good) from {} to {}{}",
                format_rfc3339(start),
                format_rfc3339(end),
                match interval {
                    Some(i) => format!(", one every {}", humantime::format_duration(i)),
                    None => ", pushed by the sensor (no schedule)".into(),
                }
            );
            out.push(r);
        }
        Ok(())
    }
}
