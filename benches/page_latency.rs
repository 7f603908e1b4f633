//! Paging latency end to end: from the MQTT publish of an excursion to the SMTP server
//! accepting the page.
//!
//! Mosquitto and an aiosmtpd server run on free loopback ports; the daemon runs
//! in-process (`Daemon::start`) with one MQTT sensor, a `high` rule without delay whose
//! escalation pages one contact by email at once (step after 0 s, `smtp` channel,
//! `tls = "none"`), and the sensor's default `stale` and `fault` rules disabled. Each
//! round publishes an excursion from a persistent QoS 1 client (the time is taken just
//! before the publish), waits for the `[CRITICAL]` mail, then publishes a normal value
//! and waits for the `[NORMAL]` mail of the cleared alarm, so every excursion starts
//! from a quiet daemon. The SMTP server stamps each message with `time.time_ns()` when
//! its DATA is complete, on the same clock as the bench: latency = that stamp − the
//! publish time.
//!
//! Where the time goes, per page: publish → `raised` event (MQTT source, store writer,
//! alarm engine, commit; seen on `CommitHandle.events`), `raised` → the dispatcher pass
//! that planned the page (the notification's `created_at` in the outbox, ms
//! resolution), and that pass → the server's acceptance (planning, composing, the SMTP
//! session).
//!
//! Run: `cargo bench --bench page_latency`. BENCH_EXCURSIONS sets the number of pages
//! measured (default 120, after 3 warm-up rounds). Needs `mosquitto` and aiosmtpd (the
//! Python of CRYOWATCH_TEST_PYTHON, else `.venv/bin/python`, else `python3`; installed
//! by tests/run.sh).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryowatch::config::Config;
use cryowatch::daemon::Daemon;
use cryowatch::pipeline::commit::AlarmEvent;
use cryowatch::store::Store;
use rumqttc::{AsyncClient, MqttOptions, NetworkOptions, QoS};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

mod support;
use support::{Killed, free_port, start_broker};

const SENSOR: &str = "dewar-1.temp";
const TOPIC: &str = "lab/dewar-1/temp";
const THRESHOLD: f64 = -150.0;
const NORMAL: f64 = -190.0;
const EXCURSION: f64 = -120.0;
/// Rounds before the measured ones (first SMTP connection, first plan, caches).
const WARMUP: usize = 3;
/// Longest wait for one event or one mail.
const PATIENCE: Duration = Duration::from_secs(5);
/// The measuring loop stops after this long, whatever the count.
const BUDGET: Duration = Duration::from_secs(100);
/// Before each excursion, a random pause up to this long, so excursions land at
/// different points of the daemon's clock tick (250 ms) and dispatcher pass (500 ms).
const JITTER_MS: u64 = 300;
const TARGET_P99_MS: f64 = 250.0;

/// An SMTP server that accepts everything and prints one JSON line per message: when
/// its DATA was complete (`time.time_ns()`), its Subject and X-Cryowatch-Alarm, and
/// when the session reached each stage (connection, EHLO, MAIL, RCPT, DATA command).
const SMTP_SERVER: &str = r#"
import asyncio, email.parser, email.policy, json, time
from aiosmtpd.smtp import SMTP

class Stamped(SMTP):
    def connection_made(self, transport):
        self.stamps = {"connect": time.time_ns()}
        super().connection_made(transport)

def stamp(name):
    inner = getattr(SMTP, "smtp_" + name)
    async def method(self, arg):
        self.stamps.setdefault(name.lower(), time.time_ns())
        await inner(self, arg)
    method.__dict__.update(inner.__dict__)
    setattr(Stamped, "smtp_" + name, method)

for name in ("EHLO", "MAIL", "RCPT", "DATA"):
    stamp(name)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        t = time.time_ns()
        h = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            envelope.original_content or b"")
        print(json.dumps({"t_ns": t, "subject": str(h.get("Subject", "")),
                          "alarm": str(h.get("X-Cryowatch-Alarm", "")),
                          "stamps": server.stamps}), flush=True)
        server.stamps = {}
        return "250 2.0.0 Ok: queued"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Stamped(Handler(), hostname="smtp.bench.invalid", loop=loop), "127.0.0.1", 0)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CRYOWATCH_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// One message the SMTP server accepted.
#[derive(Debug)]
struct Mail {
    accepted_ns: i128,
    subject: String,
    alarm: Option<i64>,
    /// When the session reached each of [`STAGES`], as the server saw it.
    session: [Option<i128>; STAGES.len()],
}

/// The stages of an SMTP session the server stamps, in order; DATA complete follows.
const STAGES: [&str; 5] = ["connect", "ehlo", "mail", "rcpt", "data"];

