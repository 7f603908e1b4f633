//! `cryowatch status`: the newest reading of every configured sensor and what it means.

use std::io::{self, Write};

use serde::Serialize;

use crate::config::Config;
use crate::model::{Quality, TimestampMs, format_rfc3339};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorStatus {
    pub sensor: String,
    pub asset: String,
    pub value: Option<f64>,
    /// A discrete sensor's value by name (`closed`, `OPEN`, `ON BATTERY`); `None` for a
    /// measurement or no value. `value` keeps the number.
    pub value_name: Option<String>,
    pub unit: String,
    /// Quality of the newest reading (`none` when nothing was ever recorded).
    pub quality: String,
    pub time: Option<String>,
    pub last_good: Option<String>,
    /// `ok`, `comm_error`, `sensor_fault`, `stale` or `no_data`.
    pub state: String,
    /// Open alarms of the sensor, most severe first: `critical active #12 (rule)`.
    pub alarms: Vec<String>,
}

pub fn gather(config: &Config, store: &Store, now: TimestampMs) -> Result<Vec<SensorStatus>, StoreError> {
    store.snapshot(|store| gather_in(config, store, now))
}

fn gather_in(config: &Config, store: &Store, now: TimestampMs) -> Result<Vec<SensorStatus>, StoreError> {
    let ids = store.sensors()?;
    let mut open = store.alarms(true)?;
    open.sort_by_key(|a| std::cmp::Reverse(a.severity));
    let mut out = Vec::with_capacity(config.sensors.len());
    // One lookup per sensor, statements prepared once; -1 matches no reading.
    let wanted: Vec<i64> = config
        .sensors
        .iter()
        .map(|s| ids.get(&s.id).map_or(-1, |(id, _)| *id))
        .collect();
    let latest = store.latest_of(&wanted, config.latest_bound(now))?;
    for (s, (last, good)) in config.sensors.iter().zip(latest) {
        // A watched probe with no calibration on record has no days left to show:
        // `calibration list` says `never`; it is not a sensor gone silent.
        if matches!(s.source, crate::config::SensorSource::Calibration(_)) && last.is_none() {
            continue;
        }
        let stale_after = crate::model::millis(crate::config::rules::stale_after(s, &config.devices, &config.ups));
        let state = match (&last, &good) {
            (None, _) => "no_data".to_string(),
            (_, Some(g)) if now.saturating_sub(g.time) > stale_after => "stale".to_string(),
            (_, None) if last.as_ref().is_some_and(|l| now.saturating_sub(l.time) > stale_after) => "stale".to_string(),
            (Some(l), _) if l.quality == Quality::Good => "ok".to_string(),
            (Some(l), _) => l.quality.as_str().to_string(),
        };
        out.push(SensorStatus {
            sensor: s.id.clone(),
            asset: config.assets.get(s.asset).map(|a| a.id.clone()).unwrap_or_default(),
            value: last.as_ref().and_then(|l| l.value),
            value_name: last
                .as_ref()
                .and_then(|l| l.value)
                .and_then(|v| s.state_name(v))
                .map(str::to_string),
            unit: s.unit.clone(),
            quality: last.as_ref().map(|l| l.quality.as_str()).unwrap_or("none").to_string(),
            time: last.as_ref().map(|l| format_rfc3339(l.time)),
            last_good: good.as_ref().map(|g| format_rfc3339(g.time)),
            state,
            alarms: open
                .iter()
                .filter(|a| a.sensor == s.id)
                .map(|a| format!("{} {} #{} ({})", a.severity, a.state, a.id, a.rule))
                .collect(),
        });
    }
    Ok(out)
}

