//! The daemon watches its own record, against a real Mosquitto, aiosmtpd and SQLite
//! file: a reading edited in the store a second after its commit raises the critical
//! `cryowatch.record:integrity` alarm and pages it; the record's heads go out in the
//! retained heartbeat, and a trail cut short while the daemon was stopped is caught when
//! it starts again, from the heads it published.

mod common;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::smtp::SmtpServer;
use common::{Site, cryowatch_output, wait_for};
use rusqlite::Connection;

const TOPIC: &str = "lab/cryowatch/status";

fn retained(broker: &Mosquitto) -> Option<serde_json::Value> {
    retained_on(broker, TOPIC)
}

fn retained_on(broker: &Mosquitto, topic: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&broker.retained(topic)?).ok()
}

fn site(broker: &Mosquitto, smtp: &SmtpServer) -> Site {
    Site::new(&format!(
        r#"[site]
name = "record lab"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "record-test"
[heartbeat]
mqtt_topic = "{TOPIC}"
interval = "500ms"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "lab/dewar-1/temp"
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
[[route]]
escalation = "oncall"
severity = "critical"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        url = broker.url(),
        port = smtp.port
    ))
}

/// Publishes until a reading is stored: the daemon is subscribed from then on.
fn wait_subscribed(site: &Site, broker: &Mosquitto) {
    wait_for(Duration::from_secs(20), "the daemon subscribed", || {
        broker.publish("lab/dewar-1/temp", "-190.5", 1);
        std::thread::sleep(Duration::from_millis(300));
        (!site.history("dewar-1.temp").is_empty()).then_some(())
    });
}

