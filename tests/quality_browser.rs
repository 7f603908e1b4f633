//! The quality record made on the dashboard, in headless Chromium
//! (`tests/browser/quality.mjs`), against the real daemon, Mosquitto and the store: an
//! operator acknowledges an excursion with a signature (re-authenticated with user name
//! and password at the session's first signature, 21 CFR 11.200(a)(1)), closes it once
//! cleared with a reason and the password alone, and approves the month's review. The daemon runs under libfaketime, its clock starting shortly before the end
//! of November in the site's time zone, so the review is generated during the test.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::{Proc, Site, cryowatch, free_port, output_text};

const PASSWORD: &str = "quality browser 2026";

fn lab(broker: &str, port: u16) -> Site {
    Site::new(&format!(
        r#"[site]
name = "browser lab"
timezone = "Europe/Berlin"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{broker}"
client_id = "quality-browser"
[api]
listen = "127.0.0.1:{port}"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "lab/dewar-1/temp"
format = "json"
json_path = "v"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "alarm"
[[reason]]
code = "lid-open"
text = "Lid left open after retrieval"
[[contact]]
id = "qa"
name = "Quinn Assurance"
email = "qa@example.org"
[[review]]
assets = ["dewar-1"]
every = "monthly"
reviewers = ["contact:qa"]
"#
    ))
}

#[test]
fn in_chromium_an_excursion_is_acknowledged_closed_with_a_signature_and_its_month_approved() {
    let broker = Mosquitto::start();
    let port = free_port();
    let site = lab(&broker.url(), port);
    site.add_signer("qa", "Quinn Assurance", PASSWORD);
    let log = std::fs::File::create(site.path().join("daemon.log")).expect("daemon log");
    let log2 = log.try_clone().expect("clone log");
    // 23:59:20 in Berlin on the last day of November: forty seconds to the month's end.
    let daemon = Proc::spawn(
        "cryowatch run (faketime)",
        cryowatch()
            .args(["run", "-c", &site.config_str()])
            .env("LD_PRELOAD", common::libfaketime())
            .env("FAKETIME", "@2026-11-30 22:59:20")
            .env("TZ", "UTC")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2),
    );
    let shots = common::browser::artifacts("quality");
    let dir = tempfile::tempdir().expect("dir");
    let result = std::panic::catch_unwind(|| {
        common::browser::run(
            "quality.mjs",
            &[
                ("BASE_URL", format!("http://127.0.0.1:{port}")),
                ("CW_USER", "qa".into()),
                ("CW_PASSWORD", PASSWORD.into()),
                ("MQTT_PORT", broker.port.to_string()),
            ],
            &shots,
            dir.path(),
            Duration::from_secs(240),
        )
    });
    let result = result.unwrap_or_else(|e| {
        eprintln!("daemon log:\n{}", site.daemon_log());
        std::panic::resume_unwind(e)
    });
    site.stop_daemon(daemon);
    let alarm = result["alarm"].as_i64().expect("alarm id");

    // What the browser did is in the record, signed.
    let acked = site.with_stdin(
        &[
            "audit",
            "log",
            "--from",
            "2026-11-01",
            "--kind",
            "alarm.acknowledged",
            "--json",
        ],
        "",
    );
    let acked = String::from_utf8_lossy(&acked.stdout).to_string();
    assert!(
        acked.contains(&format!("alarm {alarm}")) && acked.contains("lid found ajar, closed"),
        "{acked}"
    );
    let signed = site.with_stdin(
        &[
            "audit",
            "log",
            "--from",
            "2026-11-01",
            "--kind",
            "alarm.ack_signed",
            "--json",
        ],
        "",
    );
    let signed = String::from_utf8_lossy(&signed.stdout).to_string();
    assert!(
        signed.contains(&format!("alarm {alarm}")) && signed.contains("Quinn Assurance"),
        "the acknowledgement is not signed: {signed}"
    );
    let open = site.with_stdin(&["alarms", "--open-deviations", "--json"], "");
    assert_eq!(
        String::from_utf8_lossy(&open.stdout).trim(),
        "[]",
        "{}",
        output_text(&open)
    );
    let closed = site.with_stdin(
        &[
            "audit",
            "log",
            "--from",
            "2026-11-01",
            "--kind",
            "alarm.closed",
            "--json",
        ],
        "",
    );
    let closed = String::from_utf8_lossy(&closed.stdout).to_string();
    assert!(
        closed.contains("lid closed, seal inspected") && closed.contains("Quinn Assurance"),
        "{closed}"
    );
    let reviews = site.with_stdin(&["review", "list", "--json"], "");
    let reviews: Vec<serde_json::Value> = serde_json::from_slice(&reviews.stdout).expect("review list --json");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["period"], "2026-11");
    assert_eq!(reviews[0]["status"], "approved");
    assert_eq!(reviews[0]["id"], result["review"]);
    assert_eq!(reviews[0]["signatures"][0]["printed_name"], "Quinn Assurance");
    let verified = site.with_stdin(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", output_text(&verified));
    common::browser::assert_screenshots(
        &shots,
        &[
            "q01-alarm.png",
            "q02-first-signature-refused.png",
            "q03-acknowledged.png",
            "q04-open-deviation.png",
            "q05-closed.png",
            "q06-review.png",
            "q07-review-approved.png",
        ],
    );
}
