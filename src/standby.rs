//! `cryowatch standby`: a second machine watching the primary's heartbeat.
//!
//! It listens to the primary's retained status topic (`[standby] primary_topic`). When the
//! primary says `offline` (its Last Will) or `stopped`, or says nothing fresh for
//! `silent_after`, the standby starts its own pipeline — polling, alarming, paging, on its
//! own store — and tells `[standby] notify` that the monitor is down and it has taken
//! over. When the primary is `online` again it tells them and hands back. It fails open:
//! a duplicate page from both machines is better than none.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::config::{Config, StandbyConfig};
use crate::daemon::Daemon;
use crate::model::{format_rfc3339, now_ms};

/// What the primary last said, and when we heard it.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Nothing,
    Online,
    Down(String),
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let sb = config
        .standby
        .clone()
        .context("no [standby] section: nothing to watch")?;
    let mqtt = config.mqtt.clone().context("[standby] needs [mqtt]")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut o = MqttOptions::new(format!("{}-standby", mqtt.client_id), mqtt.host.clone(), mqtt.port);
    o.set_keep_alive(mqtt.keep_alive);
    o.set_clean_session(true);
    if let Some(user) = &mqtt.username {
        o.set_credentials(
            user.clone(),
            mqtt.password.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
        );
    }
    let (client, events) = AsyncClient::new(o, 16);
    // Polled apart from the checks, which would otherwise cut a handshake short.
    let mut events = crate::sources::mqtt::pump::pump(events, Duration::from_secs(1));
    let mut heard = Heard::Nothing;
    let mut last_online = tokio::time::Instant::now();
    let mut active: Option<Daemon> = None;
    let mut check = tokio::time::interval(Duration::from_millis(250));
    crate::service::ready(&format!("standby: watching {}", sb.primary_topic));
    tracing::info!(topic = %sb.primary_topic, silent_after = ?sb.silent_after, "standby: watching the primary");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = check.tick() => {}
            e = events.next() => match e {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Err(e) = client.try_subscribe(&sb.primary_topic, QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "standby: cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let state = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["state"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    heard = match state.as_str() {
                        "online" => {
                            last_online = tokio::time::Instant::now();
                            Heard::Online
                        }
                        other => Heard::Down(format!("the primary reported {other:?}")),
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    // Cannot hear the primary: after silent_after that counts as down.
                    tracing::warn!(error = %e, "standby: broker connection lost; retrying");
                }
            },
        }
        let silent = last_online.elapsed() >= sb.silent_after;
        let down = match &heard {
            Heard::Down(why) => Some(why.clone()),
            _ if silent => Some(format!(
                "no heartbeat from the primary for {}",
                humantime::format_duration(sb.silent_after)
            )),
            _ => None,
        };
        match (&active, down) {
            (None, Some(why)) => {
                tracing::error!(reason = %why, "CRITICAL: the primary monitor is down; the standby takes over");
                let d = Daemon::start(&config).context("starting the standby's pipeline")?;
                tell(
                    &config,
                    &sb,
                    "monitor_down",
                    &format!(
                        "cryowatch: the primary monitor is DOWN; standby has taken over ({})",
                        config.site.name
                    ),
                    &why,
                );
                crate::service::status(&format!("standby: ACTIVE, the primary is down ({why})"));
                active = Some(d);
            }
            (Some(_), None) if heard == Heard::Online => {
                tracing::warn!("the primary monitor is back; the standby hands back");
                tell(
                    &config,
                    &sb,
                    "monitor_back",
                    &format!("cryowatch: the primary monitor is back ({})", config.site.name),
                    "its heartbeat is online again",
                );
                // Give the dispatcher a moment to send that before the pipeline stops.
                wait_sent(&config, Duration::from_secs(20)).await;
                if let Some(d) = active.take() {
                    d.stop().await;
                }
                crate::service::status(&format!("standby: watching {}", sb.primary_topic));
            }
            _ => {}
        }
    }
    crate::service::stopping();
    if let Some(d) = active.take() {
        d.stop().await;
    }
    Ok(())
}

/// Queues the notice to every `[standby] notify` contact; the running pipeline sends it.
fn tell(config: &Config, sb: &StandbyConfig, kind: &str, subject: &str, why: &str) {
    let now = now_ms();
    let res = crate::store::Store::open(&config.store.path).map(|store| {
        let built = crate::notify::channels::build(&config.notify, None);
        let mut d = crate::notify::dispatcher::Dispatcher::new(Arc::new(config.clone()), store, built.senders);
        let body = format!(
            "{subject}\n\n{why}.\nAt {} the standby at site {} {}.\n",
            format_rfc3339(now),
            config.site.name,
            if kind == "monitor_down" {
                "started polling and alarming itself; it hands back when the primary's heartbeat returns"
            } else {
                "stopped polling: the primary watches again"
            }
        );
        for contact in &sb.notify {
            if let Err(e) = d.notice(contact, kind, now, subject, &body, subject, now) {
                tracing::error!(contact = %contact, error = %e, "standby notice cannot be queued");
            }
        }
    });
    if let Err(e) = res {
        tracing::error!(error = %e, "standby notice cannot be queued: the store cannot be opened");
    }
}

/// Waits until no notice is pending in the outbox (or `limit` passes).
async fn wait_sent(config: &Config, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let pending = crate::store::Store::open_read_only(&config.store.path)
            .and_then(|s| s.monitor_notices_pending())
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
