//! Signs of life for whoever watches the watcher (`[heartbeat]`).
//!
//! - MQTT: a connection of its own (client id `<mqtt.client_id>-heartbeat`) whose Last
//!   Will is a retained `offline` on `mqtt_topic`; every beat publishes a retained
//!   `online` with the time, and a clean stop publishes `stopped`. A dead daemon, host or
//!   network shows as `offline` once the broker misses its keep-alive.
//! - The record's heads as last verified ([`crate::store::audit::watch::Anchor`]) go out
//!   retained on `<mqtt_topic>/record` with every beat (and in the status payload); the
//!   daemon reads them back when it starts and checks its trail still carries them.
//! - URL: fetched on every beat (a dead-man service such as healthchecks.io), but only
//!   while the store writer keeps committing: a stuck pipeline stops the pings too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{format_rfc3339, now_ms};
use crate::pipeline::commit::WriterStats;
use crate::store::audit::watch::{Anchor, Shared};

fn payload(state: &str, site: &str, record: &Shared) -> String {
    let mut p = serde_json::json!({ "state": state, "site": site, "time": format_rfc3339(now_ms()), "pid": std::process::id() });
    // The record's heads as last verified: an outsider keeping these catches a trail
    // rewritten later; the daemon reads its own back when it starts.
    if let Some(anchor) = record.anchor() {
        p["record"] = serde_json::json!(anchor);
    } else if let Some(problem) = record.problem() {
        p["record"] = serde_json::json!({ "problem": problem });
    }
    p.to_string()
}

/// How long the heartbeat waits at start, once the broker confirmed the subscription,
/// for the heads it retained last time (a broker sends retained messages right after
/// the SUBACK; none come when nothing is retained).
const RECALL_WAIT: Duration = Duration::from_secs(3);
/// How long it waits at most for that confirmation: a broker that never answers the
/// subscription must not keep the heads unpublished.
const RECALL_CAP: Duration = Duration::from_secs(30);

