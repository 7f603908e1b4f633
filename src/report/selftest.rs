//! `cryowatch selftest`: the operational-qualification (OQ) checks, run against the
//! installed system, written as a report ready to be signed off.
//!
//! Each check states what is expected and what was observed. Probes that talk to a peer
//! take the daemon's own path to it, with the trust the daemon uses ([`crate::tls`]):
//! the mail channel connects, secures (STARTTLS or TLS) and authenticates as a page
//! does, then quits without sending; the broker accepts an MQTT connection (over TLS
//! for `mqtts://`); the HTTP gateways, webhooks and InfluxDB answer a request (after a
//! TLS handshake for `https://`). A certificate the daemon would refuse fails its check,
//! naming the problem. A Modbus device the running daemon read a good value from lately
//! passes on that (a gateway that takes one client would refuse a probe beside the
//! daemon's connection); otherwise it must answer one read (data or exception). upsd
//! answers `GET VAR`. Sensor freshness and the audit chain are read from the store, so with the
//! daemon running they show the pipeline works end to end.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::render::{Block, Document};
use crate::config::notify::ChannelKind;
use crate::config::rules::stale_after;
use crate::config::{Config, RegisterKind, Transport};
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::Store;

const PROBE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub area: String,
    pub what: String,
    pub expected: String,
    pub observed: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelfTest {
    pub site: String,
    pub host: String,
    pub version: String,
    pub config: String,
    pub config_sha256: String,
    pub started_at: TimestampMs,
    pub by: String,
    pub checks: Vec<Check>,
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, area: &str, what: String, expected: &str, result: Result<String, String>) {
        let (observed, pass) = match result {
            Ok(o) => (o, true),
            Err(e) => (e, false),
        };
        let id = format!("OQ-{:02}", self.0.len() + 1);
        self.0.push(Check {
            id,
            area: area.into(),
            what,
            expected: expected.into(),
            observed,
            pass,
        });
    }
}

