//! The schema: its migrations in order, and the writer connection's setup (busy
//! timeout, WAL, synchronous commits) that runs the ones not yet applied.

use rusqlite::OptionalExtension;

use super::{Store, StoreError};

/// Migrations in order; `schema_version` holds how many have run.
pub(super) const MIGRATIONS: &[&str] = &[
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
    crate::store::alarms::MIGRATION,
    crate::store::outbox::MIGRATION,
    // 4: installation secrets (e.g. the key that signs acknowledgement links) and the
    // acknowledgement links already used (single use).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
     CREATE TABLE ack_link_used (nonce TEXT PRIMARY KEY, t INTEGER NOT NULL, alarm INTEGER NOT NULL, contact TEXT NOT NULL) WITHOUT ROWID;",
    // 5: the outbox of the InfluxDB mirror.
    crate::store::mirror::MIGRATION,
    // 6: the hash-chained audit trail and the seals of reading blocks.
    crate::store::audit::MIGRATION,
    // 7: per-minute summaries written by retention.
    crate::store::retention::MIGRATION,
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
    crate::store::users::MIGRATION,
    // 10: readings bound into the record at commit, until their block is sealed.
    crate::store::audit::batch::MIGRATION,
    // 11: readings kept but not believed (stamped far ahead of the clock).
    crate::store::flags::MIGRATION,
    // 12: the members of a power incident, found for its update pages and its return
    // to normal.
    "CREATE INDEX alarm_incident ON alarm (incident) WHERE incident IS NOT NULL;",
    // 13: ids of the SMS the gateway's webhook delivered, so a replay is handled once.
    "CREATE TABLE inbound_sms (sid TEXT PRIMARY KEY, t INTEGER NOT NULL) WITHOUT ROWID;",
    // 14: printed names, electronic signatures and the corrective actions that close
    // excursions.
    crate::store::quality::MIGRATION,
    // 15: signed acknowledgements, and the open deviations kept for the scrape.
    crate::store::quality::tables::MIGRATION,
    // 16: periodic reviews with their reports; signatures found by what they sign.
    crate::store::quality::review::MIGRATION,
    // 17: the calibration register.
    crate::store::quality::calibration::MIGRATION,
    // 18: physical alarm checks and the value at which each rule triggered.
    crate::store::quality::alarm_check::MIGRATION,
    // 19: the overdue alarm checks reminded of, one page per probe and period.
    crate::store::quality::check_reminder::MIGRATION,
];

/// How long opening a store waits for another process that is creating or migrating it.
const SETUP_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Store {
    /// Sets the connection up and brings the schema up to date. A store another process
    /// is creating at the same moment (switching it to WAL can refuse at once rather than
    /// wait) is tried again for up to [`SETUP_WAIT`].
    pub(super) fn setup(&mut self) -> Result<(), StoreError> {
        let start = std::time::Instant::now();
        loop {
            match self.try_setup() {
                Err(e) if busy(&e) && start.elapsed() < SETUP_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                done => return done,
            }
        }
    }

    fn try_setup(&mut self) -> Result<(), StoreError> {
        self.sql(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            // WAL: readers never block the writer. synchronous=FULL: every commit syncs
            // the WAL before it returns, so what a commit records survives a power cut or
            // an operating-system crash, not only a crash of the process; nothing is
            // acknowledged to a source, a person or a peer before its commit returned.
            // The writer commits in batches, so the sync is paid per batch, not per reading.
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")
        })?;
        // The version is read and the migrations run in one transaction that holds the
        // write lock from its start: two processes opening a new store at once (the
        // daemon and a command) would otherwise both read "no version" and the second
        // would fail creating tables the first had just made.
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(sqlite)?;
        let version: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(sqlite)?;
        let known = MIGRATIONS.len() as i64;
        let current = version.unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        if current == known {
            return Ok(());
        }
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
        run().and_then(|()| tx.commit()).map_err(sqlite)
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.sql(|c| c.query_row("SELECT version FROM schema_version", [], |r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn processes_that_open_a_new_store_at_once_all_find_it_made_once() {
        // The daemon and a command started beside it (`user add`, `alarm-check list`)
        // both create the store: neither may fail on the other's tables.
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("new.db");
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Store::open(&path).map(|s| s.schema_version()))
                })
                .collect();
            for o in openers {
                let version = o
                    .join()
                    .expect("thread")
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(version.expect("version"), super::MIGRATIONS.len() as i64);
            }
        }
    }
}