impl Mail {
    fn is_page(&self) -> bool {
        self.subject.contains("[CRITICAL]")
    }

    fn is_normal(&self) -> bool {
        self.subject.contains("[NORMAL]")
    }
}

/// Starts the SMTP server; returns it, its port and the messages it accepts, as they come.
fn start_smtp(dir: &Path) -> (Killed, u16, mpsc::UnboundedReceiver<Mail>) {
    let script = dir.join("smtp_stamp.py");
    std::fs::write(&script, SMTP_SERVER).expect("write the SMTP server script");
    let log = std::fs::File::create(dir.join("smtp.log")).expect("smtp log");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start the SMTP server (python with aiosmtpd: run `bash tests/run.sh` once)");
    let stdout = child.stdout.take().expect("SMTP server stdout");
    let server = Killed(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.strip_prefix("ready ").and_then(|p| p.trim().parse::<u16>().ok()));
        let _ = ready_tx.send(port);
        for line in lines.map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let mail = Mail {
                accepted_ns: v["t_ns"].as_i64().unwrap_or_default() as i128,
                subject: v["subject"].as_str().unwrap_or_default().to_string(),
                alarm: v["alarm"].as_str().and_then(|a| a.trim().parse().ok()),
                session: STAGES.map(|k| v["stamps"][k].as_i64().map(i128::from)),
            };
            if tx.send(mail).is_err() {
                break;
            }
        }
    });
    let port = ready_rx.recv_timeout(Duration::from_secs(15)).ok().flatten();
    let Some(port) = port else {
        panic!(
            "the SMTP server did not start; is aiosmtpd installed for {}? (bash tests/run.sh)\n{}",
            python().display(),
            std::fs::read_to_string(dir.join("smtp.log")).unwrap_or_default()
        );
    };
    (server, port, rx)
}

fn config_toml(db: &Path, mqtt_port: u16, smtp_port: u16) -> String {
    format!(
        r#"[site]
name = "page latency bench"
timezone = "UTC"
[store]
path = "{db}"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "page-latency-cryowatch"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
location = "Room 214"
[[sensor]]
id = "{SENSOR}"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "{TOPIC}"
format = "number"
[[rule]]
id = "dewar-warm"
sensor = "{SENSOR}"
kind = "high"
threshold = {THRESHOLD:.1}
hysteresis = 0.5
severity = "critical"
escalation = "oncall"
[[rule]]
id = "{SENSOR}:stale"
sensor = "{SENSOR}"
kind = "stale"
enabled = false
[[rule]]
id = "{SENSOR}:fault"
sensor = "{SENSOR}"
kind = "fault"
enabled = false
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        db = db.display()
    )
}

/// One measured page.
struct Page {
    alarm: i64,
    published_ns: i128,
    raised_ns: i128,
    accepted_ns: i128,
    session: [Option<i128>; STAGES.len()],
}

/// One return to normal: the normal value's publish to the `[NORMAL]` mail.
struct Normal {
    published_ns: i128,
    accepted_ns: i128,
}

#[derive(Default)]
struct Trouble {
    timeouts: u64,
    lagged: u64,
    unexpected_mails: u64,
}

struct Run {
    pages: Vec<Page>,
    normals: Vec<Normal>,
    trouble: Trouble,
    rounds: usize,
    wall: Duration,
    sent: u64,
    failed_attempts: u64,
    undeliverable: u64,
    mqtt_messages: u64,
}

/// Waits for the sensor's alarm event of `kind`; returns its alarm id and when it was seen.
async fn wait_event(
    rx: &mut broadcast::Receiver<AlarmEvent>,
    kind: &str,
    trouble: &mut Trouble,
) -> Option<(i64, i128)> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => {
                trouble.timeouts += 1;
                return None;
            }
            Ok(Err(RecvError::Lagged(n))) => trouble.lagged += n,
            Ok(Err(RecvError::Closed)) => panic!("the store writer stopped"),
            Ok(Ok(ev)) if ev.event.sensor.as_deref() == Some(SENSOR) && ev.event.kind == kind => {
                return Some((ev.event.alarm.unwrap_or_default(), now_ns()));
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits for the mail that `wanted` recognises; any other mail is counted as unexpected.
async fn wait_mail(
    mails: &mut mpsc::UnboundedReceiver<Mail>,
    wanted: impl Fn(&Mail) -> bool,
    trouble: &mut Trouble,
) -> Option<Mail> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, mails.recv()).await {
            Err(_) => {
                trouble.timeouts += 1;
                return None;
            }
            Ok(None) => panic!("the SMTP server stopped"),
            Ok(Some(m)) if wanted(&m) => return Some(m),
            Ok(Some(_)) => trouble.unexpected_mails += 1,
        }
    }
}

