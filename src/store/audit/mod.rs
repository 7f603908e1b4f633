//! The audit trail: an append-only table whose rows are chained by SHA-256.
//!
//! Each row holds `(seq, t, kind, actor, subject, detail)` and `hash = SHA-256(prev ‖
//! canonical row)`, where `prev` is the hash of row `seq - 1` (64 zeros for row 1) and the
//! canonical row is the JSON array `[seq, t, kind, actor, subject, detail]` with `detail`
//! as the exact JSON text stored. Editing, deleting, inserting or reordering any row
//! breaks the chain at that row; `cryowatch audit verify` names the first broken one.
//!
//! Readings are not hashed one by one on the write path: the store writer seals them in
//! blocks of time ([`seal`]) and each block's hash is a row of this chain.
//!
//! Rows are appended inside the caller's write transaction, so an alarm transition, a
//! notification or a configuration load and its audit row commit together or not at all.

pub mod batch;
pub mod config;
pub mod seal;
pub mod verify;
pub mod watch;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::TimestampMs;

/// Schema version 6: the chain and the index of reading seals.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY,
        t       INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        actor   TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail  TEXT NOT NULL,
        prev    TEXT NOT NULL,
        hash    TEXT NOT NULL
    );
    CREATE INDEX audit_time ON audit (t);
    CREATE TABLE reading_seal (
        t_from INTEGER PRIMARY KEY,
        t_to   INTEGER NOT NULL,
        count  INTEGER NOT NULL,
        hash   TEXT NOT NULL,
        audit  INTEGER NOT NULL
    );";

/// `prev` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the trail as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub seq: i64,
    pub t: TimestampMs,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
    pub prev: String,
    pub hash: String,
}