/// Runs every check. `progress` hears each one as it starts.
pub async fn run(
    cfg: &Config,
    config_path: &Path,
    now: TimestampMs,
    by: &str,
    mut progress: impl FnMut(&str),
) -> SelfTest {
    let mut c = Checks(Vec::new());
    let bytes = std::fs::read(config_path).unwrap_or_default();
    let sha = crate::store::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    c.add(
        "configuration",
        format!("{} is valid", config_path.display()),
        "loads and validates without problems",
        Ok(format!(
            "valid: {} assets, {} sensors, {} rules, {} channels",
            cfg.assets.len(),
            cfg.sensors.len(),
            cfg.rules.len(),
            cfg.notify.channels.len()
        )),
    );

    progress("store");
    let store = Store::open(&cfg.store.path);
    let path = cfg.store.path.display().to_string();
    match &store {
        Ok(s) => {
            let r = s.integrity_and_write_check();
            c.add(
                "store",
                format!("embedded store {path} is intact and writable"),
                "integrity check \"ok\"; a write transaction succeeds",
                match r {
                    Ok(ok) if ok == "ok" => Ok("integrity ok; write transaction ok".into()),
                    Ok(other) => Err(format!("integrity check: {other}")),
                    Err(e) => Err(e.to_string()),
                },
            );
        }
        Err(e) => c.add(
            "store",
            format!("embedded store {path} is intact and writable"),
            "opens",
            Err(e.to_string()),
        ),
    }
    let daemon_running = crate::store::lock::take(&cfg.store.path)
        .map(|l| l.is_none())
        .unwrap_or(false);
    c.add(
        "service",
        "the cryowatch daemon is running on this store".into(),
        "running (holds the store's lock)",
        if daemon_running {
            Ok("running".into())
        } else {
            Err("not running".into())
        },
    );

    progress("audit trail");
    if let Ok(s) = &store {
        let v = s.verify(|_, _| {});
        c.add(
            "audit",
            "the audit trail and the sealed readings are unaltered".into(),
            "`audit verify` finds no broken record",
            match v {
                Ok(v) if v.ok() => Ok(format!(
                    "{} records intact, head {}:{}; {} sealed readings verified",
                    v.records,
                    v.head_seq,
                    v.head_hash.get(..16).unwrap_or(""),
                    v.sealed_readings
                )),
                Ok(v) => Err(v
                    .problem
                    .map(|p| format!("record {}: {}", p.record, p.what))
                    .unwrap_or_default()),
                Err(e) => Err(e.to_string()),
            },
        );
    }

    progress("clock");
    c.add(
        "clock",
        "the system clock is sane".into(),
        "not behind the newest stored record; NTP synchronised when it can be determined",
        clock(store.as_ref().ok(), now),
    );

    progress("sensors");
    if let Ok(s) = &store {
        let ids = s.sensors().unwrap_or_default();
        for sensor in &cfg.sensors {
            let limit = stale_after(sensor, &cfg.devices, &cfg.ups);
            let latest = ids
                .get(&sensor.id)
                .and_then(|(id, _)| s.latest(*id, cfg.latest_bound(now)).ok());
            let res = match latest {
                Some((_, Some(good))) if now.saturating_sub(good.time) <= crate::model::millis(limit) => {
                    Ok(format!("good reading {:.1} s old", (now - good.time) as f64 / 1000.0))
                }
                Some((last, good)) => Err(format!(
                    "newest good reading {}; newest reading {}",
                    good.map(|g| format_rfc3339(g.time)).unwrap_or_else(|| "never".into()),
                    last.map(|l| format!("{} ({})", format_rfc3339(l.time), l.quality.as_str()))
                        .unwrap_or_else(|| "never".into())
                )),
                None => Err("never reported".into()),
            };
            c.add(
                "sensors",
                format!("sensor {} reports", sensor.id),
                &format!("a good reading within {}", humantime::format_duration(limit)),
                res,
            );
        }
    }

    progress("devices");
    for d in &cfg.devices {
        let res = match &d.transport {
            Transport::Tcp { address } => match answered_daemon(cfg, store.as_ref().ok(), d, now) {
                // The daemon's own connection proves the path; a probe beside it would
                // be refused by a gateway that takes one client (max_connections).
                Some(seen) => Ok(seen),
                None => modbus_probe(cfg, d, address).await,
            },
            Transport::Rtu { serial, .. } => match std::fs::metadata(serial) {
                Ok(_) => Ok(format!(
                    "{} present (its answers show in the sensor checks)",
                    serial.display()
                )),
                Err(e) => Err(format!("{}: {e}", serial.display())),
            },
        };
        c.add(
            "devices",
            format!("Modbus device {} answers", d.id),
            "a Modbus response (data or exception)",
            res,
        );
    }
    for u in &cfg.ups {
        c.add(
            "devices",
            format!("UPS {} answers through upsd {}", u.id, u.nut),
            "upsd returns ups.status",
            nut_probe(&u.nut, &u.name).await,
        );
    }
    if let Some(m) = &cfg.mqtt {
        let addr = format!("{}:{}", m.host, m.port);
        let scheme = if m.tls { "mqtts" } else { "mqtt" };
        c.add(
            "devices",
            format!("MQTT broker {scheme}://{addr} accepts the daemon's connection"),
            if m.tls {
                "TLS handshake with the daemon's trust; MQTT CONNECT accepted"
            } else {
                "MQTT CONNECT accepted"
            },
            mqtt_probe(m).await,
        );
    }
    if let Some(i) = &cfg.influx {
        c.add(
            "sink",
            format!("InfluxDB {} answers", i.url),
            "an HTTP answer (after a TLS handshake with the daemon's trust for https://)",
            url_probe(&i.url, i.ca_file.as_deref()).await,
        );
    }

    progress("channels");
    for ch in &cfg.notify.channels {
        let ca_file = ch.ca_file.as_deref();
        let (what, res) = match &ch.kind {
            ChannelKind::Smtp { host, port, .. } => (
                format!("mail server {host}:{port} (channel {})", ch.id),
                smtp_probe(ch).await,
            ),
            ChannelKind::Twilio { base_url, .. } => (
                format!("SMS gateway {base_url} (channel {})", ch.id),
                url_probe(base_url, ca_file).await,
            ),
            ChannelKind::Webhook { url } => (
                format!("webhook {url} (channel {})", ch.id),
                url_probe(url, ca_file).await,
            ),
            ChannelKind::GsmModem { serial, .. } => (
                format!("GSM modem {} (channel {})", serial.display(), ch.id),
                match std::fs::metadata(serial) {
                    Ok(_) => Ok("serial device present".into()),
                    Err(e) => Err(format!("{}: {e}", serial.display())),
                },
            ),
        };
        c.add("channels", what, "reachable", res);
    }

    SelfTest {
        site: cfg.site.name.clone(),
        host: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").into(),
        config: config_path.display().to_string(),
        config_sha256: sha,
        started_at: now,
        by: by.into(),
        checks: c.0,
    }
}

