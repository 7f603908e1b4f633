use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const T: Duration = Duration::from_millis(300);

fn lines(raw: &[&[u8]]) -> Vec<Vec<u8>> {
    raw.iter().map(|l| l.to_vec()).collect()
}

/// A port whose modem side the test drives by hand.
fn pair() -> (AtPort<DuplexStream>, DuplexStream) {
    let (a, b) = tokio::io::duplex(4096);
    (AtPort::new(a), b)
}

async fn expect(modem: &mut DuplexStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    modem.read_exact(&mut got).await.expect("read what the port wrote");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

#[test]
fn final_result_codes_are_recognised() {
    assert_eq!(final_code("OK"), Some(Final::Ok));
    assert_eq!(final_code(" ERROR "), Some(Final::Error));
    assert_eq!(final_code("+CMS ERROR: 332"), Some(Final::Cms(332)));
    assert_eq!(final_code("+CME ERROR: 10"), Some(Final::Cme(10)));
    assert_eq!(final_code("+CMS ERROR: network timeout"), Some(Final::Cms(500)));
    assert_eq!(final_code("+CMGS: 12"), None);
    assert_eq!(final_code("OKAY"), None);
}

#[test]
fn cms_errors_a_retry_cannot_fix_are_permanent() {
    for code in [1, 21, 28, 30, 96, 195, 196, 304, 305, 310, 311, 330] {
        assert!(!cms_error(code).0, "+CMS ERROR: {code} should be permanent");
    }
    for code in [27, 38, 41, 42, 47, 192, 300, 314, 322, 331, 332, 500, 515, 999] {
        assert!(cms_error(code).0, "+CMS ERROR: {code} should be transient");
    }
    assert_eq!(cms_error(332).1, "network timeout");
    assert_eq!(
        AtError::Cms(21).to_string(),
        "+CMS ERROR: 21 (short message transfer rejected)"
    );
    assert!(!AtError::Cms(21).retry());
    assert!(AtError::Error("AT+CMGS".into()).retry());
    assert!(!AtError::Cme(11).retry());
}

#[test]
fn signal_registration_and_message_reference_are_parsed() {
    assert_eq!(parse_csq("+CSQ: 17,99"), Some(Some(17)));
    assert_eq!(parse_csq("+CSQ: 99,99"), Some(None));
    assert_eq!(parse_csq("+CSQ: 40,0"), None);
    assert_eq!(parse_csq("+CREG: 0,1"), None);
    assert_eq!(parse_creg("+CREG: 0,1"), Some(1));
    assert_eq!(parse_creg("+CREG: 2,5,\"00C3\",\"1A2B\",7"), Some(5));
    assert_eq!(parse_creg("+CREG: 3"), Some(3));
    assert_eq!(parse_creg("+CSQ: 3,0"), None);
    assert_eq!(parse_cmgs("+CMGS: 42"), Some(42));
    assert_eq!(parse_cmgs("+CMGS: 7,\"26/11/23,08:00:00+04\""), Some(7));
    assert_eq!(parse_cmgs("+CMGS: x"), None);
}

#[test]
fn quoted_fields_keep_their_commas() {
    assert_eq!(
        split_fields(r#" 3,"REC UNREAD","+15551230001",,"26/11/23,08:00:00+04""#),
        ["3", "REC UNREAD", "+15551230001", "", "26/11/23,08:00:00+04"]
    );
}

#[test]
fn a_cmgl_listing_yields_index_sender_time_and_text() {
    let listing = lines(&[
        b"+CMTI: \"SM\",4",
        b"+CMGL: 1,\"REC UNREAD\",\"+15551230001\",,\"26/11/23,08:00:00+04\"",
        b"ACK 4711",
        b"+CMGL: 4,\"REC UNREAD\",\"+15551230002\",\"Ann\",\"26/11/23,08:01:30+04\",145,12",
        b"OK",
        b"+CMGL: x,\"REC UNREAD\",\"+1\",,\"\"",
        b"dropped",
        b"+CMGL: 5,\"REC UNREAD\",\"+15551230003\",,\"26/11/23,08:02:00+04\"",
        b"line one",
        b"mail \x00 home \x11 x",
    ]);
    let got = parse_cmgl(&listing);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(
        got[0],
        Listed {
            index: 1,
            status: "REC UNREAD".into(),
            from: "+15551230001".into(),
            timestamp: "26/11/23,08:00:00+04".into(),
            text: "ACK 4711".into(),
        }
    );
    assert_eq!(
        (got[1].index, got[1].from.as_str(), got[1].text.as_str()),
        (4, "+15551230002", "OK")
    );
    assert_eq!(got[2].text, "line one\nmail @ home _ x");
}

#[tokio::test]
async fn a_command_returns_its_lines_and_skips_echo_and_unsolicited_codes() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move {
        let r = port.command("AT+CSQ", T).await;
        (port, r)
    });
    expect(&mut modem, b"AT+CSQ\r").await;
    modem
        .write_all(b"AT+CSQ\r\r\n+CMTI: \"SM\",2\r\n\r\n+CSQ: 21,0\r")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    modem.write_all(b"\n\r\nOK\r\n").await.unwrap();
    let (port, r) = task.await.unwrap();
    assert_eq!(r.unwrap(), lines(&[b"+CSQ: 21,0"]));
    assert_eq!(port.state(), LineState::InSync);
}

