//! The periodic reviews of a report's period ([`crate::review`]): each review of the
//! asset whose period overlaps the report's, with its version, the SHA-256 of the report
//! that was reviewed, its status and its signatures.
//!
//! What a review says is not part of the content it signs: the review section is left
//! out of the report's content hash ([`super::content_sha256`]), so signing a review
//! does not change the report the next signature covers.

use jiff::tz::TimeZone;

use crate::report::render::Block;
use crate::store::quality::review::Review;
use crate::store::{Store, StoreError};

use super::AssetReport;
use super::layout::fmt_second;
use super::quality::signer;

/// The reviews of `asset` whose period overlaps `from`..`to`, oldest first.
pub(super) fn gather(store: &Store, asset: &str, from: i64, to: i64) -> Result<Vec<Review>, StoreError> {
    store.reviews_overlapping(asset, from, to)
}

/// A review's status as a sentence: "approved — reviewed by A (a) at T; approved by …".
fn status(r: &Review, tz: &TimeZone) -> String {
    if r.signatures.is_empty() {
        return format!("{} (due {})", r.status, fmt_second(r.due_at, tz));
    }
    let signed: Vec<String> = r
        .signatures
        .iter()
        .map(|s| {
            format!(
                "{} by {} at {}",
                s.meaning,
                signer(&s.printed_name, &s.user),
                fmt_second(s.t, tz)
            )
        })
        .collect();
    format!("{} — {}", r.status, signed.join("; "))
}

/// The "Periodic review" section; nothing when no review covers the period.
pub(super) fn blocks(r: &AssetReport, tz: &TimeZone) -> Vec<Block> {
    if r.reviews.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading("Periodic review".into()),
        Block::Paragraph(
            "Each review of this asset whose period overlaps this report: the report that was \
             reviewed (its version and the SHA-256 of its PDF, kept in the store as generated) and \
             who signed it, when, and as what."
                .into(),
        ),
        Block::Table {
            headers: ["Period", "Version", "Report SHA-256", "Status"]
                .map(String::from)
                .to_vec(),
            rows: r
                .reviews
                .iter()
                .map(|v| {
                    vec![
                        format!("{} ({})", v.period, v.every),
                        v.version.to_string(),
                        v.report_sha256.clone(),
                        status(v, tz),
                    ]
                })
                .collect(),
            widths: Some(vec![1.1, 0.9, 2.6, 3.4]),
        },
    ]
}

/// The CSV rows of the reviews: `review` (period bounds, version, hash, status) and one
/// `signature` row per review signature.
pub(super) fn write_csv(
    r: &AssetReport,
    out: &mut impl std::io::Write,
    q: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    use crate::model::format_rfc3339 as utc;
    for v in &r.reviews {
        let detail = format!(
            "review {} of {} ({}), version {}; report sha256 {}; {}",
            v.id, v.period, v.every, v.version, v.report_sha256, v.status
        );
        writeln!(out, "review,,{},{},,,,,,{}", utc(v.from), utc(v.to), q(&detail))?;
        for s in &v.signatures {
            let detail = format!(
                "{}; meaning {}; signed review {} of {} version {}; content sha256 {}",
                signer(&s.printed_name, &s.user),
                s.meaning,
                v.id,
                v.period,
                v.version,
                s.content_sha256
            );
            writeln!(out, "signature,,{},,,,,,,{}", utc(s.t), q(&detail))?;
        }
    }
    Ok(())
}
