//! `cryowatch test-alarm` of a discrete input against the real daemon: a dewar's lid
//! switch (the same path as an LN2 controller's alarm relay on a digital input) with a
//! `state` rule. The test injects the rule's alarm state, pages it by the state's name,
//! is completed by an acknowledgement and is listed in the report — and the lid's record
//! holds only real readings.

mod common;

use std::time::Duration;

use common::cryosim::CryoSim;
use common::smtp::SmtpServer;
use common::{Site, cryowatch_output, output_text, wait_for};
use rusqlite::{Connection, OpenFlags};

const PATIENCE: Duration = Duration::from_secs(20);

/// A dewar whose lid switch (discrete input 0 of the simulated controller, closed)
/// raises `lid-open` when it reads 1, paging alice by email at once.
fn config(sim: &CryoSim, smtp_port: u16) -> String {
    format!(
        r#"[site]
name = "state test lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.lid"
asset = "dewar-1"
states = ["closed", "OPEN"]
stale_after = "30s"
[sensor.modbus]
device = "ctrl"
register = "discrete"
address = 0
type = "bool"
[[rule]]
id = "lid-open"
sensor = "dewar-1.lid"
kind = "state"
equals = 1
severity = "alarm"
escalation = "oncall"
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
        modbus = sim.modbus,
    )
}

fn db(site: &Site) -> Option<Connection> {
    Connection::open_with_flags(site.path().join("cryowatch.db"), OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

fn cli(site: &Site, args: &[&str]) -> std::process::Output {
    let config = site.config_str();
    let mut all = vec![args[0], "-c", &config];
    all.extend_from_slice(&args[1..]);
    cryowatch_output(&all)
}

#[test]
fn an_alarm_test_of_a_state_rule_pages_the_state_by_name_and_is_completed_by_an_ack() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    let smtp = SmtpServer::start(dir.path());
    let site = Site::new(&config(&sim, smtp.port));
    let checked = cli(&site, &["check"]);
    assert!(checked.status.success(), "{}", output_text(&checked));
    let daemon = site.start_daemon();
    wait_for(PATIENCE, "lid readings", || {
        (site.history("dewar-1.lid").len() > 2).then_some(())
    });

    let out = cli(&site, &["test-alarm", "--sensor", "dewar-1.lid", "--by", "qa-bob"]);
    let said = output_text(&out);
    assert!(out.status.success(), "{said}\n{}", site.daemon_log());
    assert!(said.contains("alarm test") && said.contains("lid-open"), "{said}");

    let mails = smtp.wait_messages(1, PATIENCE);
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(subject.starts_with("TEST ["), "{subject}");
    let body = &mails[0].body;
    assert!(body.contains("ALARM TEST started by qa-bob"), "{body}");
    assert!(body.contains("OPEN"), "the page names the state: {body}");
    assert!(!body.contains("1.0"), "the page names the state, not a number: {body}");

    let id: i64 = wait_for(PATIENCE, "the test alarm", || {
        db(&site)?
            .query_row(
                "SELECT id FROM alarm WHERE rule = 'lid-open' AND state != 'cleared'",
                [],
                |r| r.get(0),
            )
            .ok()
    });
    let acked = cli(
        &site,
        &["ack", &id.to_string(), "--by", "alice", "--comment", "relay path ok"],
    );
    assert!(acked.status.success(), "{}", output_text(&acked));
    wait_for(PATIENCE, "the test alarm cleared by the acknowledgement", || {
        db(&site)?
            .query_row("SELECT 1 FROM alarm WHERE id = ?1 AND state = 'cleared'", [id], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
    });
    site.stop_daemon(daemon);

    // The lid's record holds only the real, closed readings.
    let rows = site.history("dewar-1.lid");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.value == Some(0.0)), "{rows:?}");
    // The report lists the test, passed, with who acknowledged it, and names the state.
    let csv = site.path().join("report.csv");
    let out = site.report("dewar-1", ("-1h", "now"), &csv, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let test = text.lines().find(|l| l.starts_with("test,")).unwrap_or_default();
    assert!(
        test.contains("passed by qa-bob") && test.contains("acknowledged by Alice (alice)"),
        "{text}"
    );
    assert!(test.contains("in state OPEN") && !test.contains("at value"), "{text}");
    let excursion = text
        .lines()
        .find(|l| l.starts_with("excursion,") && l.contains("(test)"))
        .unwrap_or_default();
    assert!(excursion.contains("state OPEN"), "{text}");
    let alarms = output_text(&cli(&site, &["alarms", "--json"]));
    assert!(alarms.contains(r#""value_name": "OPEN""#), "{alarms}");
}
