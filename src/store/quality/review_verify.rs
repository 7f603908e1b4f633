//! `audit verify`'s check of periodic reviews: every stored report still hashes to what
//! was generated, every review matches its `review.generated` record and none is
//! missing, and every review signature covers the review it names as it is now.

use rusqlite::{Connection, OptionalExtension};

use super::review::{COLUMNS, generated_detail, review_content, row};
use super::sha256;
use crate::model::period::Period;

/// The first review or review signature that no longer matches the audit trail:
/// (audit record, what is wrong).
pub(super) fn verify(c: &Connection, head: i64) -> rusqlite::Result<Option<(i64, String)>> {
    let mut st = c.prepare(&format!("SELECT {COLUMNS}, report, audit FROM review ORDER BY id"))?;
    let rows = st.query_map([], |r| Ok((row(r)?, r.get::<_, Vec<u8>>(11)?, r.get::<_, i64>(12)?)))?;
    let mut reviews = std::collections::HashMap::new();
    for found in rows {
        let (r, pdf, seq) = found?;
        let name = format!("review {} ({} {}, version {})", r.id, r.asset, r.period, r.version);
        if super::hex(&<sha2::Sha256 as sha2::Digest>::digest(&pdf)) != r.report_sha256 {
            return Ok(Some((
                seq,
                format!("the report stored with {name} no longer hashes to what was generated: it was replaced"),
            )));
        }
        let recorded: Option<(String, String, String)> = c
            .query_row("SELECT kind, subject, detail FROM audit WHERE seq = ?1", [seq], |x| {
                Ok((x.get(0)?, x.get(1)?, x.get(2)?))
            })
            .optional()?;
        let period = Period {
            label: r.period.clone(),
            from: r.from,
            to: r.to,
        };
        let expected = generated_detail(
            &r.asset,
            &r.every,
            &period,
            r.version,
            r.due_at,
            &r.report_sha256,
            &r.content_sha256,
        );
        let matches = recorded.as_ref().is_some_and(|(kind, subject, detail)| {
            let mut d: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
            if let Some(m) = d.as_object_mut() {
                m.remove("why");
            }
            kind == "review.generated" && *subject == r.subject() && d == expected
        });
        if !matches {
            return Ok(Some((
                seq,
                format!("{name} differs from audit record {seq}: the review was edited"),
            )));
        }
        reviews.insert(r.subject(), r);
    }
    let mut st = c.prepare("SELECT seq, subject FROM audit WHERE kind = 'review.generated' ORDER BY seq")?;
    for found in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (seq, subject) = found?;
        if !reviews.contains_key(&subject) {
            return Ok(Some((
                seq,
                format!("{subject} was generated in audit record {seq}, but it is missing from the store"),
            )));
        }
    }
    let mut st = c.prepare(
        "SELECT id, subject, content_sha256, audit, printed_name FROM signature WHERE subject LIKE 'review %' ORDER BY id",
    )?;
    for found in st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })? {
        let (id, subject, hash, seq, printed) = found?;
        let ok = reviews
            .get(&subject)
            .is_some_and(|r| sha256(&review_content(r)) == hash);
        if !ok {
            return Ok(Some((
                if seq > 0 { seq } else { head },
                format!(
                    "signature {id} by {printed} no longer matches {subject} as it is now: the review or the signature was changed"
                ),
            )));
        }
    }
    Ok(None)
}
