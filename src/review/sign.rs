//! Signing a periodic review: the report is gathered again first, and a signature is
//! made only on a report that still shows the record of its period.

use super::{GenerateError, Job, gather, record};
use crate::config::Config;
use crate::model::TimestampMs;
use crate::model::period::{Every, Period};
use crate::store::quality::review::{Review, ReviewRefused};
use crate::store::quality::{Meaning, Signer};
use crate::store::{Store, StoreError};

/// Why a review was not signed; nothing was signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Refused(#[from] ReviewRefused),
    #[error("{0}")]
    Changed(Box<Changed>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// The report of a period no longer shows its record; the next version was generated.
#[derive(Debug, thiserror::Error)]
#[error(
    "the record of {asset} for {period} changed after version {old} of its report was generated \
     (content SHA-256 {old_content} then, {new_content} now: late readings, acknowledgements or \
     corrective actions): version {new} was generated (report SHA-256 {report}); read it and sign again"
)]
pub struct Changed {
    pub asset: String,
    pub period: String,
    pub old: i64,
    pub new: i64,
    pub old_content: String,
    pub new_content: String,
    pub report: String,
}

/// What a signature of a review is given: which review (and, when the signer read a
/// particular version, that version), and its meaning.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub asset: &'a str,
    pub period: &'a str,
    /// The version the signer read; `None`: the newest.
    pub version: Option<i64>,
    pub meaning: Meaning,
}

/// Signs the review of `what` as its meaning, when the version read is the newest and
/// its report still shows the record; otherwise refuses (recording the next version
/// when the record has changed).
pub fn sign(
    cfg: &Config,
    store: &mut Store,
    signer: &Signer,
    what: Signing<'_>,
    now: TimestampMs,
) -> Result<Review, SignError> {
    let Signing {
        asset,
        period,
        version,
        meaning,
    } = what;
    let Some(r) = store.review(asset, period)? else {
        return Err(ReviewRefused::NoSuchReview {
            asset: asset.to_string(),
            period: period.to_string(),
        }
        .into());
    };
    if let Some(read) = version
        && read != r.version
    {
        return Err(ReviewRefused::Superseded {
            signed: read,
            newest: r.version,
        }
        .into());
    }
    let p = Period {
        label: r.period.clone(),
        from: r.from,
        to: r.to,
    };
    let job = Job {
        asset,
        every: Every::parse(&r.every).unwrap_or(Every::Monthly),
        period: &p,
        due_at: r.due_at,
    };
    let report = gather(cfg, store, job, now)?;
    let content = crate::report::asset::content_sha256(&report);
    if content != r.content_sha256 {
        let why = format!(
            "the record of the period changed after version {} was generated",
            r.version
        );
        let new = record(store, job, &report, now, Some(&why))?;
        return Err(SignError::Changed(Box::new(Changed {
            asset: asset.to_string(),
            period: period.to_string(),
            old: r.version,
            new: new.version,
            old_content: r.content_sha256,
            new_content: content,
            report: new.report_sha256,
        })));
    }
    Ok(store.sign_review(signer, asset, period, r.version, meaning, now)??)
}
