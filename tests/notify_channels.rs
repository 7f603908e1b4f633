//! The notification channels against real or faithful peers: email through aiosmtpd,
//! SMS through a local server speaking Twilio's Messages API, and a JSON webhook
//! against a small HTTP server in this file.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cryowatch::config::Secret;
use cryowatch::config::notify::{Channel, ChannelKind, Contact, SmtpTls};
use cryowatch::notify::channel::{Delivery, Outgoing};
use cryowatch::notify::smtp::SmtpChannel;
use cryowatch::notify::twilio::TwilioChannel;
use cryowatch::notify::webhook::WebhookChannel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::smtp::{SmtpOptions, SmtpServer};
use common::twilio::{FakeTwilio, TwilioMode};

const FROM: &str = "cryowatch@lab.example.org";

fn contact(email: Option<&str>, phone: Option<&str>) -> Contact {
    Contact {
        id: "alice".into(),
        name: "Alice Nurse".into(),
        email: email.map(str::to_string),
        phone: phone.map(str::to_string),
    }
}

fn page(id: i64, alarm: Option<i64>) -> Outgoing {
    Outgoing {
        id,
        contact: contact(Some("alice@hospital.example.org"), Some("+15551230001")),
        subject: "ALARM dewar-3 at -141.5 °C (limit -150 °C)".into(),
        text: "Dewar 3 (LN2, room B12) is at -141.5 °C and warming 0.8 °C/min.\n\
               Active since 03:12 UTC.\n\
               Acknowledge: cryowatch ack 17 --by NAME\n"
            .into(),
        sms: "ALARM dewar-3 -141.5C rising since 03:12. Reply ACK 17".into(),
        alarm,
    }
}

fn smtp_channel(port: u16, tls: SmtpTls, credentials: Option<(&str, &str)>) -> SmtpChannel {
    SmtpChannel::new(&Channel {
        id: "email".into(),
        kind: ChannelKind::Smtp {
            host: "127.0.0.1".into(),
            port,
            tls,
            username: credentials.map(|(u, _)| u.to_string()),
            password: credentials.map(|(_, p)| Secret(p.to_string())),
            from: format!("Cryowatch Lab B <{FROM}>"),
        },
        fallback: None,
        ca_file: None,
    })
    .expect("smtp channel")
    .with_timeout(Duration::from_secs(5))
}

fn expect_failed(d: &Delivery, want_retry: bool, contains: &[&str]) {
    match d {
        Delivery::Failed { retry, reason, .. } => {
            eprintln!("failed (retry {retry}): {reason}");
            assert_eq!(*retry, want_retry, "retry for {reason:?}");
            for c in contains {
                assert!(reason.contains(c), "reason {reason:?} should mention {c:?}");
            }
        }
        other => panic!("expected Failed{{retry: {want_retry}}}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// SMTP

#[tokio::test]
async fn smtp_mail_arrives_with_headers_and_body() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::None, None);

    let msg = page(4711, Some(17));
    let d = ch.send(&msg).await;
    match &d {
        Delivery::Sent { detail } => assert!(detail.starts_with("250 "), "{detail}"),
        other => panic!("not sent: {other:?}\n{}", server.log()),
    }
    let mails = server.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m.mail_from, FROM);
    assert_eq!(m.rcpt_tos, vec!["alice@hospital.example.org".to_string()]);
    assert_eq!(m.header("From"), Some("Cryowatch Lab B <cryowatch@lab.example.org>"));
    assert_eq!(m.header("To"), Some("Alice Nurse <alice@hospital.example.org>"));
    assert_eq!(m.header("Subject"), Some(msg.subject.as_str()));
    assert_eq!(m.header("Message-ID"), Some("<cryowatch-4711@lab.example.org>"));
    assert_eq!(m.header("X-Cryowatch-Alarm"), Some("17"));
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    // RFC 2045 §4: a message with a Content-Type says which MIME it follows.
    assert_eq!(m.header("MIME-Version"), Some("1.0"), "{:?}", m.headers);
    assert!(m.header("Date").is_some(), "{:?}", m.headers);
    assert_eq!(m.content_type, "text/plain");
    assert_eq!(m.body.trim_end(), msg.text.trim_end());
    assert!(!m.authenticated);

    // A test page has no alarm header; a resend of the same notification keeps its id.
    assert!(ch.send(&page(4712, None)).await.is_sent());
    assert!(ch.send(&msg).await.is_sent());
    let mails = server.messages();
    assert_eq!(mails.len(), 3);
    assert_eq!(mails[1].header("X-Cryowatch-Alarm"), None);
    assert_eq!(mails[1].header("Message-ID"), Some("<cryowatch-4712@lab.example.org>"));
    assert_eq!(mails[2].header("Message-ID"), mails[0].header("Message-ID"));
}

