//! The quality lab: one dewar on MQTT with a high alarm and two reason codes, driven
//! the way an operator drives it: readings through Mosquitto, `cryowatch` commands with
//! the signer's password on standard input. Shared by the quality record's tests.

use std::process::Output;
use std::time::Duration;

use super::mosquitto::Mosquitto;
use super::{Site, wait_for};

/// The password of the lab's signer, `tech-c`.
pub const PASSWORD: &str = "correct horse battery staple";

/// The lab, with its broker at `url`.
pub fn lab(url: &str) -> Site {
    lab_with(url, "")
}

/// The lab, with `extra` TOML appended.
pub fn lab_with(url: &str, extra: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "quality lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "quality-test"
[[asset]]
id = "dewar-1"
kind = "other"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "lab/dewar-1/temp"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "alarm"
[[reason]]
code = "lid-open"
text = "Lid left open after retrieval"
[[reason]]
code = "supply"
text = "LN2 supply interrupted"
requires_comment = true
{extra}"#
    ))
}

/// `cryowatch ARGS` with `stdin` as its standard input.
pub fn run(site: &Site, args: &[&str], stdin: &str) -> Output {
    site.with_stdin(args, stdin)
}

/// Standard output and standard error of a finished command.
pub fn text(out: &Output) -> String {
    super::output_text(out)
}

/// `alarms FLAG --json`; `None` while the daemon is still creating the store.
pub fn try_alarms(site: &Site, flag: &str) -> Option<Vec<serde_json::Value>> {
    let out = run(site, &["alarms", flag, "--json"], "");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("alarms --json ({e}): {}", text(&out))))
}

/// `alarms FLAG --json`.
pub fn alarms(site: &Site, flag: &str) -> Vec<serde_json::Value> {
    try_alarms(site, flag).unwrap_or_else(|| panic!("cryowatch alarms {flag} failed"))
}

/// Warms the dewar until an alarm opens (published until the daemon, which may not have
/// subscribed yet, has it); its id.
pub fn warm(site: &Site, broker: &Mosquitto) -> i64 {
    wait_for(Duration::from_secs(20), "an alarm to open", || {
        broker.publish("lab/dewar-1/temp", "-120.0", 1);
        try_alarms(site, "--active")?.first().and_then(|a| a["id"].as_i64())
    })
}

/// Cools the dewar until no alarm is open.
pub fn cool(site: &Site, broker: &Mosquitto) {
    wait_for(Duration::from_secs(20), "the alarm to clear", || {
        broker.publish("lab/dewar-1/temp", "-195.0", 1);
        alarms(site, "--active").is_empty().then_some(())
    });
}

/// `user add tech-c --role operator --name "Cryo Technician C"`, password on stdin.
pub fn add_signer(site: &Site) {
    site.add_signer("tech-c", "Cryo Technician C", PASSWORD);
}

/// `audit verify`.
pub fn verify(site: &Site) -> Output {
    run(site, &["audit", "verify"], "")
}

/// The TOML of an API on `127.0.0.1:port` with token `token` of role operator.
pub fn api_section(port: u16, token: &str) -> String {
    format!(
        r#"[api]
listen = "127.0.0.1:{port}"
[[api.token]]
id = "ops"
role = "operator"
token = "{token}"
"#
    )
}

/// `POST path` with a JSON `body` and `headers`.
pub fn post_json(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> super::http::Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    super::http::call(addr, "POST", path, &all, Some(body.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Signs `tech-c` in to the dashboard: the session cookie and its CSRF token.
pub fn session(addr: std::net::SocketAddr) -> (String, String) {
    let cookie = super::http::sign_in(addr, "tech-c", PASSWORD);
    let page = super::http::call(addr, "GET", "/", &[("Cookie", &cookie)], None).expect("dashboard");
    let csrf = super::http::field(&page.body, "csrf");
    (cookie, csrf)
}

/// `tamper(sql, undo, needle)` on the stopped lab's store: runs `sql`, expects `audit
/// verify` to fail saying `needle`, then runs `undo`.
pub fn tamperer(site: &Site) -> impl Fn(&str, &str, &str) + '_ {
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store");
    move |sql: &str, undo: &str, needle: &str| {
        db.execute_batch(sql).expect("tamper");
        let caught = verify(site);
        assert_eq!(caught.status.code(), Some(1), "{sql} went unseen: {}", text(&caught));
        assert!(text(&caught).contains(needle), "{sql}: {}", text(&caught));
        db.execute_batch(undo).expect("undo");
    }
}

/// `cryowatch alarm-check finish --sensor SENSOR --reference REFERENCE --by BY`, signed
/// with `password` on standard input.
#[allow(dead_code)]
pub fn finish_alarm_check(site: &Site, sensor: &str, reference: &str, by: &str, password: &str) -> Output {
    site.with_stdin(
        &[
            "alarm-check",
            "finish",
            "--sensor",
            sensor,
            "--reference",
            reference,
            "--by",
            by,
        ],
        &format!("{password}\n"),
    )
}
