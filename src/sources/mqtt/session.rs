//! Whether the broker kept our session. A CONNACK without a session
//! (`session_present=false`) to a client id that was connected before means the broker
//! no longer had its queue (restarted without persistence, session expired): readings
//! published while the daemon was disconnected may be gone. That is a WARN naming the
//! gap, a count (`cryowatch_mqtt_sessions_lost_total`) and a `status` condition. The very
//! first connection of a client id, known from the store, is not a gap.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::MqttStats;
use crate::model::{TimestampMs, format_rfc3339, now_ms};
use crate::store::mqtt_session::{LostSession, SessionMemory};

/// How often the time last connected is written while the connection stays up: a
/// `kill -9` leaves at most this much of the gap unnamed.
const SAVE_EVERY_MS: TimestampMs = 60_000;

/// What to do about a lost session.
const ADVICE: &str = "make the broker keep sessions and their messages: Mosquitto `persistence true` and `max_queued_messages 0`, RabbitMQ a longer `mqtt.subscription_ttl`, aedes a persistent store, amqtt a username (see the README)";

pub(super) struct SessionWatch {
    memory: Option<Arc<Mutex<SessionMemory>>>,
    broker: String,
    client_id: String,
    /// When the source was last known to be connected; None while this client id never
    /// was (at this broker).
    last_up: Option<TimestampMs>,
    saved: TimestampMs,
}

impl SessionWatch {
    /// Reads when `client_id` was last connected to `broker` from the store at `path`.
    /// Without the store, only the losses during this run are told apart.
    pub(super) async fn open(path: PathBuf, broker: &str, client_id: &str) -> SessionWatch {
        let (b, id) = (broker.to_string(), client_id.to_string());
        let opened = tokio::task::spawn_blocking(move || {
            let memory = SessionMemory::open(&path, &b, &id)?;
            let last = memory.last_connected()?;
            Ok::<_, crate::store::StoreError>((memory, last))
        })
        .await;
        let (memory, last_up) = match opened {
            Ok(Ok((memory, last))) => (Some(Arc::new(Mutex::new(memory))), last),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "mqtt source: the store cannot say when this client id was last connected; a session lost while the daemon was stopped is not told apart from a first connection");
                (None, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "mqtt source: reading the session's last connection failed");
                (None, None)
            }
        };
        SessionWatch {
            memory,
            broker: broker.to_string(),
            client_id: client_id.to_string(),
            last_up,
            saved: 0,
        }
    }

    /// The broker accepted the connection (CONNACK).
    pub(super) fn connected(&mut self, session_present: bool, stats: &MqttStats) {
        let now = now_ms();
        match (session_present, self.last_up) {
            (false, Some(last)) => {
                stats.sessions_lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    broker = %self.broker,
                    client_id = %self.client_id,
                    session_present,
                    last_connected = %format_rfc3339(last),
                    reconnected = %format_rfc3339(now),
                    advice = ADVICE,
                    "mqtt session lost: the broker kept no session for this client id; readings published while the daemon was disconnected, from last_connected to reconnected, may be missing"
                );
                let lost = LostSession {
                    broker: self.broker.clone(),
                    client_id: self.client_id.clone(),
                    last_connected: last,
                    reconnected: now,
                };
                let _ = self.write(move |m| m.lost(&lost));
            }
            (false, None) => tracing::info!(
                broker = %self.broker,
                client_id = %self.client_id,
                session_present,
                "mqtt connected: first connection of this client id, the broker starts its session"
            ),
            (true, _) => {
                tracing::info!(broker = %self.broker, client_id = %self.client_id, session_present, "mqtt connected")
            }
        }
        self.up(now);
    }

    /// A packet arrived: the connection is up (written at most every minute).
    pub(super) fn alive(&mut self) {
        let now = now_ms();
        if now - self.saved >= SAVE_EVERY_MS {
            let _ = self.up(now);
        }
    }

    /// The connection failed: it was up until now.
    pub(super) fn disconnected(&mut self) {
        let _ = self.up(now_ms());
    }

    /// The source stops while connected: recorded before it returns.
    pub(super) async fn stopped(&mut self) {
        if let Some(write) = self.up(now_ms()) {
            let _ = write.await;
        }
    }

    fn up(&mut self, at: TimestampMs) -> Option<tokio::task::JoinHandle<()>> {
        self.last_up = Some(at);
        self.saved = at;
        self.write(move |m| m.connected(at))
    }

    /// Writes in the background: the store may be busy with a large commit.
    fn write(
        &self,
        f: impl FnOnce(&SessionMemory) -> Result<(), crate::store::StoreError> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let memory = self.memory.clone()?;
        Some(tokio::task::spawn_blocking(move || {
            let m = memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = f(&m) {
                tracing::warn!(error = %e, "mqtt source: the session's last connection could not be recorded");
            }
        }))
    }
}
