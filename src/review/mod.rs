//! Periodic review and sign-off (`[[review]]`; 21 CFR 1271.260(e)).
//!
//! When a review period ends in the site's time zone, the daemon generates each
//! asset's report of the period as `cryowatch report` makes it (PDF), records it with
//! the SHA-256 of its bytes and of its content ([`crate::store::quality::review`]),
//! and the dispatcher sends it to the reviewers with a link to sign. A period with no
//! reading of the asset is not reviewed. After a pause (the daemon stopped over a
//! period's end) every period since the last one reviewed is generated; the first
//! review of an asset is of the last period that has ended.
//!
//! Signing ([`sign`]) first gathers the period again: when the record has changed
//! since the report was generated, a new version is generated and the signature is
//! refused with the reason; the signer reads the new version and signs it.

mod sign;

pub use sign::{SignError, Signing, sign};

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::TimestampMs;
use crate::model::period::{self, Period};
use crate::report::asset::{self, AssetReport};
use crate::store::quality::review::{NewReview, Review as Generated};
use crate::store::{Store, StoreError};

/// Who the reports generated for review name as their author.
pub const GENERATED_BY: &str = "cryowatch (periodic review)";

/// How often the worker looks for ended periods.
const PASS: Duration = Duration::from_secs(15);

/// At most this many periods are generated for one asset in one pass (after a long
/// stop, the rest follow in the next passes).
const AT_ONCE: usize = 12;

/// At most this many periods are looked at for one asset in one pass (ten years of
/// weeks): periods without readings are passed over without counting towards
/// [`AT_ONCE`], so a unit out of service for months does not stop its reviews.
const LOOKED_AT: usize = 530;

/// Why a review could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] crate::report::asset::ReportError),
    #[error(transparent)]
    Render(#[from] crate::report::render::RenderError),
}

/// The sensors of `asset`, by id.
fn sensors_of<'a>(cfg: &'a Config, asset: &str) -> Vec<&'a str> {
    let Some(ai) = cfg.assets.iter().position(|a| a.id == asset) else {
        return Vec::new();
    };
    cfg.sensors
        .iter()
        .filter(|s| s.asset == ai)
        .map(|s| s.id.as_str())
        .collect()
}

/// The periods of `asset` under `review` that have ended by `now` and are not reviewed
/// yet, oldest first.
fn due_periods(
    cfg: &Config,
    store: &Store,
    review: &crate::config::Review,
    asset: &str,
    now: TimestampMs,
) -> Result<Vec<Period>, StoreError> {
    let tz = &cfg.site.timezone;
    let Some(last) = period::last_ended(review.every, now, tz) else {
        return Ok(Vec::new());
    };
    let mut next = match store.last_reviewed_period(asset, review.every.as_str())? {
        None => Some(last.clone()),
        Some(done_to) => period::containing(review.every, done_to, tz),
    };
    let mut out = Vec::new();
    while let Some(p) = next {
        if p.to > last.to || out.len() >= LOOKED_AT {
            break;
        }
        next = period::after(review.every, &p, tz);
        out.push(p);
    }
    Ok(out)
}

/// A review to generate: the asset, how often it is reviewed, the period, and when its
/// signature is due.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub asset: &'a str,
    pub every: period::Every,
    pub period: &'a Period,
    pub due_at: TimestampMs,
}

/// The report of `job`'s asset and period as it reads at `now`.
pub fn gather(cfg: &Config, store: &Store, job: Job<'_>, now: TimestampMs) -> Result<AssetReport, GenerateError> {
    let req = asset::Request {
        asset: job.asset,
        from: job.period.from,
        to: job.period.to,
        now,
        by: GENERATED_BY,
    };
    Ok(asset::gather(cfg, store, req, |_| {})?)
}

/// Renders `report` (gathered for `job`) and records it as the next version of its
/// review; `why` says why when it replaces an earlier version.
pub fn record(
    store: &mut Store,
    job: Job<'_>,
    report: &AssetReport,
    now: TimestampMs,
    why: Option<&str>,
) -> Result<Generated, GenerateError> {
    let pdf = crate::report::render::render_pdf(&asset::document(report))?;
    let content = asset::content_sha256(report);
    let new = NewReview {
        asset: job.asset,
        every: job.every.as_str(),
        period: job.period,
        generated_at: now,
        due_at: job.due_at,
        pdf: &pdf,
        content_sha256: &content,
        why,
    };
    Ok(store.record_review(&new)?)
}

/// One look: every ended period of every reviewed asset that has readings and no
/// review yet is generated.
pub fn pass(cfg: &Config, store: &mut Store, now: TimestampMs) -> Result<usize, GenerateError> {
    let mut generated = 0;
    for review in &cfg.quality.reviews {
        for asset in &review.assets {
            let sensors = sensors_of(cfg, asset);
            let mut here = 0;
            for p in due_periods(cfg, store, review, asset, now)? {
                if here >= AT_ONCE {
                    break;
                }
                if !store.has_readings(&sensors, p.from, p.to)? {
                    continue;
                }
                here += 1;
                let job = Job {
                    asset,
                    every: review.every,
                    period: &p,
                    due_at: crate::model::later(p.to, review.due_within),
                };
                let report = gather(cfg, store, job, now)?;
                let r = record(store, job, &report, now, None)?;
                tracing::info!(
                    asset = %asset,
                    period = %p.label,
                    review = r.id,
                    report_sha256 = %r.report_sha256,
                    "periodic review generated"
                );
                generated += 1;
            }
        }
    }
    Ok(generated)
}

/// Starts the review worker on its own thread (report rendering takes seconds and must
/// not hold up paging); it looks every few seconds until `shutdown`.
pub fn spawn(
    cfg: Arc<Config>,
    clock: fn() -> TimestampMs,
    shutdown: CancellationToken,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    if cfg.quality.reviews.is_empty() {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("reviews".into())
        .spawn(move || {
            let mut store = None;
            while !shutdown.is_cancelled() {
                if store.is_none() {
                    store = Store::open(&cfg.store.path)
                        .map_err(|e| tracing::error!(error = %e, "periodic reviews: cannot open the store; retrying"))
                        .ok();
                }
                if let Some(s) = store.as_mut()
                    && let Err(e) = pass(&cfg, s, clock())
                {
                    tracing::error!(error = %e, "periodic reviews: generating a review failed; retrying");
                }
                let until = std::time::Instant::now() + PASS;
                while !shutdown.is_cancelled() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .map(Some)
}
