//! The InfluxDB mirror's state as people read it: how far behind it is, and the
//! conditions that need a person (lag past `lag_warning`, refused credentials,
//! quarantined batches).

use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

use crate::config::InfluxConfig;
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::mirror::Lag;

/// `cryowatch influx status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorStatus {
    pub url: String,
    pub bucket: String,
    #[serde(flatten)]
    pub lag: Lag,
    /// Age of the oldest reading waiting, in seconds.
    pub oldest_age_s: Option<f64>,
    pub conditions: Vec<String>,
}

pub fn gather(cfg: &InfluxConfig, lag: Lag, now: TimestampMs) -> MirrorStatus {
    MirrorStatus {
        url: cfg.url.clone(),
        bucket: cfg.bucket.clone(),
        oldest_age_s: lag.oldest.map(|t| (now - t).max(0) as f64 / 1000.0),
        conditions: conditions(cfg, &lag, now),
        lag,
    }
}

fn age(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs((ms.max(0) / 1000) as u64)).to_string()
}

/// Conditions that need a person.
pub fn conditions(cfg: &InfluxConfig, lag: &Lag, now: TimestampMs) -> Vec<String> {
    let mut out = Vec::new();
    let failure = lag.failure.as_deref().unwrap_or("no failure recorded");
    if lag.refused {
        out.push(format!(
            "WARNING: InfluxDB mirror refused since {}: {failure}",
            lag.failing_since.map(format_rfc3339).unwrap_or_default()
        ));
    }
    if let Some(oldest) = lag.oldest
        && now.saturating_sub(oldest) > crate::model::millis(cfg.lag_warning)
    {
        out.push(format!(
            "WARNING: InfluxDB mirror is {} behind ({} readings waiting, the oldest from {}; limit {}): {failure}",
            age(now - oldest),
            lag.readings,
            format_rfc3339(oldest),
            humantime::format_duration(cfg.lag_warning)
        ));
    }
    if lag.quarantined_batches > 0 {
        out.push(format!(
            "WARNING: InfluxDB refused {} batch(es) ({} points) for their content; they are quarantined and kept (`cryowatch influx quarantine` lists them, `cryowatch influx requeue` sends them again)",
            lag.quarantined_batches, lag.quarantined_points
        ));
    }
    out
}

/// One line for `cryowatch status`.
pub fn summary(s: &MirrorStatus) -> String {
    let mut line = format!(
        "InfluxDB mirror ({} bucket {}): {} readings and {} alarm transitions waiting",
        s.url, s.bucket, s.lag.readings, s.lag.alarm_events
    );
    if let (Some(oldest), Some(age_s)) = (s.lag.oldest, s.oldest_age_s) {
        line.push_str(&format!(
            ", oldest from {} ({} ago)",
            format_rfc3339(oldest),
            age((age_s * 1000.0) as i64)
        ));
    }
    match s.lag.last_ok {
        Some(t) => line.push_str(&format!("; last write {}", format_rfc3339(t))),
        None => line.push_str("; nothing written yet"),
    }
    line
}

pub fn write_text(s: &MirrorStatus, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", summary(s))?;
    if let Some(f) = &s.lag.failure {
        writeln!(
            out,
            "failing since {}: {f}",
            s.lag.failing_since.map(format_rfc3339).unwrap_or_default()
        )?;
    }
    for c in &s.conditions {
        writeln!(out, "{c}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Precision, Secret};

    fn cfg() -> InfluxConfig {
        InfluxConfig {
            url: "http://i:8086".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: Secret("t".into()),
            precision: Precision::Nanoseconds,
            batch_size: 10,
            flush_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_retry_interval: Duration::from_secs(60),
            lag_warning: Duration::from_secs(600),
            ca_file: None,
        }
    }

    #[test]
    fn lag_past_the_limit_refusals_and_quarantine_each_raise_a_warning() {
        let now = 1_000_000_000;
        let mut lag = Lag {
            readings: 5,
            oldest: Some(now - 599_000),
            ..Lag::default()
        };
        assert!(conditions(&cfg(), &lag, now).is_empty());
        lag.oldest = Some(now - 601_000);
        lag.failure = Some("HTTP 503".into());
        let c = conditions(&cfg(), &lag, now);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].contains("10m 1s behind (5 readings waiting") && c[0].ends_with("HTTP 503"),
            "{c:?}"
        );
        lag.refused = true;
        lag.quarantined_batches = 1;
        lag.quarantined_points = 3;
        let c = conditions(&cfg(), &lag, now);
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c[0].contains("refused"));
        assert!(c[2].contains("1 batch(es) (3 points)"));
    }
}
