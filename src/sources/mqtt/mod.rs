//! The MQTT source. A fixed client id with clean session off and QoS 1 subscriptions
//! make the broker keep messages for us while we are away; manual acknowledgement
//! means the broker forgets a message only after its reading is committed to the
//! store, so a crash at any moment loses nothing the broker handed us.
//!
//! The client reads any packet the broker can send (up to MQTT's own limit): a client
//! that refused one would be disconnected, and the persistent session would send it
//! again at every reconnect, stopping all MQTT readings for good. A message larger than
//! [`MAX_PAYLOAD`], malformed, or on a topic no sensor reads is consumed instead: counted,
//! logged once per topic per interval, and acknowledged in turn, after the readings
//! received before it are committed (MQTT acknowledges QoS 1 messages in the order they
//! arrived).
//!
//! Brokers limit what they queue for an offline client (Mosquitto: `max_queued_messages`,
//! 1000 by default): see the README for the setting to use.

pub mod payload;
pub mod pump;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::payload::{Router, parse, parse_json};
use super::backoff::Backoff;
use crate::config::{Config, MqttConfig, MqttPoint, PayloadFormat, SensorSource};
use crate::model::{Flag, Reading, format_rfc3339, later, now_ms};
use crate::pipeline::{Batch, CommitHandle};
pub use crate::telemetry::stats::MqttStats;
use crate::telemetry::{Source, Telemetry};

/// Messages stored but perhaps not yet acknowledged, by packet id: when the connection
/// drops between commit and acknowledgement, the broker sends them again with the DUP
/// flag and the same packet id, and they must not be stored twice.
#[derive(Default)]
struct Committed(std::sync::Mutex<HashMap<u16, u64>>);

impl Committed {
    fn fingerprint(p: &Publish) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.topic.hash(&mut h);
        p.payload.hash(&mut h);
        h.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, u64>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `p` is a redelivery of a message already stored. A fresh message takes
    /// its packet id over from whatever used it before.
    fn is_stored_redelivery(&self, p: &Publish) -> bool {
        if p.pkid == 0 {
            return false;
        }
        let mut map = self.lock();
        if p.dup {
            map.get(&p.pkid) == Some(&Self::fingerprint(p))
        } else {
            map.remove(&p.pkid);
            false
        }
    }

    fn stored(&self, p: &Publish) {
        if p.pkid != 0 {
            self.lock().insert(p.pkid, Self::fingerprint(p));
        }
    }
}

/// The largest packet MQTT 3.1.1 can frame (a remaining length of 268,435,455 bytes).
/// The client accepts anything up to it; bound the memory it may take at the broker
/// (Mosquitto `max_packet_size`).
const MQTT_MAX_PACKET: usize = 268_435_455;

/// The largest payload read as readings: 1 MiB, the size the MQTT client accepted
/// before, so a gateway's document that was read then is read now. A reading is a number
/// or a small JSON document (a gateway's document of a few hundred sensors is tens of
/// KiB); anything larger is a publisher's mistake, skipped rather than parsed.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// How often a problem with one topic is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs a problem per topic at most once per [`LOG_EVERY`], with the count suppressed.
#[derive(Default)]
struct TopicLog {
    last: HashMap<String, (Instant, u64)>,
}

impl TopicLog {
    fn warn(&mut self, topic: &str, what: &str, detail: &str) {
        let now = Instant::now();
        match self.last.get_mut(topic) {
            Some((at, suppressed)) if now.duration_since(*at) < LOG_EVERY => *suppressed += 1,
            Some((at, suppressed)) => {
                tracing::warn!(
                    topic,
                    problem = what,
                    detail,
                    suppressed = *suppressed,
                    "mqtt message skipped"
                );
                *at = now;
                *suppressed = 0;
            }
            None => {
                tracing::warn!(topic, problem = what, detail, "mqtt message skipped");
                self.last.insert(topic.to_string(), (now, 0));
            }
        }
    }
}