#[tokio::test]
async fn smtp_auth_with_right_credentials_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::with_auth(dir.path(), "cryowatch", "s3cret-pass");
    let ch = smtp_channel(server.port, SmtpTls::None, Some(("cryowatch", "s3cret-pass")));
    let d = ch.send(&page(1, Some(1))).await;
    assert!(d.is_sent(), "{d:?}\n{}", server.log());
    let mails = server.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].authenticated);
}

#[tokio::test]
async fn smtp_auth_refused_does_not_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::with_auth(dir.path(), "cryowatch", "s3cret-pass");

    let wrong = smtp_channel(server.port, SmtpTls::None, Some(("cryowatch", "wrong")));
    let d = wrong.send(&page(1, Some(1))).await;
    expect_failed(&d, false, &["535", "authentication"]);

    // AUTH required but the channel has no credentials: 530 on MAIL.
    let anonymous = smtp_channel(server.port, SmtpTls::None, None);
    let d = anonymous.send(&page(2, Some(1))).await;
    expect_failed(&d, false, &["530"]);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn smtp_server_down_retries_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::None, None);
    assert!(ch.send(&page(1, Some(1))).await.is_sent());

    server.stop();
    let d = ch.send(&page(2, Some(1))).await;
    expect_failed(&d, true, &["connecting to", &format!("127.0.0.1:{}", server.port)]);

    server.restart();
    let d = ch.send(&page(2, Some(1))).await;
    assert!(d.is_sent(), "{d:?}");
    let mails = server.messages();
    let ids: Vec<_> = mails.iter().filter_map(|m| m.header("Message-ID")).collect();
    assert_eq!(
        ids,
        vec!["<cryowatch-1@lab.example.org>", "<cryowatch-2@lab.example.org>"]
    );
}

#[tokio::test]
async fn smtp_transient_replies_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::None, None);

    server.fail("rcpt", "451 4.3.0 Temporary failure, try again later");
    expect_failed(&ch.send(&page(1, Some(1))).await, true, &["451", "try again later"]);
    server.fail("data", "452 4.3.1 Insufficient system storage");
    expect_failed(&ch.send(&page(1, Some(1))).await, true, &["452"]);
    assert!(server.messages().is_empty());

    server.accept();
    assert!(ch.send(&page(1, Some(1))).await.is_sent());
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn smtp_permanent_replies_do_not_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::None, None);

    server.fail("rcpt", "550 5.1.1 Mailbox unavailable");
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        false,
        &["550", "Mailbox unavailable"],
    );
    server.fail("data", "554 5.7.1 Message rejected as spam");
    expect_failed(&ch.send(&page(1, Some(1))).await, false, &["554"]);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn smtp_contact_without_email_is_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::None, None);
    let mut msg = page(1, Some(1));
    msg.contact = contact(None, Some("+15551230001"));
    let d = ch.send(&msg).await;
    assert!(
        matches!(&d, Delivery::Unreachable { reason } if reason.contains("alice")),
        "{d:?}"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn smtp_silent_server_times_out() {
    // Accepts the connection and never says anything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let ch = smtp_channel(port, SmtpTls::None, None).with_timeout(Duration::from_millis(800));
    let started = Instant::now();
    let d = ch.send(&page(1, Some(1))).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    expect_failed(&d, true, &["no answer"]);
    hold.abort();
}

#[tokio::test]
async fn smtp_untrusted_certificate_is_refused_named_and_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    // STARTTLS offered with a self-signed certificate.
    let starttls = SmtpServer::start_with(
        &dir.path().join("starttls"),
        &SmtpOptions {
            tls: true,
            ..SmtpOptions::default()
        },
    );
    let ch = smtp_channel(starttls.port, SmtpTls::StartTls, Some(("u", "p")));
    // A self-signed certificate is its own CA: rustls calls that CaUsedAsEndEntity, and
    // the fix (trust a CA, or the certificate through ca_file) is a person's, after
    // which the next attempt works: retried.
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        true,
        &["STARTTLS", "server certificate for 127.0.0.1", "ca_file"],
    );

    // TLS from the first byte with the same kind of certificate.
    let implicit = SmtpServer::start_with(
        &dir.path().join("implicit"),
        &SmtpOptions {
            implicit_tls: true,
            ..SmtpOptions::default()
        },
    );
    let ch = smtp_channel(implicit.port, SmtpTls::Tls, None);
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        true,
        &["server certificate for 127.0.0.1"],
    );
    assert!(starttls.messages().is_empty() && implicit.messages().is_empty());
}