fn clock(store: Option<&Store>, now: TimestampMs) -> Result<String, String> {
    let newest = store.and_then(|s| s.audit_newest_time().ok().flatten());
    if let Some(t) = newest
        && t > now + 1000
    {
        return Err(format!(
            "the clock ({}) is behind the newest audit record ({})",
            format_rfc3339(now),
            format_rfc3339(t)
        ));
    }
    let ntp = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match ntp.as_deref() {
        Some("no") => Err(format!("{}; NTP not synchronised (timedatectl)", format_rfc3339(now))),
        Some("yes") => Ok(format!("{}; NTP synchronised", format_rfc3339(now))),
        _ => Ok(format!("{}; NTP state not determinable here", format_rfc3339(now))),
    }
}

/// Any HTTP answer from `url`, through a client with the daemon's trust: for
/// `https://` the TLS handshake is what is proved.
async fn url_probe(url: &str, ca_file: Option<&Path>) -> Result<String, String> {
    let trust = crate::tls::Trust::load(ca_file).map_err(|e| format!("ca_file {e}"))?;
    let client = trust
        .http_client()?
        .timeout(PROBE)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| crate::http::chain(&e))?;
    match client.get(url).send().await {
        Ok(r) if url.starts_with("https://") => Ok(format!(
            "TLS handshake ok (certificate trusted); HTTP {}",
            r.status().as_u16()
        )),
        Ok(r) => Ok(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Err(crate::http::failure_text(e)),
    }
}

/// The channel's own session: connect, STARTTLS or TLS, AUTH, QUIT.
async fn smtp_probe(ch: &crate::config::notify::Channel) -> Result<String, String> {
    let channel = crate::notify::smtp::SmtpChannel::new(ch)
        .map_err(|e| e.reason)?
        .with_timeout(PROBE);
    channel.probe().await
}

/// An MQTT connection with the daemon's options (a client id of its own, so the
/// daemon's session is left alone), up to the broker's CONNACK.
async fn mqtt_probe(m: &crate::config::MqttConfig) -> Result<String, String> {
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};
    let mut o = MqttOptions::new(format!("{}-selftest", m.client_id), m.host.clone(), m.port);
    o.set_clean_session(true);
    o.set_keep_alive(m.keep_alive);
    if let Some(user) = &m.username {
        o.set_credentials(
            user.clone(),
            m.password.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
        );
    }
    if m.tls {
        o.set_transport(crate::sources::mqtt::tls_transport(m)?);
    }
    let (client, mut events) = AsyncClient::new(o, 4);
    let work = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                    return Ok(if m.tls {
                        "TLS handshake ok (certificate trusted); connection accepted".to_string()
                    } else {
                        "connection accepted".to_string()
                    });
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Err(format!("broker refused: {:?}", ack.code)),
                Ok(_) => {}
                Err(e) => {
                    return Err(crate::tls::certificate_problem(&e, &m.host).unwrap_or_else(|| e.to_string()));
                }
            }
        }
    };
    let res = tokio::time::timeout(PROBE, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE.as_secs())));
    let _ = client.try_disconnect();
    res
}

async fn nut_probe(addr: &str, name: &str) -> Result<String, String> {
    let work = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(format!("GET VAR {name} ups.status\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(s).lines();
        let line = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
        if line.starts_with("VAR ") {
            Ok(line)
        } else {
            Err(format!("upsd answered {line:?}"))
        }
    };
    tokio::time::timeout(PROBE, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE.as_secs())))
}

/// When the running daemon read a good value from device `d` within its sensors' stale
/// limit: how long ago, as the observation.
fn answered_daemon(
    cfg: &Config,
    store: Option<&Store>,
    d: &crate::config::ModbusDevice,
    now: TimestampMs,
) -> Option<String> {
    let store = store?;
    let di = cfg.devices.iter().position(|x| x.id == d.id)?;
    let ids = store.sensors().ok()?;
    cfg.sensors
        .iter()
        .filter(|s| matches!(&s.source, crate::config::SensorSource::Modbus(p) if p.device == di))
        .filter_map(|s| {
            let (id, _) = ids.get(&s.id)?;
            let (_, good) = store.latest(*id, cfg.latest_bound(now)).ok()?;
            let good = good?;
            let age = now.saturating_sub(good.time);
            (age <= crate::model::millis(stale_after(s, &cfg.devices, &cfg.ups))).then_some(age)
        })
        .min()
        .map(|age| {
            format!(
                "answered the running daemon {:.1} s ago, through the daemon's own connection",
                age as f64 / 1000.0
            )
        })
}