/// A table for people.
pub fn write_table(rows: &[SensorStatus], out: &mut dyn Write) -> io::Result<()> {
    let header = [
        "SENSOR",
        "ASSET",
        "VALUE",
        "UNIT",
        "STATE",
        "LAST READING",
        "LAST GOOD",
        "ALARMS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.sensor.clone(),
                r.asset.clone(),
                match (&r.value_name, r.value) {
                    (Some(name), _) => name.clone(),
                    (None, Some(v)) => v.to_string(),
                    (None, None) => "-".into(),
                },
                // A state's name needs no unit ("closed", not "closed open").
                if r.value_name.is_some() {
                    String::new()
                } else {
                    r.unit.clone()
                },
                r.state.clone(),
                r.time.clone().unwrap_or_else(|| "-".into()),
                r.last_good.clone().unwrap_or_else(|| "-".into()),
                r.alarms.join("; "),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[&str]| -> io::Result<()> {
        let parts: Vec<String> = row.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", parts.join("  ").trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// How long `status` names an MQTT session the broker lost (7 days).
const SESSION_LOST_SHOWN_MS: TimestampMs = 7 * 24 * 3600 * 1000;

/// Local conditions that need a person, beyond the sensors: a refused configuration,
/// an MQTT session the broker lost in the last week, open deviations, overdue periodic
/// reviews, overdue alarm checks ([`crate::alarm_check`]), pages no channel
/// could deliver (retrying, or given up) in the last day.
pub fn conditions(cfg: &Config, store: &Store, now: TimestampMs) -> Result<Vec<String>, StoreError> {
    let stuck = store.undelivered(now - 24 * 3600 * 1000)?;
    let rejected = store.config_rejected()?;
    let rejected = rejected.map(|text| {
        let (at, problems) = text.split_once('\t').unwrap_or(("", text.as_str()));
        format!(
            "WARNING: the configuration reload at {at} was refused; still running on the previous one: {}",
            problems.replace('\n', "; ")
        )
    });
    // A lost MQTT session: readings may be missing from the record; said for a week.
    let lost = store.mqtt_session_lost_since(now - SESSION_LOST_SHOWN_MS)?;
    // Excursions that cleared and still wait for their signed corrective action.
    let deviations = store.open_deviations()?;
    let deviations = deviations.first().map(|oldest| {
        format!(
            "NOTICE: {} open deviation(s) await a signed corrective action (the oldest: alarm {} on {}, cleared {}): cryowatch alarms --open-deviations, then cryowatch close",
            deviations.len(),
            oldest.id,
            oldest.sensor,
            oldest.cleared_at.map(format_rfc3339).unwrap_or_default()
        )
    });
    // Periodic reviews past their due time that nobody has signed.
    let overdue = store.overdue_reviews(now)?;
    let overdue = overdue.first().map(|oldest| {
        format!(
            "NOTICE: {} periodic review(s) are overdue (the oldest: {} for {}, due {}): cryowatch review list, then cryowatch review sign",
            overdue.len(),
            oldest.asset,
            oldest.period,
            format_rfc3339(oldest.due_at)
        )
    });
    let checks = crate::alarm_check::due_checks(cfg, store, now)?;
    let checks = crate::alarm_check::overdue(&checks).map(|d| {
        format!(
            "NOTICE: the {} alarm check of {} ({}) for {} is overdue (due {}): cryowatch alarm-check start --sensor {}",
            d.every,
            d.sensor,
            d.asset,
            d.period,
            format_rfc3339(d.due_at),
            d.sensor
        )
    });
    Ok(rejected
        .into_iter()
        .chain(lost.map(|l| l.condition()))
        .chain(deviations)
        .chain(overdue)
        .chain(checks)
        .chain(stuck.into_iter().map(|u| {
            let what = if u.given_up { "given up" } else { "retrying" };
            format!(
                "CRITICAL: page {} to {} (channel {}, queued {}) could not be delivered by any channel, {what}: {}",
                u.id,
                u.contact,
                u.channel,
                format_rfc3339(u.created_at),
                if u.reason.is_empty() {
                    "no reason recorded"
                } else {
                    u.reason.as_str()
                }
            )
        }))
        .collect())
}
