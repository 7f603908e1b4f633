use std::time::Duration;

use super::*;

fn out(modem: &mut Modem, input: &[u8]) -> String {
    String::from_utf8_lossy(&modem.feed(input).output).into_owned()
}

/// A modem initialised the way a sender does it.
fn ready() -> Modem {
    let mut m = Modem::default();
    for cmd in ["ATE0\r", "AT+CMGF=1\r", "AT+CSCS=\"GSM\"\r"] {
        out(&mut m, cmd.as_bytes());
    }
    m
}

#[test]
fn it_echoes_until_ate0_and_answers_ok() {
    let mut m = Modem::default();
    assert_eq!(out(&mut m, b"AT\r"), "AT\r\r\nOK\r\n");
    assert_eq!(out(&mut m, b"ATE0\r"), "ATE0\r\r\nOK\r\n");
    assert_eq!(out(&mut m, b"AT\r"), "\r\nOK\r\n");
    assert_eq!(out(&mut m, b"AT+BOGUS\r"), "\r\nERROR\r\n");
    assert_eq!(out(&mut m, b"garbage\r"), "");
}

#[test]
fn a_message_is_submitted_after_the_prompt_and_recorded() {
    let mut m = ready();
    assert_eq!(out(&mut m, b"AT+CMGS=\"+15551230001\"\r"), "\r\n> ");
    let fed = m.feed(b"Dewar \x00 -150 degC \x11 \x5c\x1a");
    assert_eq!(String::from_utf8_lossy(&fed.output), "\r\n+CMGS: 1\r\n\r\nOK\r\n");
    assert_eq!(
        fed.sent,
        [SentSms {
            to: "+15551230001".into(),
            text: "Dewar @ -150 degC _ Ö".into(),
            reference: 1
        }]
    );
    assert_eq!(fed.sent[0].json()["ref"], 1);
}

#[test]
fn esc_cancels_text_entry_without_sending() {
    let mut m = ready();
    out(&mut m, b"AT+CMGS=\"+1555\"\r");
    assert_eq!(out(&mut m, b"never\x1b"), "");
    assert_eq!(out(&mut m, b"AT\r"), "\r\nOK\r\n");
    assert!(m.sent.is_empty());
}

#[test]
fn pdu_mode_too_long_text_queued_failures_and_no_network_are_refused() {
    let mut m = Modem::default();
    assert_eq!(
        out(&mut m, b"ATE0\rAT+CMGS=\"+1555\"\r"),
        "ATE0\r\r\nOK\r\n\r\n+CMS ERROR: 302\r\n"
    );
    let mut m = ready();
    out(&mut m, b"AT+CMGS=\"+1555\"\r");
    let long = [b'x'; 161];
    assert_eq!(out(&mut m, &[&long[..], b"\x1a"].concat()), "\r\n+CMS ERROR: 305\r\n");
    assert_eq!(m.control("fail 2 332"), "ok");
    for _ in 0..2 {
        out(&mut m, b"AT+CMGS=\"+1555\"\r");
        assert_eq!(out(&mut m, b"x\x1a"), "\r\n+CMS ERROR: 332\r\n");
    }
    assert_eq!(m.control("network searching"), "ok");
    out(&mut m, b"AT+CMGS=\"+1555\"\r");
    assert_eq!(out(&mut m, b"x\x1a"), "\r\n+CMS ERROR: 331\r\n");
    assert_eq!(out(&mut m, b"AT+CREG?\r"), "\r\n+CREG: 0,2\r\n\r\nOK\r\n");
    m.control("network home");
    out(&mut m, b"AT+CMGS=\"+1555\"\r");
    assert_eq!(out(&mut m, b"x\x1a"), "\r\n+CMGS: 1\r\n\r\nOK\r\n");
}

#[test]
fn a_silent_modem_answers_nothing_and_comes_back_as_after_a_restart() {
    let mut m = ready();
    assert_eq!(m.control("silent on"), "ok");
    assert_eq!(out(&mut m, b"AT\rAT+CSQ\r"), "");
    assert_eq!(m.control("silent off"), "ok");
    assert_eq!(out(&mut m, b"AT\r"), "AT\r\r\nOK\r\n");
    assert_eq!(
        out(&mut m, b"ATE0\rAT+CMGS=\"+1\"\r"),
        "ATE0\r\r\nOK\r\n\r\n+CMS ERROR: 302\r\n"
    );
}