async fn measure(config: &Config, mqtt_port: u16, count: usize, mails: &mut mpsc::UnboundedReceiver<Mail>) -> Run {
    let daemon = Daemon::start(config).expect("daemon starts");
    let mut events = daemon.store.events.subscribe();
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.mqtt_stats.connects.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "cryowatch did not connect to the broker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A persistent publisher, Nagle off so the bench's side adds no delay of its own.
    let mut options = MqttOptions::new("page-latency-publisher", "127.0.0.1", mqtt_port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let poller = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut seq = 0u32;
    // Values differ a little every time, so no two publishes carry the same payload.
    let mut publish = async |base: f64| {
        seq += 1;
        let payload = format!("{:.4}", base - f64::from(seq % 1000) * 0.0001);
        let t = now_ns();
        client
            .publish(TOPIC, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
        t
    };

    // The subscription is in place once a reading gets through.
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.writer_stats.committed.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no reading reached the store");
        publish(NORMAL).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut rng = fastrand::Rng::with_seed(5);
    let mut trouble = Trouble::default();
    let (mut pages, mut normals) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let start = Instant::now();
    let mut rounds = 0;
    for i in 0..WARMUP + count {
        if start.elapsed() > BUDGET || trouble.timeouts > 5 {
            eprintln!(
                "page_latency: stopped early after {i} rounds ({} timeouts)",
                trouble.timeouts
            );
            break;
        }
        rounds = i + 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(0..=JITTER_MS))).await;

        let published_ns = publish(EXCURSION).await;
        let mut paged = false;
        if let Some((alarm, raised_ns)) = wait_event(&mut events, "raised", &mut trouble).await
            && let Some(m) = wait_mail(mails, |m| m.is_page() && m.alarm == Some(alarm), &mut trouble).await
        {
            paged = true;
            if i >= WARMUP {
                pages.push(Page {
                    alarm,
                    published_ns,
                    raised_ns,
                    accepted_ns: m.accepted_ns,
                    session: m.session,
                });
            }
        }

        // Back to normal whatever happened, so the next excursion raises a new alarm;
        // the [NORMAL] mail goes only to those a page reached.
        let published_ns = publish(NORMAL).await;
        if let Some((alarm, _)) = wait_event(&mut events, "cleared", &mut trouble).await
            && paged
            && let Some(m) = wait_mail(mails, |m| m.is_normal() && m.alarm == Some(alarm), &mut trouble).await
            && i >= WARMUP
        {
            normals.push(Normal {
                published_ns,
                accepted_ns: m.accepted_ns,
            });
        }
    }
    let wall = start.elapsed();
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    poller.abort();
    let stats = &daemon.dispatch_stats;
    let (sent, failed_attempts, undeliverable) = (
        stats.sent.load(Ordering::Relaxed),
        stats.failed_attempts.load(Ordering::Relaxed),
        stats.undeliverable.load(Ordering::Relaxed),
    );
    let mqtt_messages = daemon.mqtt_stats.messages.load(Ordering::Relaxed);
    daemon.stop().await;
    Run {
        pages,
        normals,
        trouble,
        rounds,
        wall,
        sent,
        failed_attempts,
        undeliverable,
        mqtt_messages,
    }
}