/// Starts the MQTT source when the configuration has MQTT sensors. It counts into
/// `telemetry.mqtt` and the readings by quality.
pub fn spawn(
    config: &Config,
    store: &CommitHandle,
    shutdown: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mqtt = config.mqtt.clone()?;
    let points: Vec<(usize, MqttPoint)> = config
        .sensors
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.source {
            SensorSource::Mqtt(p) => Some((i, p.clone())),
            _ => None,
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    Some(tokio::spawn(run(
        mqtt,
        config.store.path.clone(),
        points,
        store.clone(),
        shutdown.clone(),
        telemetry.clone(),
    )))
}

fn options(cfg: &MqttConfig) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_request_channel_capacity(65_536);
    // Incoming: whatever the broker sends must be read, or the session is stuck on it.
    // Outgoing: subscriptions and acknowledgements only.
    o.set_max_packet_size(MQTT_MAX_PACKET, 1 << 20);
    if let Some(user) = &cfg.username {
        o.set_credentials(
            user.clone(),
            cfg.password.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
        );
    }
    if cfg.tls {
        o.set_transport(tls_transport(cfg)?);
    }
    Ok(o)
}

/// The transport for `mqtts://`: the broker's certificate is checked against the system
/// trust store and `mqtt.ca_file` ([`crate::tls`]). The heartbeat uses the same.
pub fn tls_transport(cfg: &MqttConfig) -> Result<Transport, String> {
    let trust = crate::tls::Trust::load(cfg.ca_file.as_deref()).map_err(|e| format!("mqtt.ca_file {e}"))?;
    let config = trust.client_config()?;
    Ok(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(
        config,
    ))))
}

/// Logs a broker's certificate problem at WARN when it differs from the one logged
/// last: an untrusted broker is named at once, and not again at every retry.
#[derive(Default)]
pub struct TlsLog {
    last: Option<String>,
}

impl TlsLog {
    /// Whether `err` was a certificate or TLS problem (logged if new).
    pub fn failed(&mut self, err: &rumqttc::ConnectionError, broker: &str, host: &str, who: &str) -> bool {
        let Some(problem) = crate::tls::certificate_problem(err, host) else {
            return false;
        };
        if self.last.as_deref() != Some(problem.as_str()) {
            tracing::warn!(broker, problem = %problem, "{who}: the broker's TLS handshake failed; retrying");
            self.last = Some(problem);
        }
        true
    }

    /// The connection works: a later failure is news again.
    pub fn connected(&mut self) {
        self.last = None;
    }
}