#[test]
fn inbound_messages_are_listed_once_as_unread_and_deleted() {
    let mut m = ready();
    assert_eq!(m.control("sms +15551230001 ACK 4711"), "ok 1");
    assert!(String::from_utf8_lossy(&m.take_urcs()).contains("+CMTI: \"SM\",1"));
    let list = out(&mut m, b"AT+CMGL=\"REC UNREAD\"\r");
    assert!(
        list.starts_with("\r\n+CMGL: 1,\"REC UNREAD\",\"+15551230001\",,\"")
            && list.ends_with("\"\r\nACK 4711\r\n\r\nOK\r\n"),
        "{list:?}"
    );
    assert_eq!(out(&mut m, b"AT+CMGL=\"REC UNREAD\"\r"), "\r\nOK\r\n");
    assert!(out(&mut m, b"AT+CMGL=\"ALL\"\r").contains("REC READ"));
    assert_eq!(out(&mut m, b"AT+CMGD=1\r"), "\r\nOK\r\n");
    assert_eq!(out(&mut m, b"AT+CMGD=1\r"), "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(m.control("inbox"), "[]");
}

#[test]
fn signal_and_bad_control_commands() {
    let mut m = ready();
    assert_eq!(out(&mut m, b"AT+CSQ\r"), "\r\n+CSQ: 21,99\r\n\r\nOK\r\n");
    assert_eq!(m.control("signal 99"), "ok");
    assert_eq!(out(&mut m, b"AT+CSQ\r"), "\r\n+CSQ: 99,99\r\n\r\nOK\r\n");
    assert!(m.control("signal 40").starts_with("err"));
    assert!(m.control("fail x").starts_with("err"));
    assert!(m.control("bogus").starts_with("err unknown command"));
}

#[test]
fn gsm_text_round_trips() {
    let text = "Zürich @ 5$ _x_ [a] {b} €1 é";
    assert_eq!(gsm_decode(&gsm_encode(text)), text);
}

#[test]
fn service_centre_timestamps_are_civil_utc() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_422_000); // 2026-11-23T08:20:00Z
    assert_eq!(sc_timestamp(t), "26/11/23,08:20:00+00");
}

#[test]
fn a_voice_call_rings_until_ath_and_is_recorded_with_its_times() {
    let mut m = ready();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_422_000);
    let fed = m.feed_at(b"ATD+15551230001;\r", t0);
    assert_eq!(String::from_utf8_lossy(&fed.output), "\r\nOK\r\n");
    assert!(fed.calls.is_empty());
    assert_eq!(m.next_event(), None, "by default the call rings until hung up");
    assert_eq!(
        out(&mut m, b"ATD+15551230002;\r"),
        "\r\nERROR\r\n",
        "one call at a time"
    );
    let fed = m.feed_at(b"ATH\r", t0 + Duration::from_millis(2500));
    assert_eq!(String::from_utf8_lossy(&fed.output), "\r\nOK\r\n");
    let call = Call {
        number: "+15551230001".into(),
        dialled: t0,
        ended: Some(t0 + Duration::from_millis(2500)),
        ended_by: "ATH".into(),
    };
    assert_eq!(fed.calls, std::slice::from_ref(&call));
    assert_eq!(call.json()["ended_ms"], 1_795_422_002_500u64);
    assert_eq!(m.control("calls"), format!("[{}]", call.json()));
    assert_eq!(out(&mut m, b"ATH\r"), "\r\nOK\r\n", "ATH without a call is OK");
    assert_eq!(m.calls.len(), 1);
}

#[test]
fn a_call_ends_by_itself_with_no_carrier_when_told_to() {
    let mut m = ready();
    assert_eq!(m.control("call_end 800"), "ok");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    m.feed_at(b"ATD+1555;\r", t0);
    assert_eq!(m.next_event(), Some(t0 + Duration::from_millis(800)));
    assert!(m.tick(t0 + Duration::from_millis(799)).output.is_empty());
    let fed = m.tick(t0 + Duration::from_millis(800));
    assert_eq!(String::from_utf8_lossy(&fed.output), "\r\nNO CARRIER\r\n");
    assert_eq!(fed.calls[0].ended_by, "NO CARRIER");
    assert_eq!(m.next_event(), None);
    assert!(m.tick(t0 + Duration::from_secs(5)).output.is_empty());
}

#[test]
fn busy_data_calls_and_no_network_are_refused_at_dialling() {
    let mut m = ready();
    assert_eq!(out(&mut m, b"ATD+1555\r"), "\r\nERROR\r\n", "a data call");
    assert_eq!(out(&mut m, b"ATD;\r"), "\r\nERROR\r\n");
    assert_eq!(m.control("call_end busy"), "ok");
    let fed = m.feed(b"ATD+1555;\r");
    assert_eq!(String::from_utf8_lossy(&fed.output), "\r\nBUSY\r\n");
    assert_eq!(fed.calls[0].ended_by, "BUSY");
    m.control("call_end never");
    m.control("network none");
    assert_eq!(out(&mut m, b"ATD+1555;\r"), "\r\nNO CARRIER\r\n");
    assert!(m.control("call_end soon").starts_with("err"));
    assert_eq!(m.calls.len(), 1);
}
