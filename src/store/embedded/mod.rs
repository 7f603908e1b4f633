//! The embedded store: one SQLite file in WAL mode, the system of record.
//!
//! Schema (version 1; later migrations add the alarm tables, the paging outbox, `meta`
//! and the mirror's outbox, see `alarms`, `outbox` and `mirror`):
//! - `sensor(id INTEGER PRIMARY KEY, name TEXT UNIQUE, unit TEXT)`: sensor names once,
//!   so every reading row carries a small integer instead of the name.
//! - `reading(sensor, t, seq, value, quality)`, `WITHOUT ROWID`, keyed by
//!   `(sensor, t, seq)`: the table *is* the per-sensor time index, with no second copy
//!   of the key. `t` is UTC milliseconds; `seq` tells apart two different readings of a
//!   sensor in the same millisecond and is 0 (stored in zero bytes) otherwise; `value`
//!   is NULL when the quality says there is none; `quality` 0 (`good`) takes no bytes.
//!   A row costs about 20–24 bytes on disk.
//!
//! Its parts: `open` creates or opens the file (private modes, writer or reader),
//! `schema` holds the migrations and the connection's pragmas, `readings` writes
//! readings (deduplicated, bound into the audit trail, queued for the mirror) and seals
//! their blocks, `history` reads them back (ranges, pages of an export, the latest
//! value). The [`Store`] handle itself, its transactions and snapshots, is here.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::model::{Quality, TimestampMs};

mod history;
mod open;
mod readings;
mod schema;
#[cfg(test)]
mod tests;

pub use open::private_dir;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path} has schema version {found}, newer than this cryowatch knows ({known}); upgrade cryowatch")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("store {0} does not exist yet: nothing has been recorded (start the daemon first)")]
    Missing(String),
    #[error("store {0} is being created by the daemon: nothing recorded yet, try again in a moment")]
    NotReady(String),
    #[error(
        "store {path} has schema version {found}, older than this cryowatch ({known}); start the daemon once to upgrade it"
    )]
    TooOld { path: String, found: i64, known: i64 },
}

/// A reading to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub sensor: i64,
    pub time: TimestampMs,
    pub value: Option<f64>,
    pub quality: Quality,
    /// The time came from the source: an identical reading at the same time is the same
    /// reading delivered again (after a reconnect or restart) and is skipped. Readings
    /// stamped on arrival are never merged, however alike.
    pub source_time: bool,
}

impl From<(i64, TimestampMs, Option<f64>, Quality)> for Row {
    /// A source-stamped reading (the common case in tests and imports).
    fn from((sensor, time, value, quality): (i64, TimestampMs, Option<f64>, Quality)) -> Row {
        Row {
            sensor,
            time,
            value,
            quality,
            source_time: true,
        }
    }
}

/// A stored reading as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub time: TimestampMs,
    pub value: Option<f64>,
    pub quality: Quality,
}

/// Where a reading sits in its sensor's history (time, then arrival order): a page of
/// an export starts at one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryKey {
    pub t: TimestampMs,
    pub seq: i64,
}

impl HistoryKey {
    /// The first reading stamped `t` or later.
    pub fn at(t: TimestampMs) -> HistoryKey {
        HistoryKey { t, seq: i64::MIN }
    }
}

impl std::fmt::Display for HistoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.t, self.seq)
    }
}

impl std::str::FromStr for HistoryKey {
    type Err = String;

    /// Reads `T.SEQ` as [`Display`](std::fmt::Display) writes it.
    fn from_str(s: &str) -> Result<HistoryKey, String> {
        let bad = || format!("expected the X-Next-Cursor of a previous answer (digits.digits), found {s:?}");
        let (t, seq) = s.split_once('.').ok_or_else(bad)?;
        Ok(HistoryKey {
            t: t.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// A sensor's newest reading and its newest good one.
pub type Latest = (Option<StoredReading>, Option<StoredReading>);

/// The newest millisecond written for one sensor and the (value bits, quality) stored in it.
type SameMs = (TimestampMs, Vec<(Option<u64>, i64)>);

pub struct Store {
    conn: Connection,
    path: String,
    /// Per sensor id.
    same_ms: HashMap<i64, SameMs>,
    /// New readings are also queued for the InfluxDB mirror.
    mirror: bool,
    /// Readings before this time are sealed in the audit trail: one arriving late for
    /// them makes its block sealed again; newer ones are bound into the batch chain as
    /// they are committed (`audit::batch`).
    sealed_until: TimestampMs,
    /// The newest batch this store wrote (seq, hash): a seal checks the table still ends
    /// with it, so batches removed or rewritten at the end of the chain are caught.
    batch_head: Option<(i64, String)>,
}

impl Store {
    fn sql<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&self.conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` inside one read transaction: everything it reads comes from one snapshot
    /// (and SQLite takes its read lock once, not once per query).
    pub fn snapshot<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.sql(|c| c.execute_batch("BEGIN"))?;
        let out = f(self);
        let end = self.sql(|c| c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" }));
        let out = out?;
        end?;
        Ok(out)
    }

    /// Runs `f` on the connection (reads, or writes outside the readings path).
    pub(in crate::store) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.sql(f)
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    pub(in crate::store) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        // IMMEDIATE: take the write lock first, so a read at the start of the transaction
        // (queued requests) cannot meet another writer later and fail with SQLITE_BUSY.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let v = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    /// Whether a commit syncs the WAL to disk before it returns (`true`, SQLite's
    /// `synchronous=FULL`, what [`Store::open`] sets) or leaves the sync to the next
    /// checkpoint (`false`, `NORMAL`: a power cut may lose the last commits). Only for
    /// measuring what the sync costs; a store that records keeps it on.
    pub fn set_commit_sync(&self, full: bool) -> Result<(), StoreError> {
        self.sql(|c| c.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" }))
    }

    /// Total readings stored (all sensors).
    pub fn count(&self) -> Result<i64, StoreError> {
        self.sql(|c| c.query_row("SELECT count(*) FROM reading", [], |r| r.get(0)))
    }

    /// Whether a write transaction can start now (the file is writable and no other
    /// writer holds it); nothing is written.
    pub fn writable(&self) -> bool {
        self.sql(|c| c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")).is_ok()
    }

    /// SQLite's `quick_check` ("ok" when the file is intact), after proving that a write
    /// transaction succeeds (rolled back: nothing is written).
    pub fn integrity_and_write_check(&self) -> Result<String, StoreError> {
        self.sql(|c| {
            let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            c.execute_batch(
                "BEGIN IMMEDIATE; INSERT OR REPLACE INTO meta (key, value) VALUES ('selftest', x'00'); ROLLBACK;",
            )?;
            Ok(check)
        })
    }

    /// Moves the WAL into the main file (used at shutdown and for size measurements).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.sql(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
    }
}