#[tokio::test]
async fn smtp_starttls_required_but_not_offered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SmtpServer::start(dir.path());
    let ch = smtp_channel(server.port, SmtpTls::StartTls, Some(("u", "p")));
    expect_failed(&ch.send(&page(1, Some(1))).await, false, &["STARTTLS"]);
    assert!(server.messages().is_empty());
}

// ---------------------------------------------------------------------------------
// Twilio

fn twilio_channel(fake_base: &str, token: &str) -> TwilioChannel {
    TwilioChannel::new(&Channel {
        id: "sms".into(),
        kind: ChannelKind::Twilio {
            base_url: fake_base.to_string(),
            account_sid: common::twilio::ACCOUNT_SID.into(),
            auth_token: Secret(token.to_string()),
            from: "+15550000000".into(),
        },
        fallback: None,
        ca_file: None,
    })
    .expect("twilio channel")
    .with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn twilio_message_is_recorded_and_delivered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, &fake.auth_token);
    let msg = page(1, Some(17));
    let sid = match ch.send(&msg).await {
        Delivery::Sent { detail } => detail,
        other => panic!("not sent: {other:?}\n{}", fake.log()),
    };
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    let got = fake.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].to, "+15551230001");
    assert_eq!(got[0].from, "+15550000000");
    assert_eq!(got[0].body, msg.sms);
    assert_eq!(got[0].sid.as_deref(), Some(sid.as_str()));
    assert!(got[0].authorization_ok);
    assert!(got[0].content_type.starts_with("application/x-www-form-urlencoded"));

    let status = ch.status(&sid).await.expect("status");
    assert_eq!(status.sid, sid);
    assert_eq!(status.status, "delivered");
    assert_eq!(status.error_code, None);
    assert!(status.is_final() && !status.is_failure());

    let err = ch.status("SMdoesnotexist").await.expect_err("unknown sid");
    assert!(err.contains("404"), "{err}");
    assert!(ch.status("../../etc").await.is_err());
}

#[tokio::test]
async fn twilio_server_errors_and_rate_limits_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, &fake.auth_token);

    fake.set_mode(TwilioMode::Error500);
    expect_failed(&ch.send(&page(1, Some(1))).await, true, &["HTTP 500", "20500"]);
    fake.set_mode(TwilioMode::RateLimit);
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        true,
        &["HTTP 429", "20429", "Retry-After 7"],
    );
    assert!(fake.accepted().is_empty());
    assert_eq!(fake.requests().len(), 2);

    fake.set_mode(TwilioMode::Normal);
    assert!(ch.send(&page(1, Some(1))).await.is_sent());
}

#[tokio::test]
async fn twilio_rejected_numbers_do_not_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, &fake.auth_token);

    fake.set_mode(TwilioMode::Reject(21211));
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        false,
        &["HTTP 400", "21211", "not a valid phone number"],
    );
    fake.set_mode(TwilioMode::Reject(21610));
    expect_failed(&ch.send(&page(1, Some(1))).await, false, &["21610", "unsubscribed"]);
    assert!(fake.accepted().is_empty());
}

#[tokio::test]
async fn twilio_wrong_token_is_refused_without_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, "not-the-token");
    expect_failed(
        &ch.send(&page(1, Some(1))).await,
        false,
        &["HTTP 401", "20003", "check account_sid/auth_token"],
    );
    let got = fake.requests();
    assert_eq!(got.len(), 1);
    assert!(!got[0].authorization_ok);
    assert_eq!(got[0].http_status, 401);
    assert!(ch.status("SM0123").await.is_err_and(|e| e.contains("401")));
}

#[tokio::test]
async fn twilio_undelivered_status_is_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, &fake.auth_token);
    fake.set_mode(TwilioMode::Undelivered);
    let sid = match ch.send(&page(1, Some(1))).await {
        Delivery::Sent { detail } => detail,
        other => panic!("not sent: {other:?}"),
    };
    let status = ch.status(&sid).await.expect("status");
    assert_eq!(status.status, "undelivered");
    assert_eq!(status.error_code, Some(30005));
    assert_eq!(status.error_message.as_deref(), Some("Unknown destination handset"));
    assert!(status.is_failure());
}

