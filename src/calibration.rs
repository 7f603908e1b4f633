//! Calibration due dates as readings: for each watched probe with a calibration on
//! record ([`crate::store::quality::calibration`]), the daemon writes the days left
//! until it is due as a reading of its calibration sensor
//! ([`crate::config::calibration`]), so the rules on it raise the warnings and the
//! alarm, page and clear like any other alarm. A reading is written when a calibration
//! is recorded (the register is looked at every few seconds), when the days left cross
//! a `warn_before` or the due date, and otherwise hourly. Also: the status of a
//! probe's calibration as `calibration list`, the dashboard and reports say it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::SensorSource;
use crate::model::{Reading, TimestampMs};
use crate::pipeline::CommitHandle;
use crate::pipeline::commit::Batch;
use crate::store::Store;
use crate::store::quality::calibration::Calibration;

/// How often the register is looked at for new records.
const LOOK: Duration = Duration::from_secs(2);
/// Readings are written at least this often.
const EVERY_MS: TimestampMs = 3_600_000;

const DAY_MS: f64 = 86_400_000.0;

/// Days left until `due_at` (negative once past).
pub fn days_left(due_at: TimestampMs, now: TimestampMs) -> f64 {
    (due_at as f64 - now as f64) / DAY_MS
}

/// `ok`, `due soon` (within the first `[calibration] warn_before`, 90 days by default),
/// `overdue`, or `never` (no calibration on record).
pub fn status(cfg: &Config, latest: Option<&Calibration>, now: TimestampMs) -> &'static str {
    let soon = cfg
        .calibration
        .as_ref()
        .and_then(|c| c.warn_before.first().copied())
        .unwrap_or(crate::config::calibration::DEFAULT_WARN_BEFORE[0]);
    match latest {
        None => "never",
        Some(c) if now >= c.record.due_at => "overdue",
        Some(c) if days_left(c.record.due_at, now) * DAY_MS <= soon.as_millis() as f64 => "due soon",
        Some(_) => "ok",
    }
}

/// The readings of the calibration sensors at `now` from `latest` (the newest record of
/// each probe).
pub fn readings(cfg: &Config, latest: &[Calibration], now: TimestampMs) -> Vec<Reading> {
    let Some(cal) = &cfg.calibration else {
        return Vec::new();
    };
    cal.sensors
        .iter()
        .filter_map(|&si| {
            let SensorSource::Calibration(watched) = cfg.sensors.get(si)?.source else {
                return None;
            };
            let probe = &cfg.sensors.get(watched)?.id;
            let c = latest.iter().find(|c| &c.record.sensor == probe)?;
            Some(Reading::good(si, now, days_left(c.record.due_at, now)))
        })
        .collect()
}

/// The first moment after `now` at which one of `latest`'s days left crosses a
/// threshold of `cfg` (a `warn_before`, or the due date).
fn next_crossing(cfg: &Config, latest: &[Calibration], now: TimestampMs) -> TimestampMs {
    let Some(cal) = &cfg.calibration else {
        return TimestampMs::MAX;
    };
    latest
        .iter()
        .flat_map(|c| {
            cal.warn_before
                .iter()
                .map(move |d| crate::model::earlier(c.record.due_at, *d))
                .chain(std::iter::once(c.record.due_at))
        })
        // A second past: the rules fire below their threshold, not at it.
        .map(|t| t.saturating_add(1000))
        .filter(|t| *t > now)
        .min()
        .unwrap_or(TimestampMs::MAX)
}

/// Starts the calibration watch on its own thread when `[calibration]` is configured.
pub fn spawn(
    cfg: Arc<Config>,
    handle: &CommitHandle,
    shutdown: CancellationToken,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if cfg.calibration.as_ref().is_none_or(|c| c.sensors.is_empty()) {
        return Ok(None);
    }
    let handle = handle.clone();
    std::thread::Builder::new()
        .name("calibration".into())
        .spawn(move || {
            let mut store = None;
            // (register head, when the next reading is due) of the last reading sent.
            let mut sent: Option<(i64, TimestampMs)> = None;
            while !shutdown.is_cancelled() {
                if store.is_none() {
                    store = Store::open_read_only(&cfg.store.path)
                        .map_err(|e| tracing::error!(error = %e, "calibration watch: cannot open the store; retrying"))
                        .ok();
                }
                if let Some(s) = store.as_ref() {
                    let now = crate::model::now_ms();
                    let looked = s.calibration_head().and_then(|head| {
                        let due = sent.is_none_or(|(h, next)| h != head || now >= next);
                        Ok(if due {
                            Some((head, s.latest_calibrations()?))
                        } else {
                            None
                        })
                    });
                    match looked {
                        Ok(Some((head, latest))) => {
                            let readings = readings(&cfg, &latest, now);
                            if !readings.is_empty() && handle.send_blocking(Batch::new(readings)).is_err() {
                                tracing::debug!("calibration watch: the store writer has stopped");
                                return;
                            }
                            let next = next_crossing(&cfg, &latest, now).min(now.saturating_add(EVERY_MS));
                            sent = Some((head, next));
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(error = %e, "calibration watch: reading the register failed"),
                    }
                }
                let until = std::time::Instant::now() + LOOK;
                while !shutdown.is_cancelled() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .map(Some)
}
