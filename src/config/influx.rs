//! `[influx]`: the optional InfluxDB v2 mirror.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{Checker, Secret};
use super::raw;

/// Timestamp precision of the points written to InfluxDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Milliseconds,
}

impl Precision {
    /// The `precision` query parameter of `/api/v2/write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Nanoseconds => "ns",
            Precision::Milliseconds => "ms",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// Base URL, without a trailing slash.
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Secret,
    pub precision: Precision,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub timeout: Duration,
    pub max_retry_interval: Duration,
    pub lag_warning: Duration,
    /// CA certificates trusted for `https://` besides the system store.
    pub ca_file: Option<PathBuf>,
}

/// Checks `[influx]`; `None` when the URL, organisation, bucket or token is unusable.
pub(super) fn influx(c: &mut Checker, i: &raw::Influx, base: &Path) -> Option<InfluxConfig> {
    let mut ok = true;
    if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
        c.err(
            "influx.url",
            format!("expected an http:// or https:// URL, found {:?}", i.url),
        );
        ok = false;
    }
    for (key, v) in [("influx.org", &i.org), ("influx.bucket", &i.bucket)] {
        if v.trim().is_empty() {
            c.err(key, "must not be empty");
            ok = false;
        }
    }
    let token = c.secret("influx", "token", &i.token, &i.token_env, &i.token_file, base);
    if token.is_none() && i.token.is_none() && i.token_env.is_none() && i.token_file.is_none() {
        c.err("influx.token", "missing: give token, token_env or token_file");
    }
    let precision = match i.precision.as_deref() {
        None | Some("ns") => Precision::Nanoseconds,
        Some("ms") => Precision::Milliseconds,
        Some(other) => {
            c.err(
                "influx.precision",
                format!("unknown value {other:?}; expected one of: ns, ms"),
            );
            Precision::Nanoseconds
        }
    };
    let batch_size = match i.batch_size {
        Some(0) => {
            c.err("influx.batch_size", "must be at least 1");
            1
        }
        Some(n) => n,
        None => 5_000,
    };
    let d = |c: &mut Checker, key: &str, v: &Option<String>, default: u64| {
        c.positive_duration(&format!("influx.{key}"), v.as_deref(), Duration::from_millis(default))
    };
    let flush_interval = d(c, "flush_interval", &i.flush_interval, 1_000);
    let timeout = d(c, "timeout", &i.timeout, 10_000);
    let max_retry_interval = d(c, "max_retry_interval", &i.max_retry_interval, 60_000);
    let lag_warning = d(c, "lag_warning", &i.lag_warning, 600_000);
    let ca_file = c.ca_file("influx.ca_file", i.ca_file.as_deref(), base);
    if i.ca_file.is_some() && !i.url.starts_with("https://") {
        c.err("influx.ca_file", "only applies to an https:// url");
    }
    Some(InfluxConfig {
        url: i.url.trim_end_matches('/').to_string(),
        org: i.org.clone(),
        bucket: i.bucket.clone(),
        token: token?,
        precision,
        batch_size,
        flush_interval,
        timeout,
        max_retry_interval,
        lag_warning,
        ca_file,
    })
    .filter(|_| ok)
}