#[tokio::test]
async fn cmgl_text_that_reads_ok_is_text_not_the_final_code() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move { port.command("AT+CMGL=\"REC UNREAD\"", T).await });
    expect(&mut modem, b"AT+CMGL=\"REC UNREAD\"\r").await;
    // The header's CRLF split across two writes; an empty message; a text "OK".
    modem
        .write_all(b"\r\n+CMGL: 1,\"REC UNREAD\",\"+1555\",,\"t\"\r")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    modem
        .write_all(b"\nOK\r\n+CMGL: 2,\"REC UNREAD\",\"+1556\",,\"t\"\r\n\r\n\r\nOK\r\n")
        .await
        .unwrap();
    let got = parse_cmgl(&task.await.unwrap().unwrap());
    let texts: Vec<(u32, &str)> = got.iter().map(|m| (m.index, m.text.as_str())).collect();
    assert_eq!(texts, [(1, "OK"), (2, "")]);
}

/// Found by fuzzing (fuzz/fuzz_targets/sms_ack.rs): a text starting with LF lost that
/// LF when its header's CRLF arrived in one read, and kept it when the CRLF was split.
#[tokio::test]
async fn a_text_starting_with_lf_reads_the_same_however_the_line_cuts_it() {
    let header: &[u8] = b"\r\n+CMGL: 2,\"REC UNREAD\",\"+1556\",,\"t\"\r";
    let rest: &[u8] = b"\n\nACK 3\r\n\r\nOK\r\n";
    for split in [false, true] {
        let (mut port, mut modem) = pair();
        let task = tokio::spawn(async move { port.command("AT+CMGL=\"REC UNREAD\"", T).await });
        expect(&mut modem, b"AT+CMGL=\"REC UNREAD\"\r").await;
        if split {
            modem.write_all(header).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            modem.write_all(rest).await.unwrap();
        } else {
            modem.write_all(&[header, rest].concat()).await.unwrap();
        }
        let got = parse_cmgl(&task.await.unwrap().unwrap());
        let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["\nACK 3"], "split: {split}");
    }
}

#[tokio::test]
async fn a_message_is_written_after_the_prompt_and_its_reference_returned() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move { port.send_sms("+15551230001", b"hi @", (T, T)).await });
    expect(&mut modem, b"AT+CMGS=\"+15551230001\"\r").await;
    modem.write_all(b"\r\n> ").await.unwrap();
    expect(&mut modem, b"hi @\x1a").await;
    modem.write_all(b"\r\n+CMGS: 9\r\n\r\nOK\r\n").await.unwrap();
    assert_eq!(task.await.unwrap().unwrap(), 9);
}

#[tokio::test]
async fn a_cms_error_after_submit_keeps_the_line_in_step() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move {
        let r = port.send_sms("+15551230001", b"x", (T, T)).await;
        (port, r)
    });
    expect(&mut modem, b"AT+CMGS=\"+15551230001\"\r").await;
    modem.write_all(b"\r\n> ").await.unwrap();
    expect(&mut modem, b"x\x1a").await;
    modem.write_all(b"\r\n+CMS ERROR: 332\r\n").await.unwrap();
    let (port, r) = task.await.unwrap();
    assert!(matches!(r, Err(AtError::Cms(332))), "{r:?}");
    assert_eq!(port.state(), LineState::InSync);
}

#[tokio::test]
async fn no_prompt_in_time_cancels_text_entry_with_esc() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move {
        let r = port.send_sms("+15551230001", b"x", (T, T)).await;
        (port, r)
    });
    expect(&mut modem, b"AT+CMGS=\"+15551230001\"\r\x1b").await;
    let (mut port, r) = task.await.unwrap();
    assert!(matches!(r, Err(AtError::Timeout { .. })), "{r:?}");
    assert_eq!(port.state(), LineState::OutOfStep);

    // A late answer arrives; resync discards it and the next command gets its own answer.
    modem.write_all(b"\r\nERROR\r\n").await.unwrap();
    let task = tokio::spawn(async move {
        port.resync(Duration::from_millis(50)).await.unwrap();
        let r = port.command("AT", T).await;
        (port, r)
    });
    expect(&mut modem, b"\x1bAT\r").await;
    modem.write_all(b"\r\nOK\r\n").await.unwrap();
    let (port, r) = task.await.unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(port.state(), LineState::InSync);
}

#[tokio::test]
async fn an_error_instead_of_the_prompt_is_reported() {
    let (mut port, mut modem) = pair();
    let task = tokio::spawn(async move { port.send_sms("+1", b"x", (T, T)).await });
    expect(&mut modem, b"AT+CMGS=\"+1\"\r").await;
    modem.write_all(b"\r\nERROR\r\n").await.unwrap();
    let r = task.await.unwrap();
    assert!(matches!(r, Err(AtError::Error(_))), "{r:?}");
}

#[tokio::test]
async fn a_closed_line_is_broken() {
    let (mut port, modem) = pair();
    drop(modem);
    let r = port.command("AT", T).await;
    assert!(matches!(r, Err(AtError::Io(_))), "{r:?}");
    assert_eq!(port.state(), LineState::Broken);
}
