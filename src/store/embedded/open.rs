//! Opening the store: the file and its directory created private to their owner, the
//! writer's connection brought up to date, or a reader's checked against the schema
//! version this build knows.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::schema::MIGRATIONS;
use super::{Store, StoreError};

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
fn private_file(path: &Path) -> std::io::Result<()> {
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
}
