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

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::model::{Quality, TimestampMs};
use crate::store::audit::batch::Bound;

/// Migrations in order; `schema_version` holds how many have run.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sensor (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL
    );
    CREATE TABLE reading (
        sensor  INTEGER NOT NULL,
        t       INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        value   REAL,
        quality INTEGER NOT NULL,
        PRIMARY KEY (sensor, t, seq)
    ) WITHOUT ROWID;",
    super::alarms::MIGRATION,
    super::outbox::MIGRATION,
    // 4: installation secrets (e.g. the key that signs acknowledgement links) and the
    // acknowledgement links already used (single use).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE ack_link_used (nonce TEXT PRIMARY KEY, t INTEGER NOT NULL, alarm INTEGER NOT NULL, contact TEXT NOT NULL) WITHOUT ROWID;",
    // 5: the outbox of the InfluxDB mirror.
    super::mirror::MIGRATION,
    // 6: the hash-chained audit trail and the seals of reading blocks.
    crate::store::audit::MIGRATION,
    // 7: per-minute summaries written by retention.
    super::retention::MIGRATION,
    // 8: alarm tests (`cryowatch test-alarm`): which alarms were tests, who started them.
    "CREATE TABLE alarm_test (
        id         INTEGER PRIMARY KEY,
        sensor     TEXT NOT NULL,
        rule       TEXT NOT NULL,
        alarm      INTEGER,
        started_at INTEGER NOT NULL,
        by         TEXT NOT NULL,
        value      REAL NOT NULL
    );
    CREATE INDEX alarm_test_alarm ON alarm_test (alarm);",
    // 9: people who sign in to the web dashboard, and their sessions.
    super::users::MIGRATION,
    // 10: readings bound into the record at commit, until their block is sealed.
    crate::store::audit::batch::MIGRATION,
    // 11: readings kept but not believed (stamped far ahead of the clock).
    super::flags::MIGRATION,
    // 12: the members of a power incident, found for its update pages and its return
    // to normal.
    "CREATE INDEX alarm_incident ON alarm (incident) WHERE incident IS NOT NULL;",
    // 13: ids of the SMS the gateway's webhook delivered, so a replay is handled once.
    "CREATE TABLE inbound_sms (sid TEXT PRIMARY KEY, t INTEGER NOT NULL) WITHOUT ROWID;",
];

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

