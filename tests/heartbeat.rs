//! The daemon's own signs of life against a real Mosquitto and a local HTTP endpoint:
//! a retained `online` while it runs, the Last Will `offline` after a `kill -9`, `stopped`
//! after a clean stop; the heartbeat URL fetched on every beat.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::{Site, wait_for};

const TOPIC: &str = "lab/cryowatch/status";

/// The retained message on TOPIC, if any.
fn retained(broker: &Mosquitto) -> Option<String> {
    broker.retained(TOPIC)
}

/// A tiny HTTP endpoint counting the GETs it answers.
fn endpoint() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            if String::from_utf8_lossy(&buf[..n]).starts_with("GET /ping") {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, hits)
}

#[test]
fn online_while_running_offline_after_kill_9_stopped_after_a_clean_stop_and_the_url_pinged() {
    let broker = Mosquitto::start();
    let (port, hits) = endpoint();
    let site = Site::new(&format!(
        r#"[site]
name = "heartbeat lab"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "hb-test"
keep_alive = "2s"
[heartbeat]
mqtt_topic = "{TOPIC}"
url = "http://127.0.0.1:{port}/ping"
interval = "500ms"
[[asset]]
id = "d"
kind = "ln2_dewar"
"#,
        url = broker.url()
    ));
    let mut daemon = site.start_daemon();
    let online = wait_for(Duration::from_secs(15), "online", || {
        retained(&broker).filter(|m| m.contains("\"online\""))
    });
    assert!(online.contains("heartbeat lab"), "{online}");
    wait_for(Duration::from_secs(10), "the URL pinged on every beat", || {
        (hits.load(Ordering::Relaxed) >= 3).then_some(())
    });

    daemon.signal("KILL");
    let _ = daemon.wait_exit(Duration::from_secs(5));
    // The broker publishes the Last Will once 1.5 keep-alives pass without a word.
    wait_for(Duration::from_secs(15), "the Last Will", || {
        retained(&broker).filter(|m| m.contains("\"offline\""))
    });
    let pinged = hits.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hits.load(Ordering::Relaxed), pinged, "a dead daemon pings nothing");

    let again = site.start_daemon();
    wait_for(Duration::from_secs(15), "online again", || {
        retained(&broker).filter(|m| m.contains("\"online\""))
    });
    site.stop_daemon(again);
    let last = retained(&broker).unwrap_or_default();
    assert!(last.contains("\"stopped\""), "a clean stop says so: {last}");
}

/// How many connections of `client_id` the broker accepted, from its log (Mosquitto
/// logs each one: "New client connected from ... as CLIENT_ID").
fn connections_of(broker: &Mosquitto, client_id: &str) -> usize {
    let needle = format!(" as {client_id} ");
    broker
        .log()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(&needle))
        .count()
}

/// The heartbeat opens one connection and keeps it: its beats, its recall of the
/// retained record heads and the source's own connection do not make it reconnect.
#[test]
fn the_heartbeat_keeps_one_broker_connection_from_the_start() {
    let broker = Mosquitto::start();
    let site = Site::new(&format!(
        r#"[site]
name = "heartbeat lab"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "hb-once"
[heartbeat]
mqtt_topic = "{TOPIC}"
interval = "200ms"
[[asset]]
id = "d"
kind = "ln2_dewar"
[[sensor]]
id = "probe"
asset = "d"
[sensor.mqtt]
topic = "probe/hb-once"
"#,
        url = broker.url()
    ));
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(15), "online", || {
        retained(&broker).filter(|m| m.contains("\"online\""))
    });
    // Past the recall of the retained heads (3 s) and many beats.
    std::thread::sleep(Duration::from_secs(5));
    let log = broker.log();
    assert_eq!(
        connections_of(&broker, "hb-once-heartbeat"),
        1,
        "the heartbeat connected more than once; broker log:\n{log}\ndaemon log:\n{}",
        site.daemon_log()
    );
    assert_eq!(
        connections_of(&broker, "hb-once"),
        1,
        "the source's connections; broker log:\n{log}"
    );
    site.stop_daemon(daemon);
}

/// The daily "all OK" page: once a day at its time, through the normal channels, and
/// not again after a restart the same day.
#[test]
fn the_daily_all_ok_page_goes_out_once_a_day() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = common::smtp::SmtpServer::start(dir.path());
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let at = now.strftime("%H:%M").to_string();
    let site = Site::new(&format!(
        r#"[site]
name = "keepalive lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[heartbeat]
all_ok_at = "{at}"
all_ok_to = ["alice"]
[[asset]]
id = "d"
kind = "ln2_dewar"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        port = smtp.port
    ));
    let daemon = site.start_daemon();
    let mails = smtp.wait_messages(1, Duration::from_secs(20));
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(
        subject.contains("keepalive lab") && subject.contains("all OK"),
        "{subject}"
    );
    assert!(
        mails[0].body.contains("if it does not, the monitor itself has failed"),
        "{}",
        mails[0].body
    );
    site.stop_daemon(daemon);
    let again = site.start_daemon();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.messages().len(), 1, "once a day, restarts included");
    site.stop_daemon(again);
}