async fn modbus_probe(cfg: &Config, d: &crate::config::ModbusDevice, address: &str) -> Result<String, String> {
    use tokio_modbus::prelude::*;
    let di = cfg.devices.iter().position(|x| x.id == d.id);
    let point = cfg.sensors.iter().find_map(|s| match &s.source {
        crate::config::SensorSource::Modbus(p) if Some(p.device) == di => Some((p.register, p.address)),
        _ => None,
    });
    let (kind, addr) = point.unwrap_or((RegisterKind::Holding, 0));
    let work = async {
        let socket: std::net::SocketAddr = tokio::net::lookup_host(address)
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("{address}: no address"))?;
        let mut ctx = tcp::connect_slave(socket, Slave(d.unit))
            .await
            .map_err(|e| e.to_string())?;
        let answer = match kind {
            RegisterKind::Holding => ctx.read_holding_registers(addr, 1).await.map(|r| r.map(|_| ())),
            RegisterKind::Input => ctx.read_input_registers(addr, 1).await.map(|r| r.map(|_| ())),
            RegisterKind::Coil => ctx.read_coils(addr, 1).await.map(|r| r.map(|_| ())),
            RegisterKind::Discrete => ctx.read_discrete_inputs(addr, 1).await.map(|r| r.map(|_| ())),
        };
        match answer {
            Ok(Ok(())) => Ok(format!("read of {kind:?} {addr} answered")),
            Ok(Err(ex)) => Ok(format!("answered with exception {ex:?}")),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(PROBE.max(d.timeout), work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROBE.max(d.timeout).as_secs())))
}

/// The report: identification, the checks table, and the sign-off block.
pub fn document(t: &SelfTest, tz: &jiff::tz::TimeZone) -> Document {
    let when = crate::model::site_time(t.started_at, tz);
    let failed = t.checks.iter().filter(|c| !c.pass).count();
    let blocks = vec![
        Block::Fields(vec![
            ("Site".into(), t.site.clone()),
            ("Host".into(), t.host.clone()),
            ("Software".into(), format!("cryowatch {}", t.version)),
            ("Configuration".into(), t.config.clone()),
            ("Config SHA-256".into(), t.config_sha256.clone()),
            ("Executed".into(), format!("{when} by {}", t.by)),
        ]),
        Block::Verdict {
            ok: failed == 0,
            text: if failed == 0 {
                format!("All {} checks passed", t.checks.len())
            } else {
                format!("{failed} of {} checks FAILED", t.checks.len())
            },
        },
        Block::Heading("Checks".into()),
        Block::Table {
            headers: ["ID", "Area", "Check", "Expected", "Observed", "Result"]
                .map(String::from)
                .to_vec(),
            rows: t
                .checks
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.area.clone(),
                        c.what.clone(),
                        c.expected.clone(),
                        c.observed.clone(),
                        if c.pass { "PASS".into() } else { "FAIL".into() },
                    ]
                })
                .collect(),
            widths: Some(vec![0.6, 0.9, 2.0, 1.6, 2.2, 0.6]),
        },
        Block::Heading("Sign-off".into()),
        Block::Paragraph("Deviations (for every FAIL: cause, action, re-test reference):\n\n\n".into()),
        Block::Fields(vec![
            (
                "Performed by".into(),
                "____________________________  Date ____________  Signature ____________".into(),
            ),
            (
                "Reviewed by (QA)".into(),
                "____________________________  Date ____________  Signature ____________".into(),
            ),
        ]),
    ];
    Document {
        title: "Operational qualification — cryowatch self-test".into(),
        subtitle: Some(format!("{} · {when}", t.site)),
        blocks,
        footer: format!(
            "cryowatch {} OQ self-test · {} · config {}",
            t.version,
            t.site,
            t.config_sha256.get(..16).unwrap_or("")
        ),
    }
}
