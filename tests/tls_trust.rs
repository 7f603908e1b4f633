//! Every TLS client trusts the system store plus a peer's `ca_file`, against real peers
//! whose certificates a CA of the test's own signed: exim (STARTTLS and implicit TLS,
//! AUTH), Mosquitto with a TLS listener (readings and the heartbeat over `mqtts://`)
//! and the Twilio-compatible gateway over HTTPS. An untrusted server is a named
//! certificate problem that is retried, shown by `test-page`, and fails `selftest`.

mod common;

use std::path::Path;
use std::time::Duration;

use cryowatch::config::Secret;
use cryowatch::config::notify::{Channel, ChannelKind, Contact, SmtpTls};
use cryowatch::notify::channel::{Delivery, Outgoing};
use cryowatch::notify::smtp::SmtpChannel;
use cryowatch::notify::twilio::TwilioChannel;

use common::exim::{self, Exim};
use common::mosquitto::Mosquitto;
use common::tls::TestCa;
use common::twilio::FakeTwilio;
use common::{Site, cryowatch, wait_for};

const UNKNOWN_ISSUER: &str = "server certificate for localhost is signed by an unknown CA (UnknownIssuer): \
                              set ca_file or add the CA to the system trust store";

fn page(id: i64) -> Outgoing {
    Outgoing {
        id,
        contact: Contact {
            id: "alice".into(),
            name: "Alice Nurse".into(),
            email: Some("alice@hospital.test".into()),
            phone: Some("+15551230001".into()),
        },
        subject: "ALARM dewar-3 at -141.5 °C".into(),
        text: "Dewar 3 is warming.\n".into(),
        sms: "ALARM dewar-3 -141.5C".into(),
        alarm: Some(17),
    }
}

fn smtp(port: u16, tls: SmtpTls, ca_file: Option<&Path>) -> SmtpChannel {
    SmtpChannel::new(&Channel {
        id: "email".into(),
        kind: ChannelKind::Smtp {
            host: "localhost".into(),
            port,
            tls,
            username: Some(exim::USER.into()),
            password: Some(Secret(exim::PASSWORD.into())),
            from: "Cryowatch <cryowatch@hospital.test>".into(),
        },
        fallback: None,
        ca_file: ca_file.map(Path::to_path_buf),
    })
    .expect("smtp channel")
    .with_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn pages_reach_exim_over_starttls_and_implicit_tls_trusting_the_ca_file() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let relay = Exim::start(dir.path(), &ca);
    for (n, (port, tls)) in [(relay.starttls_port, SmtpTls::StartTls), (relay.tls_port, SmtpTls::Tls)]
        .into_iter()
        .enumerate()
    {
        let d = smtp(port, tls, Some(&ca.ca)).send(&page(40 + n as i64)).await;
        assert!(d.is_sent(), "{tls:?}: {d:?}\n{}", relay.log());
        let mail = relay.wait_messages(n + 1, Duration::from_secs(10));
        let m = &mail[n];
        assert_eq!(m.header("Subject"), Some("ALARM dewar-3 at -141.5 °C"));
        assert_eq!(
            m.header("Message-ID"),
            Some(format!("<cryowatch-{}@hospital.test>", 40 + n).as_str())
        );
        assert_eq!(m.header("X-Cryowatch-Alarm"), Some("17"));
        assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
        assert_eq!(m.header("To"), Some("Alice Nurse <alice@hospital.test>"));
        assert_eq!(m.header("From"), Some("Cryowatch <cryowatch@hospital.test>"));
        assert_eq!(m.body.trim_end(), "Dewar 3 is warming.");
    }
    // exim says how each arrived: over TLS, authenticated.
    let log = relay.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(" <= ") && l.contains("X=TLS") && l.contains("A=plain:pager"))
            .count(),
        2,
        "{log}"
    );
}

#[tokio::test]
async fn without_the_ca_the_relay_is_a_named_certificate_problem_that_is_retried() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let relay = Exim::start(dir.path(), &ca);
    for (port, tls, stage) in [
        (relay.starttls_port, SmtpTls::StartTls, "STARTTLS with"),
        (relay.tls_port, SmtpTls::Tls, "connecting to"),
    ] {
        match smtp(port, tls, None).send(&page(1)).await {
            Delivery::Failed { retry, reason, .. } => {
                assert!(retry, "a certificate problem is retried: {reason}");
                assert_eq!(reason, format!("{stage} localhost:{port}: {UNKNOWN_ISSUER}"));
            }
            other => panic!("{tls:?}: expected a failure, got {other:?}"),
        }
    }
    assert!(relay.messages().is_empty());
}

