//! Fault scenarios that hit the daemon itself: `kill -9` during an escalation, a full
//! disk under the store, a wall clock that jumps, a flood of malformed MQTT input,
//! fuzzed configuration files, power cuts that lose every write not fsynced, and single
//! bad values (a retention too long to represent, a 2 MiB MQTT message, a reading stamped
//! 2099). Every peer is real (Mosquitto, aiosmtpd) and the daemon is the real
//! `cryowatch run`.
//!
//! Readings enter over MQTT with QoS 1 from [`Feed`], which counts what the broker
//! acknowledged: that is "produced". "Stored" is what `cryowatch history` gives back.

mod bad_values;
mod clock;
mod disk;
mod fuzz;
mod kill;
mod malformed;
mod powercut;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::Scenario;
use crate::common::mosquitto::Mosquitto;
use crate::common::smtp::ReceivedMail;
use crate::common::{Proc, Site, wait_for};
pub use cryowatch::store::outbox::Notification as OutboxRow;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        ("kill -9 during escalation", kill::run),
        ("disk full under the store", disk::run),
        ("clock jump", clock::run),
        ("malformed mqtt flood", malformed::run),
        ("fuzzed configs", fuzz::run),
        ("power cut", powercut::run),
        ("retention of 500000000y", bad_values::huge_retention),
        ("2 MiB mqtt message", bad_values::huge_message),
        ("reading stamped 2099", bad_values::far_future_stamp),
    ]
}

/// Bearer token of the viewer the scenarios' daemons accept on their API.
pub const TOKEN: &str = "fault-viewer-token-0123456789";