/// p50, p99, max and mean, in ms.
struct Summary {
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn summary(mut v: Vec<f64>) -> Summary {
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (p50, p99, max) = support::percentiles(&mut v);
    Summary { p50, p99, max, mean }
}

fn line(label: &str, s: &Summary, note: &str) {
    let text = format!(
        "  {label:<34} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   mean {:>7.2} ms   {note}",
        s.p50, s.p99, s.max, s.mean
    );
    println!("{}", text.trim_end());
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let count: usize = std::env::var("BENCH_EXCURSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt_port = free_port();
    let _broker = start_broker(dir.path(), mqtt_port);
    let (_smtp, smtp_port, mut mails) = start_smtp(dir.path());
    let db = dir.path().join("cryowatch.db");
    let cfg_path = dir.path().join("cryowatch.toml");
    std::fs::write(&cfg_path, config_toml(&db, mqtt_port, smtp_port)).expect("write config");
    let config = match cryowatch::config::load(&cfg_path) {
        Ok(c) => c,
        Err(e) => panic!("bench configuration is invalid:\n{e}"),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = rt.block_on(measure(&config, mqtt_port, count, &mut mails));

    // When the dispatcher pass that planned each page began: the outbox's created_at.
    let store = Store::open(&db).expect("open store");
    let notifications = store.notifications(None).expect("read the outbox");
    drop(store);
    let planned = |p: &Page| {
        notifications
            .iter()
            .filter(|n| n.kind == "page" && n.alarm == Some(p.alarm))
            .map(|n| n.created_at)
            .filter(|&t| i128::from(t) * 1_000_000 >= p.published_ns - 1_000_000)
            .min()
            .map(|t| i128::from(t) * 1_000_000)
    };

    let total: Vec<f64> = run.pages.iter().map(|p| ms(p.accepted_ns - p.published_ns)).collect();
    let ingest: Vec<f64> = run.pages.iter().map(|p| ms(p.raised_ns - p.published_ns)).collect();
    let dispatch: Vec<f64> = run.pages.iter().map(|p| ms(p.accepted_ns - p.raised_ns)).collect();
    let (mut wake, mut pass) = (Vec::new(), Vec::new());
    for p in &run.pages {
        if let Some(t) = planned(p) {
            wake.push(ms(t - p.raised_ns).max(0.0));
            pass.push(ms(p.accepted_ns - t));
        }
    }
    // The SMTP session as the server saw it: from the pass's start to the connection,
    // then each stage to the next, the last to DATA complete.
    let mut steps: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len() + 1];
    for p in &run.pages {
        let (Some(began), [Some(connect), Some(ehlo), Some(mail), Some(rcpt), Some(data)]) = (planned(p), p.session)
        else {
            continue;
        };
        let times = [began, connect, ehlo, mail, rcpt, data, p.accepted_ns];
        for (i, w) in times.windows(2).enumerate() {
            steps[i].push(ms(w[1] - w[0]));
        }
    }
    let normal: Vec<f64> = run.normals.iter().map(|n| ms(n.accepted_ns - n.published_ns)).collect();
    let (n_pages, n_wake, n_normals) = (total.len(), wake.len(), normal.len());
    let total = summary(total);
    let ingest = summary(ingest);
    let dispatch = summary(dispatch);
    let share = 100.0 * dispatch.mean / total.mean;

    println!(
        "page latency: MQTT publish (QoS 1) of an excursion -> SMTP server accepted the [CRITICAL] page; \
         Mosquitto + aiosmtpd on loopback, daemon in-process"
    );
    line(
        "publish -> page accepted",
        &total,
        &format!(
            "({n_pages} of {count} pages; target p99 < {TARGET_P99_MS:.0} ms: {})",
            if total.p99 < TARGET_P99_MS { "met" } else { "NOT met" }
        ),
    );
    line(
        "  publish -> alarm raised",
        &ingest,
        "(MQTT, store writer, engine, commit)",
    );
    line(
        "  raised -> page accepted",
        &dispatch,
        &format!("(the dispatcher: {share:.0} % of the mean latency)"),
    );
    line(
        "    raised -> pass began",
        &summary(wake),
        &format!("(waking the dispatcher; outbox created_at, 1 ms resolution; {n_wake} matched)"),
    );
    line(
        "    pass began -> accepted",
        &summary(pass),
        "(plan, compose, SMTP session)",
    );
    let n_sessions = steps[0].len();
    for ((label, note), v) in [
        (
            "pass began -> connection",
            "(plan, compose, TCP connect; as the server saw it)",
        ),
        ("connection -> EHLO", "(greeting, EHLO sent)"),
        ("EHLO -> MAIL", ""),
        ("MAIL -> RCPT", ""),
        ("RCPT -> DATA", ""),
        ("DATA -> DATA complete", "(message body and its final \".\")"),
    ]
    .into_iter()
    .zip(steps)
    {
        line(&format!("      {label}"), &summary(v), note);
    }
    println!("    ({n_sessions} SMTP sessions stamped by the server)");
    line(
        "publish normal -> [NORMAL]",
        &summary(normal),
        &format!("({n_normals} return-to-normal mails)"),
    );
    println!(
        "  rounds {} ({WARMUP} warm-up, pause 0-{JITTER_MS} ms before each excursion) in {:.1} s; \
         dispatcher sent {}, failed attempts {}, undeliverable {}; MQTT messages {}; \
         timeouts {}, events lagged {}, unexpected mails {}",
        run.rounds,
        run.wall.as_secs_f64(),
        run.sent,
        run.failed_attempts,
        run.undeliverable,
        run.mqtt_messages,
        run.trouble.timeouts,
        run.trouble.lagged,
        run.trouble.unexpected_mails,
    );
    println!(
        "REPORT page_p50_ms={:.2} page_p99_ms={:.2} page_pages={n_pages} page_wanted={count}",
        total.p50, total.p99
    );
}