/// The open alarms as JSON rows.
fn open_alarms(site: &Site) -> Vec<serde_json::Value> {
    let out = cryowatch_output(&["alarms", "-c", &site.config_str(), "--active", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn integrity_alarm(site: &Site) -> Option<serde_json::Value> {
    open_alarms(site)
        .into_iter()
        .find(|a| a["rule"] == "cryowatch.record:integrity")
}

#[test]
fn a_reading_edited_a_second_after_its_commit_raises_the_integrity_alarm_and_pages() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(dir.path());
    let site = site(&broker, &smtp);
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker);
    for v in ["-190.4", "-120.0", "-190.3"] {
        broker.publish("lab/dewar-1/temp", v, 1);
    }
    wait_for(Duration::from_secs(15), "the readings stored", || {
        (site.history("dewar-1.temp").iter().any(|r| r.value == Some(-190.3))).then_some(())
    });
    // The heads as verified go out with the heartbeat.
    let beat = wait_for(Duration::from_secs(20), "the record's heads in the heartbeat", || {
        retained(&broker).filter(|b| b["record"]["audit_seq"].as_i64().is_some_and(|s| s > 0))
    });
    assert_eq!(beat["record"]["audit_hash"].as_str().map(str::len), Some(64), "{beat}");
    // And on a topic of their own, which the Last Will does not overwrite, tagged with
    // the installation they belong to.
    let heads = wait_for(Duration::from_secs(10), "the heads on <topic>/record", || {
        retained_on(&broker, &format!("{TOPIC}/record")).filter(|h| h["audit_seq"].as_i64().is_some())
    });
    assert!(heads["store"].as_str().is_some_and(|t| !t.is_empty()), "{heads}");
    assert!(integrity_alarm(&site).is_none(), "no alarm on an untouched record");

    let c = Connection::open(site.path().join("cryowatch.db")).expect("open the store");
    c.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    let edited = c
        .execute("UPDATE reading SET value = -190.0 WHERE value = -120.0", [])
        .expect("edit a reading");
    assert_eq!(edited, 1);
    drop(c);

    let alarm = wait_for(Duration::from_secs(30), "the record-integrity alarm", || {
        integrity_alarm(&site)
    });
    assert_eq!(alarm["severity"], "critical", "{alarm}");
    assert_eq!(alarm["sensor"], "cryowatch.record", "{alarm}");
    let mails = smtp.wait_messages(1, Duration::from_secs(30));
    let page = mails
        .iter()
        .find(|m| m.body.contains("cryowatch.record"))
        .unwrap_or_else(|| {
            panic!(
                "no page for the integrity alarm: {:?}",
                mails.iter().map(|m| m.header("Subject")).collect::<Vec<_>>()
            )
        });
    assert!(
        page.header("Subject").unwrap_or_default().contains("CRITICAL") || page.body.contains("critical"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("FAILS its check"),
        "says what is wrong: {}",
        page.body
    );
    assert!(site.daemon_log().contains("the record fails its check"), "logged");
    let verify = cryowatch_output(&["audit", "verify", "-c", &site.config_str()]);
    assert_eq!(verify.status.code(), Some(1), "audit verify fails too");
    // The heartbeat stops vouching for the record.
    wait_for(Duration::from_secs(10), "the heartbeat naming the problem", || {
        retained(&broker).filter(|b| b["record"]["problem"].is_string())
    });
    site.stop_daemon(daemon);
}

#[test]
fn a_trail_cut_short_while_the_daemon_was_stopped_is_caught_from_the_heads_it_published() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(dir.path());
    let site = site(&broker, &smtp);
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker);
    // Heads published after the newest seal: cutting the trail there leaves a chain that
    // is consistent in itself (the readings since chain from that seal).
    let store = site.path().join("cryowatch.db");
    let sealed_at = || -> i64 {
        Connection::open(&store)
            .and_then(|c| {
                c.query_row(
                    "SELECT coalesce(max(seq), 0) FROM audit WHERE kind = 'readings.sealed'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    let newest = || -> i64 {
        Connection::open(&store)
            .and_then(|c| c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    // A record after the seal (generating a report is recorded), so that cutting the
    // trail at the published head leaves the seal in place.
    let report = || {
        let out = site.report("dewar-1", ("-1h", "now"), &dir.path().join("r.html"), &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    wait_for(Duration::from_secs(20), "the first seal", || {
        (sealed_at() > 0).then_some(())
    });
    report();
    // The heads an outsider keeps are those retained on the record topic: they go out
    // once the daemon has read back what it published before (a few seconds after it
    // connects), so wait for heads past the newest seal there. A block boundary may
    // pass meanwhile and seal again: then another record is made after that seal.
    let record_topic = format!("{TOPIC}/record");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let heads = retained_on(&broker, &record_topic);
        let sealed = sealed_at();
        if heads
            .as_ref()
            .and_then(|h| h["audit_seq"].as_i64())
            .is_some_and(|s| sealed > 0 && s > sealed)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heads published after the newest seal ({sealed}) in 60 s; heads {heads:?}; heartbeat {:?}; log:\n{}",
            retained(&broker),
            site.daemon_log()
        );
        if newest() == sealed {
            report();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    site.stop_daemon(daemon);
    // The broker may take a moment to store the last message on a loaded machine.
    wait_for(Duration::from_secs(10), "the retained state \"stopped\"", || {
        retained(&broker).filter(|s| s["state"] == "stopped")
    });
    let heads = retained_on(&broker, &record_topic).expect("heads retained after the stop");
    let seq = heads["audit_seq"].as_i64().unwrap_or(0);
    assert!(seq > 0, "{heads}");

    // Cut the trail short from the published record on: the chain that is left is
    // consistent in itself, so only the published heads can tell.
    let c = Connection::open(site.path().join("cryowatch.db")).expect("open the store");
    let removed = c
        .execute("DELETE FROM audit WHERE seq >= ?1", [seq])
        .expect("cut the trail");
    assert!(removed >= 1);
    drop(c);

    let daemon = site.start_daemon();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let alarm = loop {
        if let Some(a) = integrity_alarm(&site) {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record-integrity alarm in 40 s; retained heads {:?}; log:\n{}",
            retained_on(&broker, &format!("{TOPIC}/record")),
            site.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(alarm["severity"], "critical", "{alarm}");
    let log = site.daemon_log();
    assert!(log.contains("the record fails its check"), "{log}");
    assert!(
        // Records appended since the restart take the removed numbers with other
        // hashes: "does not carry the hash published for it"; else "is missing".
        log.contains(&format!("problem=record {seq} ")) && log.contains("published"),
        "caught from the published heads: {log}"
    );
    site.stop_daemon(daemon);
}