/// The hash of a row from its fields and the previous row's hash.
pub fn chain_hash(
    prev: &str,
    seq: i64,
    t: TimestampMs,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
) -> String {
    let canonical = serde_json::json!([seq, t, kind, actor, subject, detail]).to_string();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The newest row: (seq, hash).
pub fn head(c: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    c.prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The hash record `seq` carries now, if it exists.
pub fn hash_at(c: &Connection, seq: i64) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()
}

/// Appends one row (inside the caller's transaction) and returns its seq.
pub fn append(
    c: &Connection,
    t: TimestampMs,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<i64> {
    let (last, prev) = head(c)?.unwrap_or((0, GENESIS.to_string()));
    let seq = last + 1;
    let detail = detail.to_string();
    let hash = chain_hash(&prev, seq, t, kind, actor, subject, &detail);
    c.prepare_cached(
        "INSERT INTO audit (seq, t, kind, actor, subject, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![seq, t, kind, actor, subject, detail, prev, hash])?;
    Ok(seq)
}

/// Records the daemon's stop with the newest batch of readings then (`batch::head`), so
/// batches removed while it was stopped are caught by the next verification.
pub fn record_stop(c: &Connection, now: TimestampMs, committed: u64) -> rusqlite::Result<i64> {
    let detail = serde_json::json!({
        "readings_committed": committed,
        "pid": std::process::id(),
        "batch_head": batch::head(c)?,
    });
    append(c, now, "daemon.stop", "daemon", "", &detail)
}

/// Rows with `from <= t <= to`, optionally only kinds starting with `kind`, in order.
pub fn list(
    c: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    kind: Option<&str>,
    mut each: impl FnMut(Record) -> bool,
) -> rusqlite::Result<()> {
    let mut st = c.prepare(
        "SELECT seq, t, kind, actor, subject, detail, prev, hash FROM audit
         WHERE t >= ?1 AND t <= ?2 AND (?3 IS NULL OR kind = ?3 OR kind LIKE ?3 || '.%') ORDER BY seq",
    )?;
    let mut rows = st.query(params![from, to, kind])?;
    while let Some(r) = rows.next()? {
        if !each(record(r)?) {
            break;
        }
    }
    Ok(())
}

/// A row of the trail as stored. A column holding another type than the trail writes
/// (edited by hand) is read as its debug form, so the row fails its hash instead of
/// stopping the walk.
pub(crate) fn record(r: &rusqlite::Row) -> rusqlite::Result<Record> {
    use rusqlite::types::ValueRef;
    let int = |i: usize| -> rusqlite::Result<i64> {
        Ok(match r.get_ref(i)? {
            ValueRef::Integer(n) => n,
            _ => i64::MIN,
        })
    };
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(match r.get_ref(i)? {
            ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
            v => format!("{v:?}"),
        })
    };
    Ok(Record {
        seq: int(0)?,
        t: int(1)?,
        kind: text(2)?,
        actor: text(3)?,
        subject: text(4)?,
        detail: text(5)?,
        prev: text(6)?,
        hash: text(7)?,
    })
}

/// Who runs this command line: `cli:<login>` (the invoking user behind sudo).
pub fn local_actor() -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{user}")
}

/// The audit trail as the rest of the program asks it.
impl crate::store::Store {
    /// Appends one row in a transaction of its own; returns its seq.
    pub fn append_audit(
        &mut self,
        t: TimestampMs,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, crate::store::StoreError> {
        self.transaction(|c| append(c, t, kind, actor, subject, detail))
    }

    /// Appends `entries` (kind, actor, subject, detail) in one transaction.
    pub fn append_audits(
        &mut self,
        t: TimestampMs,
        entries: &[crate::store::users::AuditEntry<'_>],
    ) -> Result<(), crate::store::StoreError> {
        self.transaction(|c| {
            for (kind, actor, subject, detail) in entries {
                append(c, t, kind, actor, subject, detail)?;
            }
            Ok(())
        })
    }

    /// Rows with `from <= t <= to`, optionally only kinds starting with `kind`, in
    /// order, to `each` until it returns false.
    pub fn audit_list(
        &self,
        from: TimestampMs,
        to: TimestampMs,
        kind: Option<&str>,
        each: impl FnMut(Record) -> bool,
    ) -> Result<(), crate::store::StoreError> {
        self.with_conn(|c| list(c, from, to, kind, each))
    }

    /// The newest row: (seq, hash).
    pub fn audit_head(&self) -> Result<Option<(i64, String)>, crate::store::StoreError> {
        self.with_conn(head)
    }

    /// The time of the newest row.
    pub fn audit_newest_time(&self) -> Result<Option<TimestampMs>, crate::store::StoreError> {
        self.with_conn(|c| c.query_row("SELECT max(t) FROM audit", [], |r| r.get(0)))
    }

    /// Records the daemon's stop (see [`record_stop`]).
    pub fn record_stop(&mut self, now: TimestampMs, committed: u64) -> Result<i64, crate::store::StoreError> {
        self.transaction(|c| record_stop(c, now, committed))
    }

    /// Verifies the whole record (see [`verify::verify`]).
    pub fn verify(&self, progress: impl FnMut(usize, usize)) -> Result<verify::Verification, crate::store::StoreError> {
        self.with_conn(|c| verify::verify(c, progress))
    }

    /// Records a load of the configuration file `path` (see [`config::record_load`]).
    pub fn record_config_load(
        &mut self,
        path: &std::path::Path,
        bytes: &[u8],
        kind: &str,
        actor: &str,
        now: TimestampMs,
    ) -> Result<i64, crate::store::StoreError> {
        self.transaction(|c| config::record_load(c, path, bytes, kind, actor, now))
    }

    /// Records a configuration refused on reload (see [`config::record_rejected`]).
    pub fn record_config_rejected(
        &mut self,
        now: TimestampMs,
        path: &std::path::Path,
        problems: &str,
    ) -> Result<(), crate::store::StoreError> {
        self.transaction(|c| config::record_rejected(c, now, path, problems))
    }

    /// The last refused configuration, when it was not followed by a good load.
    pub fn config_rejected(&self) -> Result<Option<String>, crate::store::StoreError> {
        self.with_conn(config::rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("memory db");
        c.execute_batch(MIGRATION).expect("schema");
        c
    }

    #[test]
    fn rows_chain_each_to_the_previous_hash() {
        let c = db();
        let a = append(&c, 1, "daemon.start", "daemon", "", &serde_json::json!({"v": 1})).expect("a");
        let b = append(&c, 2, "daemon.stop", "daemon", "", &serde_json::json!({})).expect("b");
        assert_eq!((a, b), (1, 2));
        let mut rows = Vec::new();
        list(&c, 0, 10, None, |r| {
            rows.push(r);
            true
        })
        .expect("list");
        assert_eq!(rows[0].prev, GENESIS);
        assert_eq!(rows[1].prev, rows[0].hash);
        assert_eq!(
            rows[1].hash,
            chain_hash(&rows[0].hash, 2, 2, "daemon.stop", "daemon", "", "{}")
        );
    }

    #[test]
    fn a_different_field_gives_a_different_hash() {
        let base = chain_hash(GENESIS, 1, 5, "k", "a", "s", "{}");
        assert_ne!(base, chain_hash(GENESIS, 1, 6, "k", "a", "s", "{}"));
        assert_ne!(base, chain_hash(GENESIS, 2, 5, "k", "a", "s", "{}"));
        // Field boundaries are part of the canonical form.
        assert_ne!(
            chain_hash(GENESIS, 1, 5, "ka", "", "s", "{}"),
            chain_hash(GENESIS, 1, 5, "k", "a", "s", "{}")
        );
    }

    #[test]
    fn kinds_filter_by_prefix() {
        let c = db();
        for k in ["alarm.raised", "alarm.cleared", "alarmist", "notification.sent"] {
            append(&c, 1, k, "x", "", &serde_json::json!({})).expect("append");
        }
        let mut kinds = Vec::new();
        list(&c, 0, 10, Some("alarm"), |r| {
            kinds.push(r.kind);
            true
        })
        .expect("list");
        assert_eq!(kinds, ["alarm.raised", "alarm.cleared"]);
    }
}