/// A site whose `email` channel goes to exim over STARTTLS; `ca_file` line optional.
fn mail_site(relay: &Exim, ca_line: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "tls lab"
[store]
path = "{{dir}}/cryowatch.db"
[[asset]]
id = "d"
kind = "ln2_dewar"
[[contact]]
id = "alice"
name = "Alice Nurse"
email = "alice@hospital.test"
[[channel]]
id = "email"
kind = "smtp"
host = "localhost"
port = {port}
tls = "starttls"
username = "{user}"
password = "{password}"
from = "cryowatch@hospital.test"
{ca_line}
"#,
        port = relay.starttls_port,
        user = exim::USER,
        password = exim::PASSWORD,
    ))
}

fn test_page(site: &Site, ssl_cert_file: Option<&Path>) -> (bool, String) {
    let mut cmd = cryowatch();
    cmd.args(["test-page", "-c", &site.config_str(), "--contact", "alice"])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    if let Some(f) = ssl_cert_file {
        cmd.env("SSL_CERT_FILE", f);
    }
    let out = cmd.output().expect("run cryowatch test-page");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn test_page_names_the_certificate_problem_and_the_system_store_or_ca_file_fix_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let relay = Exim::start(dir.path(), &ca);

    let untrusted = mail_site(&relay, "");
    let (ok, said) = test_page(&untrusted, None);
    assert!(!ok, "{said}");
    assert!(said.contains(": pending ") && said.contains(UNKNOWN_ISSUER), "{said}");
    assert!(relay.messages().is_empty());

    // The CA in the system store (SSL_CERT_FILE stands for /etc/ssl/certs): no ca_file.
    let (ok, said) = test_page(&untrusted, Some(&ca.ca));
    assert!(ok, "{said}\n{}", relay.log());
    relay.wait_messages(1, Duration::from_secs(10));

    let trusted = mail_site(&relay, &format!("ca_file = \"{}\"", ca.ca.display()));
    let (ok, said) = test_page(&trusted, None);
    assert!(ok && said.contains(": sent "), "{said}\n{}", relay.log());
    relay.wait_messages(2, Duration::from_secs(10));
}

fn selftest(site: &Site) -> String {
    let out = cryowatch()
        .args(["selftest", "-c", &site.config_str(), "--out"])
        .arg(site.path().join("oq.html"))
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("run cryowatch selftest");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The report line of the check whose text contains `what`.
fn check_line(said: &str, what: &str) -> String {
    said.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what} check: {said}"))
        .to_string()
}

#[test]
fn selftest_fails_an_untrusted_relay_and_broker_and_passes_them_with_ca_file() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let relay = Exim::start(dir.path(), &ca);
    let broker = Mosquitto::start_tls(&ca);
    let mqtt = |ca_line: &str| {
        format!(
            "[mqtt]\nurl = \"{}\"\nclient_id = \"oq\"\n{ca_line}\n",
            broker.tls_url()
        )
    };

    let untrusted = mail_site(&relay, "");
    std::fs::write(
        untrusted.config(),
        std::fs::read_to_string(untrusted.config()).expect("config") + &mqtt(""),
    )
    .expect("config");
    let said = selftest(&untrusted);
    let line = |what: &str| check_line(&said, what);
    let mail = line("mail server");
    assert!(mail.contains("FAIL") && mail.contains(UNKNOWN_ISSUER), "{mail}");
    let mqtt_line = line("MQTT broker");
    assert!(
        mqtt_line.contains("FAIL") && mqtt_line.contains("UnknownIssuer"),
        "{mqtt_line}"
    );

    let ca_line = format!("ca_file = \"{}\"", ca.ca.display());
    let trusted = mail_site(&relay, &ca_line);
    std::fs::write(
        trusted.config(),
        std::fs::read_to_string(trusted.config()).expect("config") + &mqtt(&ca_line),
    )
    .expect("config");
    let said = selftest(&trusted);
    let line = |what: &str| check_line(&said, what);
    let mail = line("mail server");
    assert!(mail.contains("PASS") && mail.contains("TLS handshake ok"), "{mail}");
    let mqtt_line = line("MQTT broker");
    assert!(
        mqtt_line.contains("PASS") && mqtt_line.contains("TLS handshake ok"),
        "{mqtt_line}"
    );
}

fn mqtt_site(broker: &Mosquitto, ca_line: &str) -> Site {
    Site::new(&format!(
        r#"[site]
name = "tls lab"
[store]
path = "{{dir}}/cryowatch.db"
[mqtt]
url = "{url}"
client_id = "tls-test"
keep_alive = "2s"
{ca_line}
[heartbeat]
mqtt_topic = "lab/cryowatch/status"
interval = "500ms"
[[asset]]
id = "box"
kind = "other"
[[sensor]]
id = "probe"
asset = "box"
[sensor.mqtt]
topic = "probe/tls"
"#,
        url = broker.tls_url()
    ))
}

