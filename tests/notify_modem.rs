//! The GSM modem channel against a fake modem (`cryosim modem`) on a socat pty pair:
//! AT initialisation, sending and splitting, CMS errors, a modem that stops answering,
//! the health check, inbound replies, and the wake-up call before the SMS (`ring`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::modem::{Event, FakeModem, RecordedCall};
use cryowatch::config::notify::Contact;
use cryowatch::notify::channel::{Delivery, Outgoing};
use cryowatch::notify::modem::{ModemChannel, ModemTimeouts, Registration};

const NURSE: &str = "+15551230001";

/// Short limits: the fake modem answers in milliseconds (with room for a busy machine).
const FAST: ModemTimeouts = ModemTimeouts {
    command: Duration::from_secs(1),
    prompt: Duration::from_secs(1),
    submit: Duration::from_secs(3),
};

fn channel(modem: &FakeModem) -> ModemChannel {
    ModemChannel::new("modem", &modem.tty, 115_200).with_timeouts(FAST)
}

fn page(phone: Option<&str>, sms: &str) -> Outgoing {
    Outgoing {
        id: 1,
        contact: Contact {
            id: "nurse".into(),
            name: "Night nurse".into(),
            email: Some("nurse@example.org".into()),
            phone: phone.map(str::to_string),
        },
        subject: "ALARM dewar-1".into(),
        text: format!("full text: {sms}"),
        sms: sms.into(),
        alarm: Some(4711),
    }
}

fn failed(d: Delivery) -> (bool, String) {
    match d {
        Delivery::Failed { retry, reason, .. } => (retry, reason),
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn sent(d: Delivery, modem: &FakeModem) -> String {
    match d {
        Delivery::Sent { detail } => detail,
        other => panic!("expected Sent, got {other:?}; {}", modem.log()),
    }
}

#[tokio::test]
async fn a_page_is_sent_to_the_contacts_number_with_its_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    let text = "ALARM dewar-1 -142.3 C above -150 C since 03:12. Reply ACK 4711";
    let detail = sent(ch.send(&page(Some(NURSE), text)).await, &modem);
    let rec = modem.wait_sent(1, Duration::from_secs(2));
    assert_eq!(rec.len(), 1);
    assert_eq!((rec[0].to.as_str(), rec[0].text.as_str()), (NURSE, text));
    assert_eq!(detail, format!("message reference {}", rec[0].reference));
}

#[tokio::test]
async fn characters_outside_gsm7_are_transliterated_and_gsm_ones_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    let d = ch
        .send(&page(Some(NURSE), "freezer_7 at −71.2 °C – call ops@lab [B2] £5 é"))
        .await;
    sent(d, &modem);
    let rec = modem.wait_sent(1, Duration::from_secs(2));
    assert_eq!(rec[0].text, "freezer_7 at -71.2 degC - call ops@lab (B2) £5 é");
}

#[tokio::test]
async fn a_long_message_is_split_into_numbered_parts_recorded_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    let words: Vec<String> = (0..55).map(|i| format!("step{i:02}")).collect();
    let text = words.join(" ");
    assert!(text.len() > 320);
    let detail = sent(ch.send(&page(Some(NURSE), &text)).await, &modem);
    let rec = modem.wait_sent(3, Duration::from_secs(2));
    assert_eq!(rec.len(), 3, "{rec:#?}");
    let mut bodies = Vec::new();
    for (i, r) in rec.iter().enumerate() {
        assert_eq!(r.to, NURSE);
        assert!(r.text.chars().count() <= 160, "{r:?}");
        let prefix = format!("({}/3) ", i + 1);
        bodies.push(
            r.text
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{r:?} lacks {prefix:?}")),
        );
    }
    assert_eq!(bodies.join(" "), text);
    let refs: Vec<String> = rec.iter().map(|r| r.reference.to_string()).collect();
    assert_eq!(detail, format!("message references {} (3 parts)", refs.join(", ")));
}

#[tokio::test]
async fn a_transient_cms_error_is_retryable_names_its_code_and_leaves_the_modem_usable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    modem.fail_next(1, 332);
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "first try")).await);
    assert!(retry, "{reason}");
    assert!(
        reason.contains("+CMS ERROR: 332") && reason.contains("network timeout"),
        "{reason}"
    );
    assert!(modem.sent().is_empty());
    sent(ch.send(&page(Some(NURSE), "second try")).await, &modem);
    let rec = modem.wait_sent(1, Duration::from_secs(2));
    assert_eq!(rec[0].text, "second try");
}