/// Creates `dir` (and its parents) with mode 0700 when it does not exist; an existing
/// directory keeps the mode its administrator gave it.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty with mode 0600 when it does not exist.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (creating if needed) the store for writing and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            private_dir(dir).map_err(|e| StoreError::Sqlite {
                path: name.clone(),
                source: rusqlite::Error::InvalidPath(format!("cannot create directory {}: {e}", dir.display()).into()),
            })?;
        }
        // The store holds the password hashes and the key that signs acknowledgement
        // links: created readable by its owner only, whatever the umask. SQLite gives
        // the -wal and -shm files the database file's mode.
        private_file(path).map_err(|e| StoreError::Sqlite {
            path: name.clone(),
            source: rusqlite::Error::InvalidPath(format!("cannot create {}: {e}", path.display()).into()),
        })?;
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: name.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: name,
            same_ms: HashMap::new(),
            mirror: false,
            sealed_until: 0,
            batch_head: None,
        };
        store.setup()?;
        store.sealed_until = store.sql(crate::store::audit::seal::sealed_until)?;
        store.batch_head = store.sql(crate::store::audit::batch::head)?;
        Ok(store)
    }

    /// Opens an existing store for reading only (history, status) while the daemon may
    /// be writing it.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing(name));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|source| StoreError::Sqlite {
                    path: name.clone(),
                    source,
                })?;
        let store = Store {
            conn,
            path: name,
            same_ms: HashMap::new(),
            mirror: false,
            sealed_until: 0,
            batch_head: None,
        };
        store.sql(|c| c.busy_timeout(std::time::Duration::from_secs(5)))?;
        // The daemon creates the file first and the schema in a transaction after it.
        let version: Option<i64> = store.sql(|c| {
            let created: i64 = c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                [],
                |r| r.get(0),
            )?;
            if created == 0 {
                return Ok(None);
            }
            c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional()
        })?;
        let known = MIGRATIONS.len() as i64;
        match version {
            None | Some(0) => Err(StoreError::NotReady(store.path)),
            Some(found) if found > known => Err(StoreError::TooNew {
                path: store.path,
                found,
                known,
            }),
            Some(found) if found < known => Err(StoreError::TooOld {
                path: store.path,
                found,
                known,
            }),
            Some(_) => Ok(store),
        }
    }

    fn sql<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&self.conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    fn setup(&mut self) -> Result<(), StoreError> {
        self.sql(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            // WAL: readers never block the writer. synchronous=FULL: every commit syncs
            // the WAL before it returns, so what a commit records survives a power cut or
            // an operating-system crash, not only a crash of the process; nothing is
            // acknowledged to a source, a person or a peer before its commit returned.
            // The writer commits in batches, so the sync is paid per batch, not per reading.
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        })?;
        let version: Option<i64> = self.sql(|c| {
            c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional()
        })?;
        let known = MIGRATIONS.len() as i64;
        let current = version.unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let run = || -> rusqlite::Result<()> {
            for m in &MIGRATIONS[current as usize..] {
                tx.execute_batch(m)?;
            }
            if version.is_none() {
                tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])?;
            } else {
                tx.execute("UPDATE schema_version SET version = ?1", [known])?;
            }
            Ok(())
        };
        run()
            .and_then(|()| tx.commit())
            .map_err(|source| StoreError::Sqlite { path, source })
    }

    /// Seals the readings of every block that ended `grace_ms` ago (see `audit::seal`).
    pub fn seal_due(
        &mut self,
        now: TimestampMs,
        interval_ms: i64,
        grace_ms: i64,
    ) -> Result<Option<crate::store::audit::seal::Sealed>, StoreError> {
        // Known to be sealed up to the horizon: no transaction just to find that out.
        if self.sealed_until > 0 && crate::store::audit::seal::horizon(now, interval_ms, grace_ms) <= self.sealed_until
        {
            return Ok(None);
        }
        let written = self.batch_head.clone();
        let sealed =
            self.transaction(|c| crate::store::audit::seal::seal_due(c, now, interval_ms, grace_ms, written.as_ref()))?;
        if let Some(s) = &sealed {
            self.sealed_until = s.to;
            if !s.more {
                // The seal recorded what stays open and dropped the batches.
                self.batch_head = None;
            }
        }
        Ok(sealed)
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.sql(|c| c.query_row("SELECT version FROM schema_version", [], |r| r.get(0)))
    }

    /// Registers the configured sensors (name → id), updating units; sensors no longer
    /// configured keep their rows so their history stays readable.
    pub fn register_sensors(&mut self, sensors: &[(String, String)]) -> Result<Vec<i64>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let before = crate::store::audit::seal::sensors_hash(&tx).map_err(err)?;
        let mut ids = Vec::with_capacity(sensors.len());
        {
            let mut up = tx
                .prepare("INSERT INTO sensor (name, unit) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET unit = excluded.unit RETURNING id")
                .map_err(err)?;
            for (name, unit) in sensors {
                ids.push(up.query_row(params![name, unit], |r| r.get(0)).map_err(err)?);
            }
        }
        let after = crate::store::audit::seal::sensors_hash(&tx).map_err(err)?;
        if after != before {
            let list: Vec<_> = sensors.iter().map(|(n, u)| serde_json::json!([n, u])).collect();
            crate::store::audit::append(
                &tx,
                crate::model::now_ms(),
                "sensors.registered",
                "daemon",
                "sensor table",
                &serde_json::json!({ "sensors": after, "configured": list }),
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(ids)
    }

    /// Sensor name → (id, unit) for every sensor ever registered.
    pub fn sensors(&self) -> Result<HashMap<String, (i64, String)>, StoreError> {
        self.sql(|c| {
            let mut st = c.prepare("SELECT name, id, unit FROM sensor")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect()
        })
    }

    /// Turns queueing for the InfluxDB mirror on or off. Turning it off empties the
    /// mirror's outbox and returns how many readings were waiting in it.
    pub fn set_mirror(&mut self, on: bool) -> Result<usize, StoreError> {
        let dropped = self.transaction(|c| {
            if on {
                super::mirror::enable(c).map(|()| 0)
            } else {
                super::mirror::disable(c)
            }
        })?;
        self.mirror = on;
        Ok(dropped)
    }

    /// Writes readings in one transaction. A source-stamped reading identical to one
    /// already stored (a redelivered message) is skipped; any other reading in the same
    /// millisecond is kept with the next `seq`.
    pub fn insert<R: Copy + Into<Row>>(&mut self, rows: &[R]) -> Result<(), StoreError> {
        self.insert_then(rows, |_, _| Ok(()))
    }

    /// Writes readings and then, in the same transaction, whatever `then` writes.
    /// `then` learns which rows were new (`true`) and which were redeliveries skipped.
    pub fn insert_then<R: Copy + Into<Row>>(
        &mut self,
        rows: &[R],
        then: impl FnOnce(&Connection, &[bool]) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let res = self.insert_inner(rows, then);
        if res.is_err() {
            // The transaction rolled back: what the cache says was written was not.
            self.same_ms.clear();
        }
        res
    }

    fn insert_inner<R: Copy + Into<Row>>(
        &mut self,
        rows: &[R],
        then: impl FnOnce(&Connection, &[bool]) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut new = Vec::with_capacity(rows.len());
        let mut late = Vec::new();
        let mut bound = Vec::with_capacity(rows.len());
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO reading (sensor, t, seq, value, quality) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .map_err(err)?;
            for row in rows {
                let Row {
                    sensor,
                    time: t,
                    value,
                    quality,
                    source_time,
                } = (*row).into();
                if t < self.sealed_until {
                    late.push((new.len(), t));
                }
                let key = (value.map(f64::to_bits), quality.code());
                // The newest millisecond of each sensor is remembered, so a burst of
                // readings within one millisecond needs no lookups. `None`: older than
                // that millisecond, looked up.
                let seq = match self.same_ms.get_mut(&sensor) {
                    Some((last, seen)) if *last == t => {
                        if source_time && seen.contains(&key) {
                            new.push(false);
                            continue;
                        }
                        seen.push(key);
                        Some(seen.len() - 1)
                    }
                    Some((last, _)) if *last > t => None,
                    _ => Some(0),
                };
                let stored = match seq {
                    None => insert_out_of_order(&tx, sensor, t, value, quality, source_time).map_err(err)?,
                    Some(seq)
                        if ins
                            .execute(params![sensor, t, seq as i64, value, quality.code()])
                            .map_err(err)?
                            == 0 =>
                    {
                        self.same_ms.remove(&sensor);
                        insert_out_of_order(&tx, sensor, t, value, quality, source_time).map_err(err)?
                    }
                    Some(seq) => {
                        if seq == 0 {
                            self.same_ms.insert(sensor, (t, vec![key]));
                        }
                        Some(seq as i64)
                    }
                };
                if let Some(seq) = stored {
                    let b = Bound {
                        sensor,
                        t,
                        seq,
                        value,
                        quality,
                    };
                    keep_stored(&tx, (self.mirror, self.sealed_until), &mut bound, b).map_err(err)?;
                }
                new.push(stored.is_some());
            }
        }
        // Every reading newer than the seals is bound into the record in this transaction.
        let bound = crate::store::audit::batch::bind(&tx, crate::model::now_ms(), &bound).map_err(err)?;
        // Only readings really stored (not redeliveries) change a sealed block.
        let late: Vec<TimestampMs> = late.into_iter().filter(|&(i, _)| new[i]).map(|(_, t)| t).collect();
        if !late.is_empty() {
            crate::store::audit::seal::reseal(&tx, crate::model::now_ms(), &late, None, "late readings")
                .map_err(err)?;
        }
        then(&tx, &new).map_err(err)?;
        tx.commit().map_err(err)?;
        if bound.is_some() {
            self.batch_head = bound;
        }
        Ok(())
    }

    /// Readings of one sensor with `from <= time <= to`, in time order.
    pub fn history(
        &self,
        sensor_id: i64,
        from: TimestampMs,
        to: TimestampMs,
        mut each: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        self.sql(|c| {
            let mut st = c.prepare(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t, seq",
            )?;
            let mut rows = st.query(params![sensor_id, from, to])?;
            while let Some(r) = rows.next()? {
                let q: i64 = r.get(2)?;
                let reading = StoredReading {
                    time: r.get(0)?,
                    value: r.get(1)?,
                    quality: Quality::from_code(q).unwrap_or(Quality::CommError),
                };
                if !each(reading) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Readings of one sensor from key `start` (inclusive) to time `to` (inclusive), in
    /// order, stopping before key `end` when given: one page of an export.
    pub fn history_page(
        &self,
        sensor_id: i64,
        start: HistoryKey,
        to: TimestampMs,
        end: Option<HistoryKey>,
        mut each: impl FnMut(StoredReading) -> bool,
    ) -> Result<(), StoreError> {
        let end = end.unwrap_or(HistoryKey { t: to, seq: i64::MAX });
        self.sql(|c| {
            let mut st = c.prepare(
                "SELECT t, value, quality FROM reading
                 WHERE sensor = ?1 AND (t, seq) >= (?2, ?3) AND t <= ?4 AND (t, seq) < (?5, ?6)
                 ORDER BY t, seq",
            )?;
            let mut rows = st.query(params![sensor_id, start.t, start.seq, to, end.t, end.seq])?;
            while let Some(r) = rows.next()? {
                let q: i64 = r.get(2)?;
                let reading = StoredReading {
                    time: r.get(0)?,
                    value: r.get(1)?,
                    quality: Quality::from_code(q).unwrap_or(Quality::CommError),
                };
                if !each(reading) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The key of the reading `n` places (0-based) after key `start` among those of
    /// `sensor_id` stamped no later than `to`: where the page after `n` rows begins, or
    /// `None` when there are no more.
    pub fn history_nth(
        &self,
        sensor_id: i64,
        start: HistoryKey,
        to: TimestampMs,
        n: u64,
    ) -> Result<Option<HistoryKey>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.sql(|c| {
            c.query_row(
                "SELECT t, seq FROM reading WHERE sensor = ?1 AND (t, seq) >= (?2, ?3) AND t <= ?4
                 ORDER BY t, seq LIMIT 1 OFFSET ?5",
                params![sensor_id, start.t, start.seq, to, n],
                |r| {
                    Ok(HistoryKey {
                        t: r.get(0)?,
                        seq: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// The newest reading of a sensor, and the newest good one, stamped no later than
    /// `not_after` (now plus the clock skew allowed: [`crate::config::Config::latest_bound`])
    /// and not flagged ([`super::flags`]): a reading whose clock ran ahead is never a
    /// sensor's latest value.
    pub fn latest(&self, sensor_id: i64, not_after: TimestampMs) -> Result<Latest, StoreError> {
        Ok(self.latest_of(&[sensor_id], not_after)?.pop().unwrap_or((None, None)))
    }

    /// [`Store::latest`] of many sensors, with the two statements prepared once (most
    /// of a lookup's cost is getting the statement ready, not the index seek).
    pub fn latest_of(&self, sensor_ids: &[i64], not_after: TimestampMs) -> Result<Vec<Latest>, StoreError> {
        self.sql(|c| {
            let read = |r: &rusqlite::Row| -> rusqlite::Result<StoredReading> {
                let q: i64 = r.get(2)?;
                Ok(StoredReading {
                    time: r.get(0)?,
                    value: r.get(1)?,
                    quality: Quality::from_code(q).unwrap_or(Quality::CommError),
                })
            };
            let not_flagged = super::flags::NOT_FLAGGED;
            let mut newest = c.prepare_cached(&format!(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t <= ?2 AND {not_flagged}
                 ORDER BY t DESC, seq DESC LIMIT 1"
            ))?;
            let mut newest_good = c.prepare_cached(&format!(
                "SELECT t, value, quality FROM reading WHERE sensor = ?1 AND t <= ?2 AND quality = 0 AND {not_flagged}
                 ORDER BY t DESC, seq DESC LIMIT 1"
            ))?;
            let mut out = Vec::with_capacity(sensor_ids.len());
            for &id in sensor_ids {
                let last = newest.query_row(params![id, not_after], read).optional()?;
                let good = match &last {
                    Some(l) if l.quality == Quality::Good => Some(l.clone()),
                    _ => newest_good.query_row(params![id, not_after], read).optional()?,
                };
                out.push((last, good));
            }
            Ok(out)
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
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        self.sql(f)
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
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

    /// Total readings stored (all sensors).
    pub fn count(&self) -> Result<i64, StoreError> {
        self.sql(|c| c.query_row("SELECT count(*) FROM reading", [], |r| r.get(0)))
    }

    /// Moves the WAL into the main file (used at shutdown and for size measurements).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.sql(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
    }
}

/// A reading was stored: queued for the InfluxDB mirror when it is on, and kept for the
/// batch digest unless it falls in a sealed block (then its block is sealed again instead).
fn keep_stored(
    tx: &Connection,
    (mirror, sealed_until): (bool, TimestampMs),
    bound: &mut Vec<Bound>,
    b: Bound,
) -> rusqlite::Result<()> {
    if mirror {
        super::mirror::enqueue(tx, b.sensor, b.t, b.seq, b.value, b.quality)?;
    }
    if b.t >= sealed_until {
        bound.push(b);
    }
    Ok(())
}

/// Inserts a reading whose millisecond may already hold readings: a source-stamped one
/// is skipped when an identical one is there (a redelivered message); otherwise it is
/// stored with the next `seq`, which is returned.
fn insert_out_of_order(
    tx: &rusqlite::Transaction,
    sensor: i64,
    t: TimestampMs,
    value: Option<f64>,
    quality: Quality,
    source_time: bool,
) -> rusqlite::Result<Option<i64>> {
    let duplicate: bool = source_time
        && tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM reading WHERE sensor = ?1 AND t = ?2 AND value IS ?3 AND quality = ?4)",
            params![sensor, t, value, quality.code()],
            |r| r.get(0),
        )?;
    if duplicate {
        return Ok(None);
    }
    tx.query_row(
        "INSERT INTO reading (sensor, t, seq, value, quality)
         SELECT ?1, ?2, coalesce(max(seq) + 1, 0), ?3, ?4 FROM reading WHERE sensor = ?1 AND t = ?2
         RETURNING seq",
        params![sensor, t, value, quality.code()],
        |r| r.get(0),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        (dir, store)
    }

    fn all(store: &Store, id: i64) -> Vec<StoredReading> {
        let mut out = Vec::new();
        store
            .history(id, i64::MIN, i64::MAX, |r| {
                out.push(r);
                true
            })
            .expect("history");
        out
    }

    #[test]
    fn the_store_and_its_directory_are_private_to_their_owner_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("var/lib/cryowatch/cryowatch.db");
        let store = Store::open(&path).expect("open");
        store
            .with_conn(|c| c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);"))
            .expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "the database");
        let wal = path.with_extension("db-wal");
        assert_eq!(mode(&wal), 0o600, "the write-ahead log");
        assert_eq!(mode(path.parent().expect("dir")), 0o700, "the directory created for it");
    }

    #[test]
    fn a_store_without_its_schema_yet_is_not_ready_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        assert!(matches!(Store::open_read_only(&path), Err(StoreError::Missing(_))));
        drop(Connection::open(&path).unwrap());
        let err = Store::open_read_only(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is being created"), "{err}");
        drop(Store::open(&path).unwrap());
        assert!(Store::open_read_only(&path).is_ok());
    }

    #[test]
    fn every_commit_is_synced_to_disk_before_it_returns() {
        // synchronous: 2 = FULL (the WAL is synced at every commit), 1 = NORMAL (only at
        // checkpoints: a power cut loses commits already reported done).
        let (_dir, store) = temp_store();
        let level: i64 = store
            .sql(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)))
            .expect("pragma");
        assert_eq!(level, 2);
        let mode: String = store
            .sql(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_new_store_is_at_the_latest_schema_version_and_reopens() {
        let (dir, store) = temp_store();
        assert_eq!(store.schema_version().expect("version"), MIGRATIONS.len() as i64);
        drop(store);
        let again = Store::open(&dir.path().join("s.db")).expect("reopen");
        assert_eq!(again.schema_version().expect("version"), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let (dir, store) = temp_store();
        store
            .sql(|c| c.execute("UPDATE schema_version SET version = 99", []))
            .expect("bump");
        drop(store);
        assert!(matches!(
            Store::open(&dir.path().join("s.db")),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn readings_come_back_in_time_order_with_their_quality() {
        let (_dir, mut store) = temp_store();
        let ids = store
            .register_sensors(&[("a".into(), "degC".into()), ("b".into(), "%".into())])
            .expect("sensors");
        store
            .insert(&[
                (ids[0], 20, Some(-190.5), Quality::Good),
                (ids[0], 10, None, Quality::CommError),
                (ids[1], 15, Some(1.0), Quality::Good),
            ])
            .expect("insert");
        let got = all(&store, ids[0]);
        assert_eq!(got.iter().map(|r| r.time).collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!(got[0].quality, Quality::CommError);
        assert_eq!(got[1].value, Some(-190.5));
    }

    #[test]
    fn two_readings_in_one_millisecond_are_both_kept_and_an_exact_repeat_is_not() {
        let (_dir, mut store) = temp_store();
        let ids = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
        store
            .insert(&[
                (ids[0], 5, Some(1.0), Quality::Good),
                (ids[0], 5, Some(2.0), Quality::Good),
            ])
            .expect("insert");
        store
            .insert(&[
                (ids[0], 5, Some(2.0), Quality::Good),
                (ids[0], 5, Some(3.0), Quality::Good),
            ])
            .expect("insert");
        let values: Vec<_> = all(&store, ids[0]).iter().map(|r| r.value).collect();
        assert_eq!(values, vec![Some(1.0), Some(2.0), Some(3.0)]);
    }

    #[test]
    fn identical_readings_stamped_on_arrival_are_all_kept() {
        let (_dir, mut store) = temp_store();
        let ids = store.register_sensors(&[("a".into(), "%".into())]).expect("sensors");
        let row = Row {
            sensor: ids[0],
            time: 5,
            value: Some(85.5),
            quality: Quality::Good,
            source_time: false,
        };
        store.insert(&[row, row]).expect("insert");
        store
            .insert(&[row, Row { time: 4, ..row }, Row { time: 4, ..row }])
            .expect("insert");
        let got: Vec<_> = all(&store, ids[0]).iter().map(|r| r.time).collect();
        assert_eq!(got, vec![4, 4, 5, 5, 5]);
    }

    #[test]
    fn after_a_restart_a_repeated_reading_is_skipped_and_a_new_one_in_the_same_millisecond_kept() {
        let (dir, mut store) = temp_store();
        let ids = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
        store
            .insert(&[
                (ids[0], 5, Some(1.0), Quality::Good),
                (ids[0], 9, Some(9.0), Quality::Good),
            ])
            .expect("insert");
        drop(store);
        let mut store = Store::open(&dir.path().join("s.db")).expect("reopen");
        store
            .insert(&[
                (ids[0], 5, Some(1.0), Quality::Good),
                (ids[0], 5, Some(4.0), Quality::Good),
                (ids[0], 7, None, Quality::Stale),
            ])
            .expect("insert");
        let got: Vec<_> = all(&store, ids[0]).iter().map(|r| (r.time, r.value)).collect();
        assert_eq!(got, vec![(5, Some(1.0)), (5, Some(4.0)), (7, None), (9, Some(9.0))]);
    }

    #[test]
    fn registering_again_keeps_ids_and_updates_units() {
        let (_dir, mut store) = temp_store();
        let first = store.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
        let again = store
            .register_sensors(&[("b".into(), "x".into()), ("a".into(), "K".into())])
            .expect("sensors");
        assert_eq!(first[0], again[1]);
        assert_eq!(store.sensors().expect("map")["a"].1, "K");
    }
}
