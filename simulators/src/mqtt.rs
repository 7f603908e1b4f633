//! MQTT telemetry publisher: every interval, each MQTT device that is not silent
//! publishes one QoS 1 JSON message to `lab/<device>/telemetry`.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::devices::DEVICES;
use crate::lab::SharedLab;

/// Requests buffered while the broker is unreachable; older telemetry beyond this is dropped.
const QUEUE: usize = 64;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Topic a device publishes to.
pub fn topic(device: &str) -> String {
    format!("lab/{device}/telemetry")
}

/// Check that `url` is a broker URL the publisher accepts.
pub fn validate_url(url: &str) -> Result<(), String> {
    options(url, "cryosim").map(drop).map_err(|e| format!("{e:#}"))
}

/// Broker options from `mqtt://[user[:password]@]host[:port]` (default port 1883).
pub(crate) fn options(url: &str, client_id: &str) -> anyhow::Result<MqttOptions> {
    let Some(rest) = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")) else {
        bail!("bad MQTT URL {url:?}: want mqtt://host[:port] (TLS is not supported by the simulator)");
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((auth, hostport)) => (Some(auth), hostport),
        None => (None, rest),
    };
    let (host, port) = split_host_port(hostport).with_context(|| format!("bad port in MQTT URL {url:?}"))?;
    if host.is_empty() {
        bail!("bad MQTT URL {url:?}: no host");
    }
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    if let Some(auth) = auth {
        let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
        opts.set_credentials(user, pass);
    }
    Ok(opts)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 1883.
fn split_host_port(s: &str) -> Result<(&str, u16), std::num::ParseIntError> {
    let (host, port) = match s.strip_prefix('[').and_then(|v6| v6.split_once(']')) {
        Some((host, rest)) => (host, rest.strip_prefix(':')),
        None => match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        },
    };
    Ok((host, port.map(str::parse).transpose()?.unwrap_or(1883)))
}

/// Publish telemetry to the broker at `url` every `interval` until the task is dropped.
/// Connection failures are retried with backoff; telemetry produced while the broker
/// is away is buffered up to a small limit.
pub(crate) async fn run(url: String, interval: Duration, lab: SharedLab) -> anyhow::Result<()> {
    let client_id = format!("cryosim-{}", std::process::id());
    let opts = options(&url, &client_id)?;
    let (client, eventloop) = AsyncClient::new(opts, QUEUE);
    tokio::select! {
        () = drive(eventloop, url) => Ok(()),
        () = publish(client, interval, lab) => Ok(()),
    }
}

/// Run the connection: keep polling, back off on errors (rumqttc reconnects on the next poll).
async fn drive(mut eventloop: EventLoop, url: String) {
    let mut backoff = BACKOFF_START;
    let mut down = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%url, "mqtt connected");
                backoff = BACKOFF_START;
                down = false;
            }
            Ok(_) => {}
            Err(err) => {
                if !down {
                    tracing::warn!(%url, "mqtt connection lost: {err}; reconnecting with backoff");
                    down = true;
                } else {
                    tracing::debug!(%url, "mqtt reconnect failed: {err}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn publish(client: AsyncClient, interval: Duration, lab: SharedLab) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dropped: u64 = 0;
    loop {
        ticker.tick().await;
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let now = Instant::now();
        let mut messages = Vec::new();
        {
            let mut lab = lab.lock();
            for (idx, d) in DEVICES.iter().enumerate() {
                if !d.mqtt || lab.is_silent(idx) {
                    continue;
                }
                if let Some(payload) = lab.reading(idx, now).telemetry(&ts) {
                    messages.push((topic(d.name), payload.to_string()));
                }
            }
        }
        for (topic, payload) in messages {
            if let Err(err) = client.try_publish(&topic, QoS::AtLeastOnce, false, payload) {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(%topic, dropped, "mqtt telemetry dropped (broker unreachable, queue full): {err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let o = options("mqtt://127.0.0.1:1884", "x").unwrap();
        assert_eq!(o.broker_address(), ("127.0.0.1".to_string(), 1884));
        let o = options("mqtt://broker.lab", "x").unwrap();
        assert_eq!(o.broker_address(), ("broker.lab".to_string(), 1883));
        let o = options("mqtt://sim:secret@[::1]:1885/", "x").unwrap();
        assert_eq!(o.broker_address(), ("::1".to_string(), 1885));
        assert_eq!(o.credentials().map(|c| c.username), Some("sim".to_string()));
        assert!(options("mqtts://h:8883", "x").is_err());
        assert!(options("mqtt://h:port", "x").is_err());
        assert!(options("mqtt://", "x").is_err());
    }
}