#[tokio::test]
async fn a_permanent_cms_error_is_not_retryable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    modem.fail_next(1, 21);
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "rejected")).await);
    assert!(!retry, "{reason}");
    assert!(
        reason.contains("+CMS ERROR: 21 (short message transfer rejected)"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_silent_modem_fails_retryably_in_time_and_the_next_send_works_once_it_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    sent(ch.send(&page(Some(NURSE), "before")).await, &modem);

    modem.silent(true);
    let t0 = Instant::now();
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "while silent")).await);
    assert!(retry, "{reason}");
    assert!(reason.contains("no answer"), "{reason}");
    assert!(t0.elapsed() < Duration::from_secs(4), "took {:?}", t0.elapsed());

    // It comes back as after a restart (echo on, PDU mode): the channel initialises it again.
    modem.silent(false);
    sent(ch.send(&page(Some(NURSE), "after")).await, &modem);
    let texts: Vec<String> = modem
        .wait_sent(2, Duration::from_secs(2))
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

#[tokio::test]
async fn a_modem_that_restarted_between_pages_is_set_up_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    sent(ch.send(&page(Some(NURSE), "one")).await, &modem);
    // Unnoticed by the channel, the modem restarts: echo on, PDU mode.
    modem.silent(true);
    modem.silent(false);
    sent(ch.send(&page(Some(NURSE), "two")).await, &modem);
    let texts: Vec<String> = modem
        .wait_sent(2, Duration::from_secs(2))
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

#[tokio::test]
async fn the_health_check_reports_signal_and_registration_and_fails_on_a_silent_modem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    modem.signal(17);
    let health = ch.check().await.unwrap_or_else(|e| panic!("{e}; {}", modem.log()));
    assert_eq!(health.rssi, Some(17));
    assert_eq!(health.signal_dbm(), Some(-79));
    assert_eq!(health.registration, Registration::Home);
    assert_eq!(health.problem(), None);

    modem.network("searching");
    let health = ch.check().await.expect("health while searching");
    assert_eq!(health.registration, Registration::Searching);
    assert!(health.problem().is_some_and(|p| p.contains("not registered")));
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "no network")).await);
    assert!(retry && reason.contains("+CMS ERROR: 331"), "{reason}");

    modem.silent(true);
    let t0 = Instant::now();
    let err = ch.check().await.expect_err("a silent modem is not healthy");
    assert!(err.contains("no answer"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(4), "took {:?}", t0.elapsed());
}

#[tokio::test]
async fn an_inbound_ack_is_received_once_and_deleted_from_the_modem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    assert_eq!(ch.receive().await.expect("empty inbox"), []);
    modem.queue_sms(NURSE, "ACK 4711");
    modem.queue_sms("+15551230002", "OK");
    let got = ch.receive().await.unwrap_or_else(|e| panic!("{e}; {}", modem.log()));
    let pairs: Vec<(&str, &str)> = got.iter().map(|m| (m.from.as_str(), m.text.as_str())).collect();
    assert_eq!(pairs, [(NURSE, "ACK 4711"), ("+15551230002", "OK")]);
    assert!(!got[0].timestamp.is_empty());
    assert_eq!(modem.inbox(), serde_json::json!([]));
    assert_eq!(ch.receive().await.expect("second read"), []);
}

#[tokio::test]
async fn concurrent_pages_share_the_modem_one_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = Arc::new(channel(&modem));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let ch = ch.clone();
        tasks.spawn(async move { ch.send(&page(Some(NURSE), &format!("page {i}"))).await });
    }
    while let Some(d) = tasks.join_next().await {
        sent(d.expect("send task"), &modem);
    }
    let mut texts: Vec<String> = modem
        .wait_sent(5, Duration::from_secs(2))
        .into_iter()
        .map(|r| r.text)
        .collect();
    texts.sort();
    assert_eq!(texts, ["page 0", "page 1", "page 2", "page 3", "page 4"]);
}

#[tokio::test]
async fn a_contact_without_phone_is_unreachable_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = channel(&modem);
    match ch.send(&page(None, "nobody")).await {
        Delivery::Unreachable { reason } => assert!(reason.contains("nurse"), "{reason}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(modem.sent().is_empty());
}

#[tokio::test]
async fn a_serial_port_that_cannot_be_opened_is_a_retryable_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("ttyUSB9");
    let ch = ModemChannel::new("modem", &missing, 115_200).with_timeouts(FAST);
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "x")).await);
    assert!(retry, "{reason}");
    assert!(reason.contains("ttyUSB9") && reason.contains("cannot open"), "{reason}");
}

