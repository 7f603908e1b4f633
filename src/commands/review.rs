//! `review`: periodic reviews (see [`crate::review`]): the list with each review's
//! status and signatures, signing one with the signer's password, and the report a
//! review was made of, as it was generated.

use std::path::Path;

use super::{CommandError, load_for_reading, read_password};
use crate::escape::control;
use crate::model::{format_rfc3339, now_ms};
use crate::review::SignError;
use crate::store::Store;
use crate::store::quality::Meaning;
use crate::store::quality::review::{Review, ReviewRefused};

/// How many reviews `review list` shows.
const LIST: usize = 500;

/// `review list`: every review (its newest version), newest period first.
pub fn list(config: &Path, asset: Option<&str>, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let reviews = store.reviews(asset, LIST)?;
    let now = now_ms();
    if json {
        let rows: Vec<serde_json::Value> = reviews
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["overdue"] = serde_json::json!(r.overdue(now));
                v
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if reviews.is_empty() {
        println!("no periodic reviews yet");
        return Ok(());
    }
    for r in &reviews {
        println!("{}", control(&line(r, now)));
        for s in &r.signatures {
            println!(
                "    {} by {} ({}) at {}",
                s.meaning,
                control(&s.printed_name),
                control(&s.user),
                format_rfc3339(s.t)
            );
        }
    }
    Ok(())
}

/// One review in the list.
fn line(r: &Review, now: i64) -> String {
    let status = if r.overdue(now) {
        format!("{} (OVERDUE since {})", r.status, format_rfc3339(r.due_at))
    } else {
        r.status.to_string()
    };
    format!(
        "{:<10} {:<16} v{} {}  report sha256 {}  due {}",
        r.period,
        r.asset,
        r.version,
        status,
        r.report_sha256,
        format_rfc3339(r.due_at)
    )
}

/// `review sign`: signs the review of `asset` for `period` (the newest version, or
/// `version` when given: the one the signer read) as `meaning` with the password of
/// `by`, read from standard input. Exit 2 for a review that does not exist
/// or is already signed so; exit 1 for a wrong password (audited) or a report the
/// record has moved on from (the next version is generated; sign that).
pub fn sign(
    config: &Path,
    asset: &str,
    period: &str,
    version: Option<i64>,
    by: &str,
    meaning: &str,
) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let bad = CommandError::BadInput;
    let meaning = match meaning {
        "reviewed" => Meaning::Reviewed,
        "approved" => Meaning::Approved,
        other => {
            return Err(bad(format!(
                "--meaning: expected reviewed or approved, found {other:?}"
            )));
        }
    };
    let mut store = Store::open(&cfg.store.path)?;
    let Some(r) = store.review(asset, period)? else {
        let known: Vec<String> = store.reviews(Some(asset), 12)?.into_iter().map(|r| r.period).collect();
        return Err(bad(format!(
            "{}; periods with a review of {asset:?}: {}",
            ReviewRefused::NoSuchReview {
                asset: asset.to_string(),
                period: period.to_string()
            },
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    let password = read_password(&format!(
        "password of {by} (signing the {} review of {asset} for {period} as {}): ",
        r.every,
        meaning.as_str()
    ))?;
    let signer = store
        .signer(by, &password, &r.subject(), now_ms())?
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let what = crate::review::Signing {
        asset,
        period,
        version,
        meaning,
    };
    match crate::review::sign(&cfg, &mut store, &signer, what, now_ms()) {
        Ok(done) => {
            println!(
                "review of {asset} for {period} (version {}) signed by {} ({}) as {:?}; status {}; report SHA-256 {}",
                done.version,
                control(&signer.printed_name),
                control(&signer.user),
                meaning.as_str(),
                done.status,
                done.report_sha256
            );
            Ok(())
        }
        Err(SignError::Refused(e)) => Err(bad(format!("{e}; nothing was signed"))),
        Err(e @ SignError::Changed(_)) => Err(CommandError::Failed(format!("{e}; nothing was signed"))),
        Err(SignError::Store(e)) => Err(e.into()),
        Err(SignError::Generate(e)) => Err(CommandError::Failed(format!("generating the new version: {e}"))),
    }
}

/// `review report`: the PDF of the newest version of a review, as it was generated
/// and as its signatures cover it.
pub fn report(config: &Path, asset: &str, period: &str, out: &Path) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let Some(r) = store.review(asset, period)? else {
        return Err(CommandError::BadInput(
            ReviewRefused::NoSuchReview {
                asset: asset.to_string(),
                period: period.to_string(),
            }
            .to_string(),
        ));
    };
    let Some(pdf) = store.review_report(r.id)? else {
        return Err(CommandError::Failed(format!("review {} has no stored report", r.id)));
    };
    super::documents::write(out, &pdf)?;
    println!(
        "{}: the report of {asset} for {period}, version {}, SHA-256 {}; status {}",
        out.display(),
        r.version,
        r.report_sha256,
        r.status
    );
    Ok(())
}