async fn run(
    cfg: MqttConfig,
    store_path: std::path::PathBuf,
    points: Vec<(usize, MqttPoint)>,
    store: CommitHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let stats = telemetry.mqtt.clone();
    let opts = match options(&cfg) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "mqtt source cannot start");
            return;
        }
    };
    let (client, mut events) = AsyncClient::new(opts, 65_536);
    let refs: Vec<(usize, &MqttPoint)> = points.iter().map(|(i, p)| (*i, p)).collect();
    let router = Router::new(&refs);
    let by_sensor: HashMap<usize, &MqttPoint> = refs.iter().copied().collect();

    // Acknowledgements go back to the broker from their own task once the store has
    // committed the readings.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<Publish>();
    let ack_client = client.clone();
    let acker = tokio::spawn(async move {
        while let Some(p) = ack_rx.recv().await {
            if ack_client.ack(&p).await.is_err() {
                break;
            }
        }
    });

    let committed = Arc::new(Committed::default());
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut log = TopicLog::default();
    let mut tls_log = TlsLog::default();
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let mut session = session::SessionWatch::open(store_path, &broker, &cfg.client_id).await;
    let mut connected = false;
    let mut sensors = Vec::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                backoff.reset();
                connected = true;
                tls_log.connected();
                session.connected(ack.session_present, &stats);
                let subs = router
                    .filters()
                    .into_iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "mqtt subscribe could not be queued");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(codes = ?s.return_codes, "broker refused a subscription");
                }
            }
            Ok(Event::Incoming(Packet::Publish(mut p))) => {
                session.alive();
                stats.messages.fetch_add(1, Ordering::Relaxed);
                let skip = if p.payload.len() > MAX_PAYLOAD {
                    stats.oversized.fetch_add(1, Ordering::Relaxed);
                    let detail = format!(
                        "{} bytes, more than the {MAX_PAYLOAD} bytes a reading may take",
                        p.payload.len()
                    );
                    log.warn(&p.topic, "oversized payload", &detail);
                    true
                } else if committed.is_stored_redelivery(&p) {
                    stats.redelivered.fetch_add(1, Ordering::Relaxed);
                    true
                } else {
                    false
                };
                let readings = if skip {
                    Vec::new()
                } else {
                    router.route(&p.topic, &mut sensors);
                    readings_of(&p, &sensors, &by_sensor, cfg.max_clock_skew, &stats, &mut log)
                };
                if readings.is_empty() {
                    // Nothing to keep (oversized, already stored, unknown topic or
                    // malformed): acknowledge so the broker does not resend it forever,
                    // in turn, once the readings received before it are committed.
                    p.payload = Default::default();
                    if acknowledge_in_turn(&store, &ack_tx, p).await.is_err() {
                        break;
                    }
                    continue;
                }
                stats.readings.fetch_add(readings.len() as u64, Ordering::Relaxed);
                telemetry.count_readings(Source::Mqtt, &readings);
                let tx = ack_tx.clone();
                let done = committed.clone();
                let batch = Batch {
                    readings,
                    on_commit: Some(Box::new(move || {
                        done.stored(&p);
                        let _ = tx.send(p);
                    })),
                };
                if store.send(batch).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(_)) => session.alive(),
            Ok(_) => {}
            Err(e) => {
                if connected {
                    session.disconnected();
                }
                stats.connected.store(false, Ordering::Relaxed);
                let delay = backoff.next_delay();
                if tls_log.failed(&e, &broker, &cfg.host, "mqtt source") {
                    connected = false;
                } else if connected {
                    tracing::warn!(error = %e, "mqtt connection lost; reconnecting");
                    connected = false;
                } else {
                    tracing::debug!(error = %e, retry_in = ?delay, "mqtt connect failed");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if stats.connected.swap(false, Ordering::Relaxed) {
        session.stopped().await;
    }
    drop(ack_tx);
    // Let acknowledgements of readings committed during shutdown reach the broker.
    let flush = async {
        let _ = acker.await;
    };
    let drain = async {
        loop {
            if events.poll().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = flush => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

/// Acknowledges a message that gave no reading once everything queued before it in the
/// store writer is committed: an empty batch whose commit sends the acknowledgement.
async fn acknowledge_in_turn(
    store: &CommitHandle,
    acks: &tokio::sync::mpsc::UnboundedSender<Publish>,
    p: Publish,
) -> Result<(), crate::pipeline::commit::WriterStopped> {
    let tx = acks.clone();
    store
        .send(Batch {
            readings: Vec::new(),
            on_commit: Some(Box::new(move || {
                let _ = tx.send(p);
            })),
        })
        .await
}

fn readings_of(
    p: &Publish,
    sensors: &[usize],
    by_sensor: &HashMap<usize, &MqttPoint>,
    max_clock_skew: Duration,
    stats: &MqttStats,
    log: &mut TopicLog,
) -> Vec<Reading> {
    if sensors.is_empty() {
        stats.unknown_topic.fetch_add(1, Ordering::Relaxed);
        log.warn(&p.topic, "unknown topic", "no sensor is configured for this topic");
        return Vec::new();
    }
    let now = now_ms();
    let needs_json = sensors
        .iter()
        .any(|s| by_sensor.get(s).is_some_and(|pt| pt.format == PayloadFormat::Json));
    let json = if needs_json {
        match parse_json(&p.payload) {
            Ok(v) => Some(v),
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                log.warn(&p.topic, "malformed payload", &e.to_string());
                return Vec::new();
            }
        }
    } else {
        None
    };
    let mut out = Vec::with_capacity(sensors.len());
    for s in sensors {
        let Some(point) = by_sensor.get(s) else { continue };
        match parse(point, &p.payload, json.as_ref()) {
            Ok(parsed) => {
                if parsed.bad_timestamp {
                    log.warn(
                        &p.topic,
                        "bad timestamp",
                        "timestamp_path missing or unparsable; using arrival time",
                    );
                }
                let time = parsed.time.unwrap_or(now);
                // A clock far ahead: kept with the time it claims, but not believed.
                let flag = (time > later(now, max_clock_skew)).then(|| {
                    stats.future.fetch_add(1, Ordering::Relaxed);
                    let detail = format!(
                        "stamped {}, more than mqtt.max_clock_skew ({}) ahead of now; stored and flagged, not evaluated",
                        format_rfc3339(time),
                        humantime::format_duration(max_clock_skew)
                    );
                    log.warn(&p.topic, "stamped ahead of the clock", &detail);
                    Flag::AheadOfClock
                });
                out.push(Reading {
                    sensor: *s,
                    time,
                    value: parsed.value,
                    quality: parsed.quality,
                    source_time: parsed.time.is_some(),
                    flag,
                });
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                log.warn(&p.topic, "malformed payload", &e.to_string());
            }
        }
    }
    out
}