/// The modem channel as the daemon builds it from a configuration naming `modem`'s line,
/// with `extra` added to the channel.
fn configured_channel(
    dir: &std::path::Path,
    modem: &FakeModem,
    extra: &str,
) -> Arc<dyn cryowatch::notify::channel::Sender> {
    let file = dir.join("cryowatch.toml");
    let toml = format!(
        "[site]\nname = \"ring test\"\ntimezone = \"UTC\"\n\n[store]\npath = \"ring.db\"\n\n\
         [[channel]]\nid = \"modem\"\nkind = \"gsm_modem\"\nserial = \"{}\"\n{extra}\n",
        modem.tty.display()
    );
    std::fs::write(&file, toml).expect("write config");
    let cfg = cryowatch::config::load(&file).unwrap_or_else(|e| panic!("config refused: {e}"));
    let built = cryowatch::notify::channels::build(&cfg.notify, None);
    built.senders.get("modem").cloned().expect("the modem channel is built")
}

fn only_call(modem: &FakeModem) -> RecordedCall {
    let calls = modem.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    calls[0].clone()
}

#[tokio::test]
async fn with_ring_the_contact_is_called_for_that_long_hung_up_and_then_texted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = configured_channel(dir.path(), &modem, "ring = \"2s\"");
    let t0 = Instant::now();
    let detail = sent(ch.send(&page(Some(NURSE), "ALARM dewar-1")).await, &modem);
    assert!(t0.elapsed() >= Duration::from_secs(2), "took {:?}", t0.elapsed());

    let history = modem.history();
    let [Event::Call(call), Event::Sms(sms)] = history.as_slice() else {
        panic!("expected a call, then the SMS: {history:#?}");
    };
    assert_eq!((call.number.as_str(), call.ended_by.as_str()), (NURSE, "ATH"));
    assert!(
        call.duration() >= Duration::from_millis(1900) && call.duration() < Duration::from_millis(3000),
        "rang {:?}",
        call.duration()
    );
    assert_eq!((sms.to.as_str(), sms.text.as_str()), (NURSE, "ALARM dewar-1"));
    assert!(
        detail.starts_with("call rang 2.")
            && detail.ends_with(&format!("s, hung up; message reference {}", sms.reference)),
        "{detail}"
    );
}

#[tokio::test]
async fn without_ring_no_call_is_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    let ch = configured_channel(dir.path(), &modem, "");
    let detail = sent(ch.send(&page(Some(NURSE), "ALARM dewar-1")).await, &modem);
    assert!(detail.starts_with("message reference"), "{detail}");
    assert_eq!(modem.wait_sent(1, Duration::from_secs(2)).len(), 1);
    // The control port lists calls still ringing too: none was ever dialled.
    assert_eq!(modem.command("calls"), "[]");
    assert_eq!(modem.history().len(), 1);
}

#[tokio::test]
async fn a_busy_callee_is_recorded_as_busy_and_still_texted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    modem.call_end("busy");
    let ch = channel(&modem).with_ring(Some(Duration::from_secs(20)));
    let t0 = Instant::now();
    let detail = sent(ch.send(&page(Some(NURSE), "still texted")).await, &modem);
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(detail.starts_with("call busy after 0."), "{detail}");
    assert!(detail.contains("; message reference "), "{detail}");
    assert_eq!(only_call(&modem).ended_by, "BUSY");
    assert!(matches!(modem.history().as_slice(), [Event::Call(_), Event::Sms(s)] if s.text == "still texted"));
}

#[tokio::test]
async fn a_call_the_network_ends_early_stops_ringing_then_and_the_sms_follows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    modem.call_end("500");
    let ch = channel(&modem).with_ring(Some(Duration::from_secs(10)));
    let t0 = Instant::now();
    let detail = sent(ch.send(&page(Some(NURSE), "after no carrier")).await, &modem);
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert!(detail.starts_with("call no carrier after 0."), "{detail}");
    let call = only_call(&modem);
    assert_eq!(call.ended_by, "NO CARRIER");
    assert!(call.duration() < Duration::from_secs(2), "{call:?}");
    assert!(matches!(modem.history().as_slice(), [Event::Call(_), Event::Sms(s)] if s.text == "after no carrier"));
}

#[tokio::test]
async fn a_failed_sms_after_a_call_names_the_call_and_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let modem = FakeModem::start(dir.path());
    modem.fail_next(1, 332);
    let ch = channel(&modem).with_ring(Some(Duration::from_millis(300)));
    let (retry, reason) = failed(ch.send(&page(Some(NURSE), "refused")).await);
    assert!(retry, "{reason}");
    assert!(
        reason.starts_with("call rang 0.") && reason.contains("+CMS ERROR: 332"),
        "{reason}"
    );
    assert_eq!(only_call(&modem).ended_by, "ATH");
    assert!(modem.sent().is_empty());
}
