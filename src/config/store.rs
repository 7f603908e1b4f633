//! `[store]`: the embedded store, how readings are committed, sealed, reduced and kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{Checker, resolve};
use super::raw;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub flush_interval: Duration,
    pub batch_size: usize,
    /// Raw readings older than this are deleted (after being reduced, when
    /// `reduce_after` is set).
    pub retention: Duration,
    /// Raw readings older than this are reduced to per-minute min/max/mean, except
    /// during excursions.
    pub reduce_after: Option<Duration>,
    pub seal_interval: Duration,
    pub seal_grace: Duration,
}

impl StoreConfig {
    /// Ten years, the default retention of raw readings.
    pub const TEN_YEARS: Duration = Duration::from_secs(10 * 31_557_600);
}

const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
const DEFAULT_BATCH_SIZE: usize = 10_000;
const DEFAULT_SEAL_INTERVAL: Duration = Duration::from_secs(600);
const DEFAULT_SEAL_GRACE: Duration = Duration::from_secs(120);

/// Checks `[store]`, which every configuration needs, and that its periods fit together.
pub(super) fn store(c: &mut Checker, s: Option<&raw::Store>, base: &Path) -> StoreConfig {
    let store = match s {
        Some(s) => StoreConfig {
            path: resolve(base, &s.path),
            flush_interval: c.positive_duration(
                "store.flush_interval",
                s.flush_interval.as_deref(),
                DEFAULT_FLUSH_INTERVAL,
            ),
            batch_size: match s.batch_size {
                Some(0) => {
                    c.err("store.batch_size", "must be at least 1");
                    1
                }
                Some(n) => n,
                None => DEFAULT_BATCH_SIZE,
            },
            retention: c.positive_duration("store.retention", s.retention.as_deref(), StoreConfig::TEN_YEARS),
            reduce_after: s
                .reduce_after
                .as_deref()
                .map(|t| c.positive_duration("store.reduce_after", Some(t), StoreConfig::TEN_YEARS)),
            seal_interval: c.positive_duration(
                "store.seal_interval",
                s.seal_interval.as_deref(),
                DEFAULT_SEAL_INTERVAL,
            ),
            seal_grace: c.positive_duration("store.seal_grace", s.seal_grace.as_deref(), DEFAULT_SEAL_GRACE),
        },
        None => {
            c.err("store", "missing section [store] (path of the embedded store)");
            StoreConfig {
                path: PathBuf::new(),
                flush_interval: DEFAULT_FLUSH_INTERVAL,
                batch_size: DEFAULT_BATCH_SIZE,
                retention: StoreConfig::TEN_YEARS,
                reduce_after: None,
                seal_interval: DEFAULT_SEAL_INTERVAL,
                seal_grace: DEFAULT_SEAL_GRACE,
            }
        }
    };

    if let Some(r) = store.reduce_after
        && r >= store.retention
    {
        c.err(
            "store.reduce_after",
            format!(
                "must be shorter than store.retention ({}): readings would be deleted before they are reduced",
                humantime::format_duration(store.retention)
            ),
        );
    }
    if store.seal_interval < Duration::from_secs(1) {
        c.err("store.seal_interval", "must be at least 1s");
    }
    // Readings are bound at commit until their block is sealed: deleting or reducing them
    // before that would be indistinguishable from tampering.
    let sealed_after = store.seal_interval.saturating_add(store.seal_grace);
    for (key, d) in [
        ("store.retention", Some(store.retention)),
        ("store.reduce_after", store.reduce_after),
    ] {
        if let Some(d) = d
            && d <= sealed_after
        {
            c.err(
                key,
                format!(
                    "must be longer than store.seal_interval + store.seal_grace ({}): readings would be removed before they are sealed",
                    humantime::format_duration(sealed_after)
                ),
            );
        }
    }
    store
}
