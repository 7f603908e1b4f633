//! Periodic reviews: each period's report of an asset kept as it was generated (the
//! PDF, the SHA-256 of its bytes and of the report's content), and the signatures of
//! the people who reviewed and approved it.
//!
//! A review is recorded in one transaction with its audit record `review.generated`;
//! the dispatcher then pages its reviewers and marks it sent, in one transaction. A signature (meaning `reviewed` or
//! `approved`) covers the review's id, asset, period, version and both hashes, and is
//! written with its audit record `review.signed`. When the record of a period changes
//! after its report was generated (a late reading sealed, a corrective action signed),
//! the report is generated again as the next version; only the newest version can be
//! signed. `audit verify` (`review_verify`) recomputes the PDF's hash, compares every review
//! with its audit record, and every review signature with the review it names.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::super::outbox::{NewNotification, enqueue};
use super::super::{Store, StoreError};
use super::{Meaning, Signed, Signer, record_signature};
use crate::model::TimestampMs;
use crate::model::period::Period;

/// Schema: reviews with their report, and signatures found by what they sign.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE review (
        id             INTEGER PRIMARY KEY,
        asset          TEXT NOT NULL,
        every          TEXT NOT NULL,
        period         TEXT NOT NULL,
        period_from    INTEGER NOT NULL,
        period_to      INTEGER NOT NULL,
        version        INTEGER NOT NULL,
        generated_at   INTEGER NOT NULL,
        due_at         INTEGER NOT NULL,
        report_sha256  TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        report         BLOB NOT NULL,
        audit          INTEGER NOT NULL,
        sent_at        INTEGER,
        reminded_at    INTEGER,
        UNIQUE (asset, period, version)
    );
    CREATE INDEX review_unsent ON review (id) WHERE sent_at IS NULL;
    CREATE INDEX review_due ON review (due_at) WHERE reminded_at IS NULL;
    CREATE INDEX signature_subject ON signature (subject);";

/// A report generated for review, ready to record.
#[derive(Debug, Clone)]
pub struct NewReview<'a> {
    pub asset: &'a str,
    pub every: &'a str,
    pub period: &'a Period,
    pub generated_at: TimestampMs,
    pub due_at: TimestampMs,
    pub pdf: &'a [u8],
    pub content_sha256: &'a str,
    /// Why a new version was generated (`None` for the first).
    pub why: Option<&'a str>,
}

/// A signature on a review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewSignature {
    pub t: TimestampMs,
    pub user: String,
    pub printed_name: String,
    pub meaning: String,
    pub content_sha256: String,
}

/// One review (its newest version), with its signatures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub id: i64,
    pub asset: String,
    pub every: String,
    pub period: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub version: i64,
    pub generated_at: TimestampMs,
    pub due_at: TimestampMs,
    pub report_sha256: String,
    pub content_sha256: String,
    /// `awaiting review`, `reviewed` or `approved`.
    pub status: &'static str,
    pub signatures: Vec<ReviewSignature>,
}

impl Review {
    /// Not yet reviewed or approved and past its due time.
    pub fn overdue(&self, now: TimestampMs) -> bool {
        self.status == AWAITING && now > self.due_at
    }

    /// The audit subject and signature subject of this review.
    pub fn subject(&self) -> String {
        format!("review {}", self.id)
    }
}

pub const AWAITING: &str = "awaiting review";

/// Why a review was not signed; nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewRefused {
    #[error("no review of {asset} for period {period}")]
    NoSuchReview { asset: String, period: String },
    #[error("{0:?} is not a meaning of a review signature: expected reviewed or approved")]
    NotAReviewMeaning(&'static str),
    #[error("{printed_name} ({user}) has already signed this review as {meaning}")]
    AlreadySigned {
        user: String,
        printed_name: String,
        meaning: &'static str,
    },
    #[error("version {signed} of this review was replaced by version {newest}: read the newest and sign it")]
    Superseded { signed: i64, newest: i64 },
}

pub(super) const COLUMNS: &str = "id, asset, every, period, period_from, period_to, version, generated_at, due_at,
     report_sha256, content_sha256";

pub(super) fn row(r: &rusqlite::Row) -> rusqlite::Result<Review> {
    Ok(Review {
        id: r.get(0)?,
        asset: r.get(1)?,
        every: r.get(2)?,
        period: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        version: r.get(6)?,
        generated_at: r.get(7)?,
        due_at: r.get(8)?,
        report_sha256: r.get(9)?,
        content_sha256: r.get(10)?,
        status: AWAITING,
        signatures: Vec::new(),
    })
}

