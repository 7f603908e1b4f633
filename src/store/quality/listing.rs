//! Signatures read back by what they sign: the report lists every signature bound to
//! its records (`alarm N` today; `review N` and other subjects as they are signed).

use rusqlite::Connection;

use crate::model::TimestampMs;
use crate::store::{Store, StoreError};

/// One electronic signature as recorded (21 CFR 11.50): who (user and printed name),
/// when, what it means, what it signs (`subject`, e.g. `alarm 12`) and the SHA-256 of
/// the exact content signed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SignatureRecord {
    pub id: i64,
    pub t: TimestampMs,
    pub user: String,
    pub printed_name: String,
    /// `corrective action`, `acknowledged`, `reviewed`, ... as recorded: a meaning
    /// added later reads back without a change here.
    pub meaning: String,
    pub subject: String,
    pub content_sha256: String,
}

fn signatures_for(c: &Connection, subjects: &[String]) -> rusqlite::Result<Vec<SignatureRecord>> {
    let mut st = c.prepare_cached(
        "SELECT id, t, user, printed_name, meaning, subject, content_sha256
         FROM signature WHERE subject = ?1 ORDER BY id",
    )?;
    let mut out = Vec::new();
    for subject in subjects {
        let rows = st.query_map([subject], |r| {
            Ok(SignatureRecord {
                id: r.get(0)?,
                t: r.get(1)?,
                user: r.get(2)?,
                printed_name: r.get(3)?,
                meaning: r.get(4)?,
                subject: r.get(5)?,
                content_sha256: r.get(6)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by_key(|s| (s.t, s.id));
    out.dedup_by_key(|s| s.id);
    Ok(out)
}

impl Store {
    /// Every signature whose subject is one of `subjects`, in the order they were made
    /// (time, then record), each once.
    pub fn signatures_for(&self, subjects: &[String]) -> Result<Vec<SignatureRecord>, StoreError> {
        self.with_conn(|c| signatures_for(c, subjects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_come_back_for_the_subjects_asked_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        store
            .with_conn(|c| {
                c.execute_batch(
                    "INSERT INTO signature (id, t, user, printed_name, meaning, subject, content_sha256, audit)
                     VALUES (1, 300, 'ana', 'Ana A', 'corrective action', 'alarm 2', 'aa', 1),
                            (2, 100, 'bob', 'Bob B', 'acknowledged', 'alarm 7', 'bb', 2),
                            (3, 200, 'ana', 'Ana A', 'reviewed', 'review 1', 'cc', 3),
                            (4, 50, 'bob', 'Bob B', 'acknowledged', 'alarm 22', 'dd', 4);",
                )
            })
            .expect("rows");
        let asked = ["alarm 2", "alarm 7", "review 1", "alarm 2"].map(String::from);
        let found = store.signatures_for(&asked).expect("listing");
        let ids: Vec<i64> = found.iter().map(|s| s.id).collect();
        assert_eq!(ids, [2, 3, 1], "by time, each once, alarm 22 not asked");
        assert_eq!(found[2].printed_name, "Ana A");
        assert_eq!(found[2].meaning, "corrective action");
        assert!(store.signatures_for(&[]).expect("none").is_empty());
    }
}