#[tokio::test]
async fn twilio_no_phone_gateway_down_and_silent_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeTwilio::start(dir.path());
    let ch = twilio_channel(&fake.base_url, &fake.auth_token);
    let mut msg = page(1, Some(1));
    msg.contact = contact(Some("alice@hospital.example.org"), None);
    assert!(matches!(ch.send(&msg).await, Delivery::Unreachable { .. }));
    assert!(fake.requests().is_empty());

    // Nobody listens.
    let down = twilio_channel(&format!("http://127.0.0.1:{}", common::free_port()), "t");
    expect_failed(&down.send(&page(1, Some(1))).await, true, &["cannot reach"]);

    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let silent = twilio_channel(&format!("http://127.0.0.1:{port}"), "t").with_timeout(Duration::from_millis(800));
    let started = Instant::now();
    expect_failed(&silent.send(&page(1, Some(1))).await, true, &["no answer"]);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(silent.status("SM1").await.is_err_and(|e| e.contains("no answer")));
    hold.abort();
}

// ---------------------------------------------------------------------------------
// Webhook

/// One request the hook server received.
#[derive(Debug, Clone)]
struct HookRequest {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HookRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP server answering every request with the current status code.
struct Hook {
    port: u16,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<HookRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let status = Arc::new(AtomicU16::new(200));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (status.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (st, sn) = (st.clone(), sn.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    sn.lock().expect("lock").push(req);
                    let code = st.load(Ordering::SeqCst);
                    let body = format!("{{\"answer\": {code}}}");
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Hook {
            port,
            status,
            seen,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/cryowatch?token=abc", self.port)
    }

    fn requests(&self) -> Vec<HookRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<HookRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(HookRequest {
        request_line,
        headers,
        body,
    })
}

fn webhook_channel(url: &str) -> WebhookChannel {
    WebhookChannel::new(&Channel {
        id: "hook".into(),
        kind: ChannelKind::Webhook { url: url.into() },
        fallback: None,
        ca_file: None,
    })
    .expect("webhook channel")
    .with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn webhook_posts_the_notification_as_json() {
    let hook = Hook::start().await;
    let ch = webhook_channel(&hook.url());
    let msg = page(99, Some(17));
    let d = ch.send(&msg).await;
    assert!(
        matches!(&d, Delivery::Sent { detail } if detail.starts_with("HTTP 200")),
        "{d:?}"
    );

    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.request_line, "POST /hooks/cryowatch?token=abc HTTP/1.1");
    assert!(
        r.header("Content-Type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    assert_eq!(r.header("Idempotency-Key"), Some("cryowatch-99"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(v["id"], 99);
    assert_eq!(v["contact"]["id"], "alice");
    assert_eq!(v["contact"]["name"], "Alice Nurse");
    assert_eq!(v["contact"]["email"], "alice@hospital.example.org");
    assert_eq!(v["contact"]["phone"], "+15551230001");
    assert_eq!(v["subject"], msg.subject.as_str());
    assert_eq!(v["text"], msg.text.as_str());
    assert_eq!(v["sms"], msg.sms.as_str());
    assert_eq!(v["alarm"], 17);

    let mut test_page = page(100, None);
    test_page.contact = contact(None, None);
    assert!(ch.send(&test_page).await.is_sent());
    let v: serde_json::Value = serde_json::from_slice(&hook.requests()[1].body).expect("JSON body");
    assert!(v["alarm"].is_null() && v["contact"]["email"].is_null() && v["contact"]["phone"].is_null());
}

#[tokio::test]
async fn webhook_errors_map_to_retry() {
    let hook = Hook::start().await;
    let ch = webhook_channel(&hook.url());
    for (status, retry) in [
        (500, true),
        (503, true),
        (429, true),
        (408, true),
        (400, false),
        (404, false),
    ] {
        hook.status.store(status, Ordering::SeqCst);
        let d = ch.send(&page(1, Some(1))).await;
        expect_failed(&d, retry, &[&format!("HTTP {status}")]);
        if let Delivery::Failed { reason, .. } = &d {
            assert!(!reason.contains("token=abc"), "the URL's secret leaked: {reason}");
        }
    }
    hook.status.store(204, Ordering::SeqCst);
    assert!(ch.send(&page(1, Some(1))).await.is_sent());

    let down = webhook_channel(&format!("http://127.0.0.1:{}/x?token=abc", common::free_port()));
    let d = down.send(&page(1, Some(1))).await;
    expect_failed(&d, true, &["cannot reach"]);
    if let Delivery::Failed { reason, .. } = &d {
        assert!(!reason.contains("token=abc"), "the URL's secret leaked: {reason}");
    }
}