/// `r` with its signatures and the status they give it.
fn signed(c: &Connection, mut r: Review) -> rusqlite::Result<Review> {
    let mut st = c.prepare_cached(
        "SELECT t, user, printed_name, meaning, content_sha256 FROM signature WHERE subject = ?1 ORDER BY id",
    )?;
    r.signatures = st
        .query_map([r.subject()], |x| {
            Ok(ReviewSignature {
                t: x.get(0)?,
                user: x.get(1)?,
                printed_name: x.get(2)?,
                meaning: x.get(3)?,
                content_sha256: x.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let has = |m: Meaning| r.signatures.iter().any(|s| s.meaning == m.as_str());
    r.status = if has(Meaning::Approved) {
        "approved"
    } else if has(Meaning::Reviewed) {
        "reviewed"
    } else {
        AWAITING
    };
    Ok(r)
}

/// The newest version of the review of `asset` for `period`.
fn newest(c: &Connection, asset: &str, period: &str) -> rusqlite::Result<Option<Review>> {
    let found = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM review WHERE asset = ?1 AND period = ?2 ORDER BY version DESC LIMIT 1"
        ))?
        .query_row([asset, period], row)
        .optional()?;
    found.map(|r| signed(c, r)).transpose()
}

/// The exact content a review signature covers.
pub(super) fn review_content(r: &Review) -> String {
    json!([
        "review",
        r.id,
        r.asset,
        r.every,
        r.period,
        r.from,
        r.to,
        r.version,
        r.report_sha256,
        r.content_sha256
    ])
    .to_string()
}

/// Records `new` with its audit record. A new version of a period's review is not
/// paged again (whoever tried to sign the old one is shown the new one), nor reminded
/// of again when the old one was.
fn record(c: &Connection, new: &NewReview<'_>) -> rusqlite::Result<Review> {
    let id: i64 = c.query_row("SELECT coalesce(max(id), 0) + 1 FROM review", [], |r| r.get(0))?;
    let version: i64 = c.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM review WHERE asset = ?1 AND period = ?2",
        params![new.asset, new.period.label],
        |r| r.get(0),
    )?;
    let report_sha256 = super::hex(&<sha2::Sha256 as sha2::Digest>::digest(new.pdf));
    let mut detail = generated_detail(
        new.asset,
        new.every,
        new.period,
        version,
        new.due_at,
        &report_sha256,
        new.content_sha256,
    );
    if let Some(why) = new.why {
        detail["why"] = json!(why);
    }
    let seq = super::super::audit::append(
        c,
        new.generated_at,
        "review.generated",
        "daemon",
        &format!("review {id}"),
        &detail,
    )?;
    c.execute(
        "INSERT INTO review (id, asset, every, period, period_from, period_to, version, generated_at, due_at,
                             report_sha256, content_sha256, report, audit, sent_at, reminded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 (SELECT reminded_at FROM review WHERE asset = ?2 AND period = ?4 AND version = ?7 - 1))",
        params![
            id,
            new.asset,
            new.every,
            new.period.label,
            new.period.from,
            new.period.to,
            version,
            new.generated_at,
            new.due_at,
            report_sha256,
            new.content_sha256,
            new.pdf,
            seq,
            new.why.map(|_| new.generated_at)
        ],
    )?;
    // A replaced version needs no reminder of its own any more.
    c.execute(
        "UPDATE review SET reminded_at = coalesce(reminded_at, ?3)
         WHERE asset = ?1 AND period = ?2 AND version < (SELECT max(version) FROM review WHERE asset = ?1 AND period = ?2)",
        params![new.asset, new.period.label, new.generated_at],
    )?;
    let r = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM review WHERE id = ?1"))?
        .query_row([id], row)?;
    signed(c, r)
}

/// What `review.generated` records: everything of the row but the PDF itself.
pub(super) fn generated_detail(
    asset: &str,
    every: &str,
    period: &Period,
    version: i64,
    due_at: TimestampMs,
    report_sha256: &str,
    content_sha256: &str,
) -> serde_json::Value {
    json!({
        "asset": asset,
        "every": every,
        "period": period.label,
        "from": period.from,
        "to": period.to,
        "version": version,
        "due_at": due_at,
        "report_sha256": report_sha256,
        "content_sha256": content_sha256,
    })
}