/// Starts the heartbeats configured; none when there is no `[heartbeat]`.
pub fn spawn(
    config: &Config,
    stats: Arc<WriterStats>,
    record: Arc<Shared>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let Some(hb) = config.heartbeat.clone() else {
        return Vec::new();
    };
    let mut tasks = Vec::new();
    if let (Some(topic), Some(mqtt)) = (hb.mqtt_topic.clone(), config.mqtt.clone()) {
        let site = config.site.name.clone();
        let shutdown = shutdown.clone();
        let interval = hb.interval;
        tasks.push(tokio::spawn(async move {
            let mut o = MqttOptions::new(format!("{}-heartbeat", mqtt.client_id), mqtt.host.clone(), mqtt.port);
            o.set_keep_alive(mqtt.keep_alive);
            o.set_clean_session(true);
            o.set_last_will(LastWill::new(&topic, payload("offline", &site, &record), QoS::AtLeastOnce, true));
            if let Some(user) = &mqtt.username {
                o.set_credentials(
                    user.clone(),
                    mqtt.password.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
                );
            }
            if mqtt.tls {
                match crate::sources::mqtt::tls_transport(&mqtt) {
                    Ok(t) => {
                        o.set_transport(t);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "heartbeat over mqtts:// cannot be set up; the MQTT heartbeat is off");
                        return;
                    }
                }
            }
            let broker = format!("{}:{}", mqtt.host, mqtt.port);
            let mut tls_log = crate::sources::mqtt::TlsLog::default();
            let (client, events) = AsyncClient::new(o, 16);
            // One connection for the daemon's life: the loop is polled apart from the
            // beats, which would otherwise cut its first handshake short.
            let mut events = crate::sources::mqtt::pump::pump(events, Duration::from_secs(2));
            let mut beat = tokio::time::interval(interval);
            // The record's heads go out retained on a topic of their own, which the Last
            // Will does not overwrite: after a kill -9 or a power cut the last heads
            // verified are still there. Read them back once at start, before publishing
            // over them (RECALL_WAIT after the broker confirms the subscription, at most
            // RECALL_CAP: a broker that refuses it must not stop the heartbeat).
            let record_topic = format!("{topic}/record");
            let mut recalled = false;
            let mut recall_until: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = beat.tick() => {
                        let _ = client.try_publish(&topic, QoS::AtLeastOnce, true, payload("online", &site, &record));
                        if !recalled && recall_until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                            recalled = true;
                            let _ = client.try_unsubscribe(&record_topic);
                        }
                        if recalled && let Some(anchor) = record.anchor() {
                            let _ = client.try_publish(&record_topic, QoS::AtLeastOnce, true, serde_json::json!(anchor).to_string());
                        }
                    }
                    e = events.next() => match e {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            tls_log.connected();
                            tracing::info!(topic = %topic, "heartbeat connected to the broker");
                            let _ = client.try_publish(&topic, QoS::AtLeastOnce, true, payload("online", &site, &record));
                            if !recalled {
                                let _ = client.try_subscribe(&record_topic, QoS::AtLeastOnce);
                                recall_until = Some(tokio::time::Instant::now() + RECALL_CAP);
                            }
                        }
                        // Counted from the SUBACK, not the CONNACK: on a loaded machine the
                        // confirmation alone can take seconds, and giving up before the
                        // retained heads arrive would publish over them unchecked.
                        Ok(Event::Incoming(Packet::SubAck(_))) if !recalled => {
                            let wait = tokio::time::Instant::now() + RECALL_WAIT;
                            recall_until = Some(recall_until.map_or(wait, |u| u.min(wait)));
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if !recalled && p.topic == record_topic => {
                            recalled = true;
                            let _ = client.try_unsubscribe(&record_topic);
                            match serde_json::from_slice::<Anchor>(&p.payload) {
                                Ok(anchor) if record.is_ours(&anchor) => {
                                    tracing::info!(audit_seq = anchor.audit_seq, verified_at = %anchor.verified_at, "heartbeat: checking the record against the heads published last time");
                                    record.recall(anchor);
                                }
                                Ok(anchor) => tracing::warn!(
                                    topic = %record_topic,
                                    store = ?anchor.store,
                                    "heartbeat: the heads retained on this topic are another store's; not checked, and replaced"
                                ),
                                Err(e) => tracing::warn!(topic = %record_topic, error = %e, "heartbeat: the retained heads are unreadable; replaced"),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if !tls_log.failed(&e, &broker, &mqtt.host, "heartbeat") {
                                tracing::warn!(error = %e, "heartbeat: broker connection lost; retrying");
                            }
                        }
                    },
                }
            }
            // A clean stop is not a failure: say so, then leave without the Last Will.
            let _ = client
                .publish(&topic, QoS::AtLeastOnce, true, payload("stopped", &site, &record))
                .await;
            let _ = client.disconnect().await;
            // Until the connection closes: the DISCONNECT is only announced before it is
            // flushed, and a connection dropped unflushed makes the broker publish the Last
            // Will ("offline") over "stopped".
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout_at(deadline, events.next()).await {
                    Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(_)) => {}
                }
            }
        }));
    }
    if let Some(url) = hb.url.clone() {
        let shutdown = shutdown.clone();
        let interval = hb.interval;
        tasks.push(tokio::spawn(async move {
            // The system trust store: a dead-man service is a public one.
            let client = match crate::tls::Trust::load(None)
                .map_err(|e| e.to_string())
                .and_then(|t| t.http_client())
                .and_then(|b| b.timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string()))
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "heartbeat URL client cannot be built");
                    return;
                }
            };
            let mut last = stats.transactions.load(Ordering::Relaxed);
            let mut beat = tokio::time::interval(interval);
            beat.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = beat.tick() => {}
                }
                let now = stats.transactions.load(Ordering::Relaxed);
                if now == last {
                    tracing::error!("heartbeat URL not pinged: the store writer committed nothing since the last beat");
                    continue;
                }
                last = now;
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(status = r.status().as_u16(), "heartbeat URL answered with an error"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat URL unreachable"),
                }
            }
        }));
    }
    tasks
}
