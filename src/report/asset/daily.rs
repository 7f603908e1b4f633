//! Daily statistics of one sensor: its raw readings and per-minute summaries become
//! per-day minimum, maximum and mean in the site's time zone, and gaps longer than its
//! stale limit.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;

use crate::model::{Quality, TimestampMs};
use crate::store::Store;

use super::{Day, Gap, ReportError, SensorSection};

fn local_date(t: TimestampMs, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(t) {
        Ok(ts) => ts.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string(),
        Err(_) => t.to_string(),
    }
}

/// Raw readings (and per-minute summaries where retention reduced them) → days, gaps.
pub(super) fn read_sensor(
    store: &Store,
    id: i64,
    from: TimestampMs,
    to: TimestampMs,
    tz: &TimeZone,
    sec: &mut SensorSection,
) -> Result<(), ReportError> {
    // (t, min, max, sum, count) per point: a raw reading is its own min = max = sum.
    let mut points: Vec<(TimestampMs, f64, f64, f64, i64)> = Vec::new();
    let mut bad = 0;
    // The period is half-open: a reading at `to` belongs to the next period.
    store.history(id, from, to - 1, |r| {
        match (r.quality, r.value) {
            (Quality::Good, Some(v)) if v.is_finite() => points.push((r.time, v, v, v, 1)),
            _ => bad += 1,
        }
        true
    })?;
    store.minute_aggregates(id, from, to, |t, min, max, mean, n| {
        points.push((t, min, max, mean * n as f64, n))
    })?;
    points.sort_by_key(|p| p.0);
    sec.bad_quality = bad;
    let mut days: BTreeMap<String, (f64, f64, f64, i64)> = BTreeMap::new();
    let mut last = from;
    for &(t, min, max, sum, n) in &points {
        if t - last > sec.stale_limit_ms {
            sec.gaps.push(Gap { from: last, to: t });
        }
        last = t;
        sec.received += n;
        let d = days
            .entry(local_date(t, tz))
            .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0, 0));
        d.0 = d.0.min(min);
        d.1 = d.1.max(max);
        d.2 += sum;
        d.3 += n;
        sec.series.push((t, if n == 1 { min } else { sum / n as f64 }));
    }
    if to - last > sec.stale_limit_ms {
        sec.gaps.push(Gap { from: last, to });
    }
    sec.days = days
        .into_iter()
        .map(|(date, (min, max, sum, n))| Day {
            date,
            min: Some(min),
            max: Some(max),
            mean: Some(sum / n as f64),
            readings: n,
        })
        .collect();
    Ok(())
}
