//! What the store keeps for signed acknowledgement links: the installation's signing key
//! (a `meta` row made on first use) and every nonce accepted, so a link works once.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::model::TimestampMs;

/// The `meta` row holding the key.
pub const KEY_NAME: &str = "ack_link_key";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct KeyProblem(String);

fn key_problem(text: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(KeyProblem(text)))
}

fn read_key(c: &Connection) -> rusqlite::Result<Option<[u8; 32]>> {
    let value: Option<Vec<u8>> = c
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY_NAME], |r| r.get(0))
        .optional()?;
    match value {
        None => Ok(None),
        Some(v) => <[u8; 32]>::try_from(v.as_slice()).map(Some).map_err(|_| {
            key_problem(format!(
                "the acknowledgement-link key (meta row {KEY_NAME:?}) has {} bytes instead of 32; \
                 delete that row to make a new key (links already sent stop working)",
                v.len()
            ))
        }),
    }
}

/// The installation's signing key, created (32 bytes from the system's generator) and
/// stored on first use. Two processes creating it at once agree on whichever was stored
/// first.
pub fn key(store: &Store) -> Result<[u8; 32], StoreError> {
    store.with_conn(|c| {
        if let Some(k) = read_key(c)? {
            return Ok(k);
        }
        let fresh = crate::random::bytes::<32>().map_err(|e| {
            key_problem(format!(
                "cannot read the system's random generator to make the acknowledgement-link key: {e}"
            ))
        })?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
            params![KEY_NAME, &fresh[..]],
        )?;
        read_key(c)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
    })
}

/// When the link with `nonce` was used, if it was.
pub fn used_at(c: &Connection, nonce: &str) -> rusqlite::Result<Option<TimestampMs>> {
    c.query_row("SELECT t FROM ack_link_used WHERE nonce = ?1", [nonce], |r| r.get(0))
        .optional()
}

/// Records the link with `nonce` as used now (inside the caller's transaction): `None`
/// when this is its first use, else when it was first used.
pub fn burn(
    c: &Connection,
    nonce: &str,
    now: TimestampMs,
    alarm: i64,
    contact: &str,
) -> rusqlite::Result<Option<TimestampMs>> {
    let fresh = c.execute(
        "INSERT INTO ack_link_used (nonce, t, alarm, contact) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(nonce) DO NOTHING",
        params![nonce, now, alarm, contact],
    )?;
    if fresh == 1 {
        Ok(None)
    } else {
        Ok(Some(used_at(c, nonce)?.unwrap_or(now)))
    }
}

/// What became of an acknowledgement by link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUse {
    /// First use: the acknowledgement request is queued with this id.
    Queued(i64),
    /// The link was used before, at this time; nothing was queued.
    UsedAt(TimestampMs),
}

impl Store {
    /// When the link with `nonce` was used, if it was.
    pub fn ack_link_used_at(&self, nonce: &str) -> Result<Option<TimestampMs>, StoreError> {
        self.with_conn(|c| used_at(c, nonce))
    }

    /// Uses the link with `nonce` (of `alarm`, sent to `contact`) and, on its first use,
    /// queues the acknowledgement request `args`, in one transaction.
    pub fn use_ack_link(
        &mut self,
        nonce: &str,
        alarm: i64,
        contact: &str,
        args: &serde_json::Value,
        now: TimestampMs,
    ) -> Result<LinkUse, StoreError> {
        self.transaction(|c| {
            if let Some(t) = burn(c, nonce, now, alarm, contact)? {
                return Ok(LinkUse::UsedAt(t));
            }
            Ok(LinkUse::Queued(crate::store::alarms::insert_request(
                c, "ack", args, now,
            )?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let store = Store::open(&path).expect("store");
        let k1 = key(&store).expect("key");
        let k2 = key(&Store::open(&path).expect("reopen")).expect("key");
        assert_eq!(k1, k2);
        assert_ne!(k1, [0; 32]);
        store
            .with_conn(|c| c.execute("UPDATE meta SET value = x'0102' WHERE key = ?1", [KEY_NAME]))
            .expect("damage");
        let err = key(&store).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("has 2 bytes instead of 32"), "{err}");
    }
}