/// Signs review `r` (already checked to be the newest version) as `meaning`.
fn sign(
    c: &Connection,
    signer: &Signer,
    asset: &str,
    period: &str,
    version: i64,
    meaning: Meaning,
    now: TimestampMs,
) -> rusqlite::Result<Result<Review, ReviewRefused>> {
    if !matches!(meaning, Meaning::Reviewed | Meaning::Approved) {
        return Ok(Err(ReviewRefused::NotAReviewMeaning(meaning.as_str())));
    }
    let Some(r) = newest(c, asset, period)? else {
        return Ok(Err(ReviewRefused::NoSuchReview {
            asset: asset.to_string(),
            period: period.to_string(),
        }));
    };
    if r.version != version {
        return Ok(Err(ReviewRefused::Superseded {
            signed: version,
            newest: r.version,
        }));
    }
    if let Some(s) = r
        .signatures
        .iter()
        .find(|s| s.user == signer.user && s.meaning == meaning.as_str())
    {
        return Ok(Err(ReviewRefused::AlreadySigned {
            user: s.user.clone(),
            printed_name: s.printed_name.clone(),
            meaning: meaning.as_str(),
        }));
    }
    let detail = json!({
        "asset": r.asset,
        "period": r.period,
        "version": r.version,
        "report_sha256": r.report_sha256,
    });
    let signed = Signed {
        signer,
        meaning,
        subject: &r.subject(),
        content: &review_content(&r),
        at: now,
    };
    record_signature(c, &signed, "review.signed", detail, now)?;
    // Signed: no reminder is due any more.
    c.execute(
        "UPDATE review SET reminded_at = coalesce(reminded_at, ?2) WHERE id = ?1",
        params![r.id, now],
    )?;
    Ok(newest(c, asset, period)?.ok_or(ReviewRefused::NoSuchReview {
        asset: asset.to_string(),
        period: period.to_string(),
    }))
}

/// A condition on review `r`: the newest version of its period, signed by nobody.
const UNSIGNED_NEWEST: &str = "NOT EXISTS (SELECT 1 FROM signature s WHERE s.subject = 'review ' || r.id)
     AND NOT EXISTS (SELECT 1 FROM review n WHERE n.asset = r.asset AND n.period = r.period AND n.version > r.version)";

/// The reviews `from_where` (a FROM clause on `review` with one parameter) selects,
/// with their signatures.
fn listed(c: &Connection, from_where: &str, param: Option<TimestampMs>) -> rusqlite::Result<Vec<Review>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} {from_where}"))?;
    let rows: Vec<Review> = st.query_map([param], row)?.collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(|r| signed(c, r)).collect()
}

/// Runs `update` (review id ?1, time ?2) and queues `pages`.
fn mark(c: &Connection, update: &str, id: i64, pages: &[NewNotification], now: TimestampMs) -> rusqlite::Result<()> {
    c.execute(update, params![id, now])?;
    for n in pages {
        enqueue(c, n, now)?;
    }
    Ok(())
}

impl Store {
    /// Records a generated review (a new version when one exists for the period) with
    /// its audit record, in one transaction.
    pub fn record_review(&mut self, new: &NewReview<'_>) -> Result<Review, StoreError> {
        self.transaction(|c| record(c, new))
    }

    /// Reviews generated and not yet sent to their reviewers, oldest first.
    pub fn unsent_reviews(&self) -> Result<Vec<Review>, StoreError> {
        self.with_conn(|c| listed(c, "FROM review WHERE sent_at IS NULL AND ?1 IS NULL ORDER BY id", None))
    }

