//! What the store remembers of the MQTT source's broker session, in `meta`:
//!
//! - `mqtt.last_connected <broker> <client id>`: when the source was last known to be
//!   connected (ms). A broker that answers without a session (`session_present=false`)
//!   to a client id connected before has lost the messages it kept; to a client id never
//!   connected before, it has lost nothing.
//! - `mqtt.session_lost`: the last session lost (JSON), shown by `cryowatch status`.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::model::{TimestampMs, format_rfc3339};

const LOST: &str = "mqtt.session_lost";

/// A session the broker no longer had when the source reconnected: readings published
/// between `last_connected` and `reconnected` may be missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostSession {
    pub broker: String,
    pub client_id: String,
    pub last_connected: TimestampMs,
    pub reconnected: TimestampMs,
}

impl LostSession {
    /// The `status` condition: what may be missing and what to do.
    pub fn condition(&self) -> String {
        format!(
            "WARNING: the MQTT broker {} kept no session for client id {} when it reconnected at {}: readings published while it was disconnected since {} may be missing (keep sessions on the broker: persistence, queue limit, session expiry; see the README)",
            self.broker,
            self.client_id,
            format_rfc3339(self.reconnected),
            format_rfc3339(self.last_connected)
        )
    }
}

/// The source's own connection to the store for its session times.
pub struct SessionMemory {
    store: Store,
    key: String,
}

impl SessionMemory {
    /// Opens the store (already created by the daemon) for the session of `client_id`
    /// at `broker` (`host:port`).
    pub fn open(path: &std::path::Path, broker: &str, client_id: &str) -> Result<SessionMemory, StoreError> {
        Ok(SessionMemory {
            store: Store::open(path)?,
            key: format!("mqtt.last_connected {broker} {client_id}"),
        })
    }

    /// When this client id was last known to be connected to this broker; None when it
    /// never was.
    pub fn last_connected(&self) -> Result<Option<TimestampMs>, StoreError> {
        self.store.with_conn(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [&self.key], |r| r.get(0))
                .optional()
        })
    }

    /// Records that the client was connected at `at` (a later time is never replaced by
    /// an earlier one).
    pub fn connected(&self, at: TimestampMs) -> Result<(), StoreError> {
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                params![self.key, at],
            )
            .map(drop)
        })
    }

    /// Records a lost session for `status`.
    pub fn lost(&self, lost: &LostSession) -> Result<(), StoreError> {
        let text = serde_json::json!(lost).to_string();
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![LOST, text],
            )
            .map(drop)
        })
    }
}

/// The last lost session if the source reconnected after it at `since` or later.
pub fn lost_since(c: &Connection, since: TimestampMs) -> rusqlite::Result<Option<LostSession>> {
    let text: Option<String> = c
        .query_row("SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1", [LOST], |r| {
            r.get(0)
        })
        .optional()?;
    // Written by this module only; an unreadable value shows nothing rather than failing
    // `status`.
    Ok(text
        .and_then(|t| serde_json::from_str::<LostSession>(&t).ok())
        .filter(|l| l.reconnected >= since))
}

impl Store {
    /// The last session a broker lost since `since`, if any.
    pub fn mqtt_session_lost_since(&self, since: TimestampMs) -> Result<Option<LostSession>, StoreError> {
        self.with_conn(|c| lost_since(c, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_never_connected_has_no_last_connection_and_a_later_time_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        drop(Store::open(&path).expect("store"));
        let m = SessionMemory::open(&path, "127.0.0.1:1883", "cw").expect("open");
        assert_eq!(m.last_connected().expect("read"), None);
        m.connected(2_000).expect("write");
        m.connected(1_000).expect("write");
        assert_eq!(m.last_connected().expect("read"), Some(2_000));
        let other = SessionMemory::open(&path, "127.0.0.1:1883", "cw2").expect("open");
        assert_eq!(other.last_connected().expect("read"), None, "another client id");
    }

    #[test]
    fn a_lost_session_is_shown_until_it_is_older_than_asked() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let store = Store::open(&path).expect("store");
        let m = SessionMemory::open(&path, "b:1", "cw").expect("open");
        let lost = LostSession {
            broker: "b:1".into(),
            client_id: "cw".into(),
            last_connected: 1_000,
            reconnected: 5_000,
        };
        m.lost(&lost).expect("write");
        assert_eq!(store.with_conn(|c| lost_since(c, 5_000)).expect("read"), Some(lost));
        assert_eq!(store.with_conn(|c| lost_since(c, 5_001)).expect("read"), None);
    }
}