/// The wall clock in epoch milliseconds.
/// Ends a scenario's checks: the daemon must have stopped cleanly (`code` 0), and every
/// problem found becomes the row's error, with the tail of the daemon's log.
pub fn conclude(out: &mut crate::outcome::Outcome, mut problems: Vec<String>, code: Option<i32>, site: &Site) {
    if code != Some(0) {
        problems.push(format!("the daemon did not stop cleanly (exit {code:?})"));
    }
    if !problems.is_empty() {
        out.error = Some(format!(
            "{}; log tail:\n{}",
            problems.join("; "),
            kill::tail(&site.daemon_log())
        ));
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `[site]`, `[store]` and `[mqtt]` plus a `probe` sensor (topic `probe/CLIENT`) used to
/// learn when the daemon's session is subscribed.
pub fn base_config(broker: &Mosquitto, client_id: &str) -> String {
    format!(
        r#"[site]
name = "fault lab"
timezone = "UTC"

[store]
path = "{{dir}}/cryowatch.db"

[mqtt]
url = "{url}"
client_id = "{client_id}"

[[asset]]
id = "box"
kind = "other"

[[sensor]]
id = "probe"
asset = "box"
stale_after = "1h"
[sensor.mqtt]
topic = "probe/{client_id}"
"#,
        url = broker.url()
    )
}

/// An `[[sensor]]` on asset `box` reading `{"v": .., "ts": ..}` JSON from `topic`; with
/// `stamped` the time comes from the payload, else from the daemon's clock on arrival.
pub fn json_sensor(id: &str, topic: &str, stamped: bool) -> String {
    let ts = if stamped { "timestamp_path = \"ts\"\n" } else { "" };
    format!(
        "\n[[sensor]]\nid = \"{id}\"\nasset = \"box\"\nunit = \"degC\"\nstale_after = \"30s\"\n[sensor.mqtt]\ntopic = \"{topic}\"\nformat = \"json\"\njson_path = \"v\"\n{ts}"
    )
}

/// An SMTP channel `email` to the aiosmtpd on `port`.
pub fn email_channel(port: u16) -> String {
    format!(
        "\n[[channel]]\nid = \"email\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"cryowatch <cryowatch@example.org>\"\n"
    )
}

/// `[api]` on `listen` with the viewer [`TOKEN`].
pub fn api_section(listen: SocketAddr) -> String {
    format!("\n[api]\nlisten = \"{listen}\"\n[[api.token]]\nid = \"viewer\"\nrole = \"viewer\"\ntoken = \"{TOKEN}\"\n")
}

/// `GET path` on the daemon's API with the viewer token.
pub fn api_get(addr: SocketAddr, path: &str) -> Option<crate::common::http::Response> {
    let auth = format!("Bearer {TOKEN}");
    crate::common::http::call(addr, "GET", path, &[("Authorization", &auth)], None).ok()
}

/// Publishes to the probe topic until a probe reading is stored: from then on the broker
/// keeps QoS 1 messages for the daemon's session.
pub fn wait_subscribed(site: &Site, broker: &Mosquitto, client_id: &str) {
    let before = site.history("probe").len();
    let topic = format!("probe/{client_id}");
    wait_for(Duration::from_secs(20), "the daemon to subscribe", || {
        broker.publish(&topic, "1", 1);
        std::thread::sleep(Duration::from_millis(100));
        (site.history("probe").len() > before).then_some(())
    });
}

/// Milliseconds since the epoch of an RFC 3339 time as `history` prints it.
pub fn parse_ms(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

/// Produced vs stored for readings identified by their time (`ms`): (stored distinct,
/// duplicated) of `produced` among `stored_times`.
pub fn tally(produced: &[i64], stored_times: &[i64]) -> (u64, u64) {
    let mut count: HashMap<i64, u64> = HashMap::new();
    for t in stored_times {
        *count.entry(*t).or_insert(0) += 1;
    }
    let stored = produced.iter().filter(|t| count.contains_key(t)).count() as u64;
    let dup = count.values().filter(|n| **n > 1).count() as u64;
    (stored, dup)
}

/// Times (ms) of every stored reading of `sensor`.
pub fn stored_times(site: &Site, sensor: &str) -> Vec<i64> {
    site.history(sensor).iter().filter_map(|r| parse_ms(&r.time)).collect()
}

/// Waits until every time in `produced` is stored for `sensor` (or `within` passes);
/// returns how long it took, None when it did not happen.
pub fn wait_stored(site: &Site, sensor: &str, produced: &[i64], within: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let (stored, _) = tally(produced, &stored_times(site, sensor));
        if stored == produced.len() as u64 {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A QoS 1 publisher on its own MQTT connection (rumqttc), counting what the broker
/// acknowledged. Payloads come from a generator called with 0, 1, 2, ...
pub struct Feed {
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    client: Client,
    publisher: Option<JoinHandle<Vec<i64>>>,
    events: Option<JoinHandle<()>>,
}

/// One message to publish: topic, payload, and the reading time it carries (for
/// counting), if it is a reading.
pub type Message = (String, Vec<u8>, Option<i64>);

impl Feed {
    /// Calls `next(i)` every `every` (as fast as the broker takes them when zero) until
    /// it returns `None` or [`Feed::stop`].
    pub fn start(
        broker: &Mosquitto,
        client_id: &str,
        every: Duration,
        mut next: impl FnMut(u64) -> Option<Message> + Send + 'static,
    ) -> Feed {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", broker.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(100);
        let (client, mut connection) = Client::new(opts, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let events = {
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for ev in connection.iter() {
                    match ev {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        };
        let publisher = {
            let client = client.clone();
            let stop = stop.clone();
            let published = published.clone();
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Some((topic, payload, time)) = next(i) else { break };
                    if client.publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                        break;
                    }
                    published.fetch_add(1, Ordering::Relaxed);
                    times.extend(time);
                    i += 1;
                    if !every.is_zero() {
                        std::thread::sleep(every);
                    }
                }
                times
            })
        };
        Feed {
            stop,
            published,
            acked,
            client,
            publisher: Some(publisher),
            events: Some(events),
        }
    }

    /// Messages the broker acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops publishing, waits until the broker acknowledged every message, and returns
    /// the reading times published (all acknowledged) and the message count.
    pub fn stop(mut self) -> (Vec<i64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let times = self
            .publisher
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let published = self.published.load(Ordering::Relaxed);
        let acked = self.acked.clone();
        wait_for(
            Duration::from_secs(30),
            "the broker to acknowledge every message",
            || (acked.load(Ordering::Relaxed) >= published).then_some(()),
        );
        let _ = self.client.disconnect();
        if let Some(h) = self.events.take() {
            let _ = h.join();
        }
        (times, published)
    }

    /// Waits until the publisher has ended by itself (its generator returned `None`).
    pub fn wait_done(&self, within: Duration) {
        let published = self.published.clone();
        let mut last = u64::MAX;
        let mut still = Instant::now();
        wait_for(within, "the feed to publish everything", || {
            let now = published.load(Ordering::Relaxed);
            if now != last {
                last = now;
                still = Instant::now();
            }
            (self.publisher.as_ref().is_some_and(|h| h.is_finished()) || still.elapsed() > within).then_some(())
        });
    }
}

/// A paced reading generator for `topic`: `{"v": value(i), "ts": T}` with `T` the wall
/// clock, strictly increasing, so every reading is identified by its time.
pub fn readings(topic: &str, value: impl Fn(u64) -> f64 + Send + 'static) -> impl FnMut(u64) -> Option<Message> + Send {
    let topic = topic.to_string();
    let mut last = 0i64;
    move |i| {
        let ts = now_ms().max(last + 1);
        last = ts;
        let payload = format!(r#"{{"v":{},"ts":{ts}}}"#, value(i));
        Some((topic.clone(), payload.into_bytes(), Some(ts)))
    }
}

/// Starts the daemon with `env` added (e.g. libfaketime), logging like
/// [`Site::start_daemon`].
pub fn start_daemon_with(site: &Site, env: &[(&str, String)]) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(site.path().join("daemon.log"))
        .expect("open daemon log");
    let log2 = log.try_clone().expect("clone log handle");
    let mut cmd = crate::common::cryowatch();
    cmd.args(["run", "-c", &site.config_str()])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("cryowatch run", &mut cmd)
}

/// Stops the daemon with SIGTERM; its exit code (None: killed by a signal or hung).
/// The end of a scenario that kills the daemon again and again while `times` were
/// produced: waits for a late duplicate, stops the daemon and fills the readings columns
/// of `out` (produced, stored, duplicated), its crashes and recovery. Returns the
/// daemon's exit code.
pub fn finish_feed(
    out: &mut crate::outcome::Outcome,
    site: &Site,
    sensor: &str,
    daemon: Proc,
    times: &[i64],
    mut crashes: u64,
    recovery: Option<Duration>,
) -> Option<i32> {
    let mut daemon = daemon;
    std::thread::sleep(Duration::from_secs(1)); // a late duplicate would arrive now
    if !daemon.running() {
        crashes += 1;
    }
    let code = stop_daemon(daemon);
    let (stored, dup) = tally(times, &stored_times(site, sensor));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.recovery = recovery;
    code
}

pub fn stop_daemon(mut daemon: Proc) -> Option<i32> {
    if !daemon.running() {
        return daemon.child.try_wait().ok().flatten().and_then(|s| s.code());
    }
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The store's database, read-only (for the outbox and the audit trail).
pub fn db(site: &Site) -> Option<rusqlite::Connection> {
    db_at(&site.path().join("cryowatch.db"))
}

pub fn db_at(path: &std::path::Path) -> Option<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// Audit records of `kind`: their subjects and details.
pub fn audit(c: &rusqlite::Connection, kind: &str) -> Vec<(String, String)> {
    let Ok(mut st) = c.prepare("SELECT subject, detail FROM audit WHERE kind = ?1 ORDER BY seq") else {
        return Vec::new();
    };
    st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

/// The store's outbox, oldest first (empty while the store cannot be read).
pub fn outbox(site: &Site) -> Vec<OutboxRow> {
    outbox_at(&site.path().join("cryowatch.db"))
}

pub fn outbox_at(path: &std::path::Path) -> Vec<OutboxRow> {
    db_at(path)
        .and_then(|c| cryowatch::store::outbox::list(&c, None).ok())
        .unwrap_or_default()
}

/// The outbox id in a cryowatch Message-ID (`<cryowatch[-scope]-ID@domain>`).
pub fn message_id_number(mail: &ReceivedMail) -> Option<i64> {
    let mid = mail.header("Message-ID")?;
    let left = mid.trim().trim_start_matches('<').split('@').next()?;
    let (rest, n) = left.rsplit_once('-')?;
    // A negative id (sent from memory) leaves a trailing '-' before the digits.
    if rest.ends_with('-') {
        n.parse::<i64>().ok().map(|n| -n)
    } else {
        n.parse().ok()
    }
}

/// Mails received more than once: (by Message-ID, by recipients + subject + body).
pub fn mail_duplicates(mails: &[ReceivedMail]) -> (u64, u64) {
    let mut by_id: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_content: BTreeMap<(Vec<String>, String, String), u64> = BTreeMap::new();
    for m in mails {
        *by_id
            .entry(m.header("Message-ID").unwrap_or_default().to_string())
            .or_insert(0) += 1;
        *by_content
            .entry((
                m.rcpt_tos.clone(),
                m.header("Subject").unwrap_or_default().to_string(),
                m.body.clone(),
            ))
            .or_insert(0) += 1;
    }
    (
        by_id.values().map(|n| n.saturating_sub(1)).sum(),
        by_content.values().map(|n| n.saturating_sub(1)).sum(),
    )
}

/// Mails of one content (recipients, subject, body) that arrived under more than one
/// Message-ID: each extra identity is a duplicated page (a resend of the same outbox row
/// keeps its Message-ID).
pub fn under_two_ids(mails: &[ReceivedMail]) -> u64 {
    let mut ids_by_content: BTreeMap<(Vec<String>, String, String), std::collections::BTreeSet<String>> =
        BTreeMap::new();
    for m in mails {
        ids_by_content
            .entry((
                m.rcpt_tos.clone(),
                m.header("Subject").unwrap_or_default().to_string(),
                m.body.clone(),
            ))
            .or_default()
            .insert(m.header("Message-ID").unwrap_or_default().to_string());
    }
    ids_by_content.values().map(|ids| ids.len() as u64 - 1).sum()
}

/// Lines of the daemon's log containing `needle`.
pub fn log_lines(site: &Site, needle: &str) -> usize {
    site.daemon_log().lines().filter(|l| l.contains(needle)).count()
}