    /// Marks review `id` as sent and queues `pages`, in one transaction.
    pub fn send_review(&mut self, id: i64, pages: &[NewNotification], now: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| mark(c, "UPDATE review SET sent_at = ?2 WHERE id = ?1", id, pages, now))
    }

    /// The newest version of the review of `asset` for `period`, with its signatures.
    pub fn review(&self, asset: &str, period: &str) -> Result<Option<Review>, StoreError> {
        self.with_conn(|c| newest(c, asset, period))
    }

    /// Review `id` (whichever version it is), with its signatures.
    pub fn review_by_id(&self, id: i64) -> Result<Option<Review>, StoreError> {
        self.with_conn(|c| {
            let found = c
                .prepare_cached(&format!("SELECT {COLUMNS} FROM review WHERE id = ?1"))?
                .query_row([id], row)
                .optional()?;
            found.map(|r| signed(c, r)).transpose()
        })
    }

    /// The PDF of review `id` as it was generated.
    pub fn review_report(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_conn(|c| {
            c.query_row("SELECT report FROM review WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })
    }

    /// The newest version of every review, newest period first; with `asset`, of that
    /// asset only; at most `limit`.
    pub fn reviews(&self, asset: Option<&str>, limit: usize) -> Result<Vec<Review>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM review r
                 WHERE (?1 IS NULL OR asset = ?1)
                   AND version = (SELECT max(version) FROM review n WHERE n.asset = r.asset AND n.period = r.period)
                 ORDER BY period_to DESC, asset LIMIT ?2"
            ))?;
            let rows: Vec<Review> = st
                .query_map(params![asset, limit as i64], row)?
                .collect::<rusqlite::Result<_>>()?;
            rows.into_iter().map(|r| signed(c, r)).collect()
        })
    }

    /// The newest version of every review of `asset` whose period overlaps `from`..`to`,
    /// oldest period first.
    pub fn reviews_overlapping(
        &self,
        asset: &str,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<Review>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM review r
                 WHERE asset = ?1 AND period_from < ?3 AND period_to > ?2
                   AND version = (SELECT max(version) FROM review n WHERE n.asset = r.asset AND n.period = r.period)
                 ORDER BY period_from, every"
            ))?;
            let rows: Vec<Review> = st
                .query_map(params![asset, from, to], row)?
                .collect::<rusqlite::Result<_>>()?;
            rows.into_iter().map(|r| signed(c, r)).collect()
        })
    }

    /// The end of the newest period of `asset` reviewed `every` (weekly, monthly...).
    pub fn last_reviewed_period(&self, asset: &str, every: &str) -> Result<Option<TimestampMs>, StoreError> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT max(period_to) FROM review WHERE asset = ?1 AND every = ?2",
                [asset, every],
                |r| r.get(0),
            )
        })
    }

    /// Whether any of `sensors` has a reading from `from` (inclusive) to `to`.
    pub fn has_readings(&self, sensors: &[&str], from: TimestampMs, to: TimestampMs) -> Result<bool, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM reading r JOIN sensor s ON s.id = r.sensor
                                WHERE s.name = ?1 AND r.t >= ?2 AND r.t < ?3)",
            )?;
            for s in sensors {
                if st.query_row(params![s, from, to], |r| r.get::<_, bool>(0))? {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Signs version `version` of the review of `asset` for `period`, or says why not
    /// (nothing recorded then).
    pub fn sign_review(
        &mut self,
        signer: &Signer,
        asset: &str,
        period: &str,
        version: i64,
        meaning: Meaning,
        now: TimestampMs,
    ) -> Result<Result<Review, ReviewRefused>, StoreError> {
        self.transaction(|c| sign(c, signer, asset, period, version, meaning, now))
    }

    /// Reviews past their due time, not yet signed and not yet reminded of (the newest
    /// version of each).
    pub fn reviews_to_remind(&self, now: TimestampMs) -> Result<Vec<Review>, StoreError> {
        self.with_conn(|c| {
            listed(
                c,
                &format!("FROM review r WHERE reminded_at IS NULL AND due_at < ?1 AND {UNSIGNED_NEWEST} ORDER BY id"),
                Some(now),
            )
        })
    }

    /// Reviews whose newest version nobody has signed yet, oldest first.
    pub fn unsigned_reviews(&self) -> Result<Vec<Review>, StoreError> {
        self.overdue_reviews(TimestampMs::MAX)
    }

    /// Reviews past their due time whose newest version nobody has signed, oldest first.
    pub fn overdue_reviews(&self, now: TimestampMs) -> Result<Vec<Review>, StoreError> {
        self.with_conn(|c| {
            listed(
                c,
                &format!("FROM review r WHERE due_at < ?1 AND {UNSIGNED_NEWEST} ORDER BY id"),
                Some(now),
            )
        })
    }

    /// Marks review `id` as reminded of and queues `pages`, in one transaction.
    pub fn remind_review(&mut self, id: i64, pages: &[NewNotification], now: TimestampMs) -> Result<(), StoreError> {
        self.transaction(|c| mark(c, "UPDATE review SET reminded_at = ?2 WHERE id = ?1", id, pages, now))
    }
}
