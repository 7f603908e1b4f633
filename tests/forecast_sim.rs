//! The forecast rule on the simulated dewar (cryosim over Modbus TCP, polled every
//! 250 ms) with the real daemon, store and an SMTP server: cryosim warms the dewar at
//! 1 °C a second; the forecast warning is raised and paged well before the high alarm,
//! its page saying where the trend leads, and the high alarm follows at the threshold.
//! (Hours of warming are covered under the test's clock in tests/trend_rules.rs.)

mod common;

use std::time::{Duration, Instant};

use common::cryosim::CryoSim;
use common::smtp::SmtpServer;
use common::{Site, wait_for};

fn lab(sim: &CryoSim, smtp: &SmtpServer) -> Site {
    Site::new(&format!(
        r#"[site]
name = "forecast lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
{dewar}
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
escalation = "oncall"
[[rule]]
id = "heading-warm"
sensor = "dewar-1.temp"
kind = "forecast"
threshold = -150.0
window = "10s"
horizon = "30s"
severity = "warning"
escalation = "oncall"
[[contact]]
id = "nurse"
name = "Nina Nurse"
email = "nurse@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:nurse"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        dewar = sim.dewar_toml(),
        port = smtp.port
    ))
}

/// The open alarms' rules.
fn open_rules(site: &Site) -> Vec<String> {
    let out = site.with_stdin(&["alarms", "--active", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rows.iter()
        .filter_map(|a| a["rule"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_warming_dewar_is_forecast_and_paged_before_its_high_alarm() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(dir.path());
    let sim = CryoSim::start(dir.path());
    let site = lab(&sim, &smtp);
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(30), "steady readings", || {
        (site.history("dewar-1.temp").len() > 40).then_some(())
    });
    assert!(open_rules(&site).is_empty(), "steady: nothing forecast");

    // 1 °C a second from about -190: -150 in some 40 s.
    sim.set("dewar-1", "warmup:60");
    let start = Instant::now();
    wait_for(Duration::from_secs(40), "the forecast warning", || {
        open_rules(&site).contains(&"heading-warm".to_string()).then_some(())
    });
    let warned = start.elapsed();
    assert!(
        !open_rules(&site).contains(&"warm".to_string()),
        "the forecast came no earlier than the alarm"
    );
    wait_for(Duration::from_secs(60), "the high alarm", || {
        open_rules(&site).contains(&"warm".to_string()).then_some(())
    });
    let alarmed = start.elapsed();
    assert!(
        alarmed >= warned + Duration::from_secs(10),
        "forecast at {warned:?}, alarm at {alarmed:?}"
    );

    // The forecast's page says where the trend leads; so does the alarm's.
    let mails = wait_for(Duration::from_secs(30), "both pages", || {
        let m = smtp.messages();
        (m.len() >= 2).then_some(m)
    });
    let forecast = mails
        .iter()
        .find(|m| m.body.contains("heading-warm"))
        .expect("the forecast's page");
    assert!(
        forecast.body.contains("at this rate -150 degC in "),
        "{}",
        forecast.body
    );
    sim.set("dewar-1", "steady");
    site.stop_daemon(daemon);
}