#[test]
fn readings_and_the_heartbeat_go_over_mqtts_trusting_the_ca_file() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let broker = Mosquitto::start_tls(&ca);
    let site = mqtt_site(&broker, &format!("ca_file = \"{}\"", ca.ca.display()));
    let daemon = site.start_daemon();
    let online = wait_for(Duration::from_secs(15), "the heartbeat over mqtts", || {
        broker
            .retained("lab/cryowatch/status")
            .filter(|m| m.contains("\"online\""))
    });
    assert!(online.contains("tls lab"), "{online}");
    wait_for(Duration::from_secs(15), "a reading over mqtts", || {
        broker.publish("probe/tls", "-190.5", 1);
        site.history("probe")
            .iter()
            .any(|r| r.value == Some(-190.5))
            .then_some(())
    });
    site.stop_daemon(daemon);
}

#[test]
fn an_untrusted_broker_is_logged_once_at_warn_with_the_certificate_problem() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let broker = Mosquitto::start_tls(&ca);
    let site = mqtt_site(&broker, "");
    let mut daemon = site.start_daemon();
    let named = "server certificate for localhost is signed by an unknown CA (UnknownIssuer)";
    wait_for(Duration::from_secs(15), "the certificate problem in the log", || {
        site.daemon_log().contains(named).then_some(())
    });
    // Several retries later (backoff from 0.5 s), still one line per connection.
    std::thread::sleep(Duration::from_secs(4));
    daemon.signal("TERM");
    let _ = daemon.wait_exit(Duration::from_secs(20));
    let log = site.daemon_log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains(named)).collect();
    assert!(warned.iter().all(|l| l.contains("WARN")), "{log}");
    assert!(
        warned.iter().filter(|l| l.contains("mqtt source")).count() == 1
            && warned.iter().filter(|l| l.contains("heartbeat")).count() == 1,
        "{log}"
    );
}

fn twilio(gw: &FakeTwilio, ca_file: Option<&Path>) -> TwilioChannel {
    TwilioChannel::new(&Channel {
        id: "sms".into(),
        kind: ChannelKind::Twilio {
            base_url: gw.base_url.clone(),
            account_sid: gw.account_sid.clone(),
            auth_token: Secret(gw.auth_token.clone()),
            from: "+15550000000".into(),
        },
        fallback: None,
        ca_file: ca_file.map(Path::to_path_buf),
    })
    .expect("twilio channel")
    .with_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn the_https_gateway_is_reached_trusting_the_ca_file_and_named_without_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let gw = FakeTwilio::start_tls(dir.path(), &ca);
    assert!(gw.base_url.starts_with("https://"));
    match twilio(&gw, None).send(&page(1)).await {
        Delivery::Failed { retry, reason, .. } => {
            assert!(retry, "{reason}");
            assert!(reason.contains(UNKNOWN_ISSUER), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(gw.requests().is_empty());
    let d = twilio(&gw, Some(&ca.ca)).send(&page(2)).await;
    assert!(d.is_sent(), "{d:?}");
    assert_eq!(gw.accepted().len(), 1);
}

/// On a system without CA certificates (a minimal Debian without ca-certificates,
/// stood in for by SSL_CERT_FILE / SSL_CERT_DIR naming an empty directory), `check`
/// refuses a TLS peer that only the bundled web PKI roots would be left to vouch for
/// and they cannot (a private name), naming its key; its ca_file makes it valid.
#[test]
fn check_refuses_a_private_tls_peer_when_the_system_store_is_empty() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::make(dir.path());
    let empty = dir.path().join("no-certs");
    std::fs::create_dir_all(&empty).expect("empty dir");
    let site = |ca_line: &str| {
        Site::new(&format!(
            r#"[site]
name = "bare system"
[store]
path = "{{dir}}/cw.db"
[[channel]]
id = "sms"
kind = "twilio"
base_url = "https://localhost:8443"
account_sid = "AC01"
auth_token = "t"
from = "+15550000000"
{ca_line}
"#
        ))
    };
    let check = |site: &Site| {
        cryowatch()
            .args(["check", "-c"])
            .arg(site.config())
            .env("SSL_CERT_FILE", empty.join("none.pem"))
            .env("SSL_CERT_DIR", &empty)
            .output()
            .expect("run check")
    };
    let bare = site("");
    let out = check(&bare);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{}: channel[0].ca_file: channel \"sms\" (twilio) (localhost) cannot be trusted: \
             no CA certificates could be loaded from the system trust store",
            bare.config_str()
        )),
        "{stderr}"
    );
    let trusted = site(&format!("ca_file = \"{}\"", ca.ca.display()));
    let out = check(&trusted);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
