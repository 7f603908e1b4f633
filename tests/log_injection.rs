//! Outside strings cannot forge log lines or listing lines: a sign-in user name with a
//! newline and ANSI codes reaches the journal and `cryowatch audit log` escaped, so no
//! line of either starts with the text it carried; and a shelving's `--by` and reason are
//! escaped in `cryowatch audit log`.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Site, cryowatch_output, wait_for};

const FORGED: &str = "ERROR cryowatch::store: the store cannot write";

fn config(api: &str) -> String {
    format!(
        r#"[site]
name = "log injection"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "log-injection"
[api]
listen = "{api}"
[[asset]]
id = "box"
kind = "other"
[[sensor]]
id = "box.t"
asset = "box"
[sensor.mqtt]
topic = "t"
"#
    )
}

/// POSTs a sign-in form from another site (refused before any password check, and
/// logged with the user name it carried); returns the status line.
fn post_login(api: &str, user: &str) -> String {
    let enc: String = user
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = format!("user={enc}&password=x&login_token=y&next=%2F");
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {api}\r\nOrigin: http://elsewhere.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = std::net::TcpStream::connect(api).expect("connect to the API");
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// No line of `text` starts with the forged text (after leading spaces).
fn no_forged_line(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with(FORGED) && !line.contains('\u{1b}'),
            "{what} has a forged line {line:?}:\n{text}"
        );
    }
}

#[test]
fn a_user_name_with_a_newline_and_ansi_codes_reaches_the_log_escaped() {
    let api = format!("127.0.0.1:{}", common::free_port());
    let site = Site::new(&config(&api));
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(15), "the API", || {
        std::net::TcpStream::connect(&api).ok().map(|_| ())
    });
    let user = format!("eve\n{FORGED}\u{1b}[2J");
    let status = post_login(&api, &user);
    assert!(status.contains("403"), "{status}");
    let log = wait_for(Duration::from_secs(10), "the refusal in the log", || {
        let log = site.daemon_log();
        log.contains("another site").then_some(log)
    });
    site.stop_daemon(daemon);
    no_forged_line("the daemon's log", &log);
    assert!(log.contains(&format!("eve\\n{FORGED}\\u{{1b}}[2J")), "{log}");
}

#[test]
fn a_shelving_with_control_characters_is_escaped_in_the_audit_listing() {
    let api = format!("127.0.0.1:{}", common::free_port());
    let site = Site::new(&config(&api));
    // No daemon: the command line applies requests itself. A stale alarm to acknowledge
    // needs a daemon, so shelve instead: its `--by` and reason reach the audit trail.
    let by = format!("mallory\n{FORGED}");
    let out = cryowatch_output(&[
        "shelve",
        "-c",
        &site.config_str(),
        "--sensor",
        "box.t",
        "--for",
        "1h",
        "--by",
        &by,
        "--reason",
        &format!("probe swap\r\n{FORGED}\u{1b}[31m"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cryowatch_output(&["audit", "log", "-c", &site.config_str()]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    no_forged_line("audit log", &listing);
    assert!(listing.contains(&format!("mallory\\n{FORGED}")), "{listing}");
}
