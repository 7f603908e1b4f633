use super::*;

use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio::io::DuplexStream;

/// A session over an in-memory pipe: the client's end and what the sink hands on.
fn pipe() -> (
    DuplexStream,
    mpsc::Receiver<Mail>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(async move { session(server, &tx).await });
    (client, rx, task)
}

/// Sends `lines` and returns everything the sink answered until it closed.
async fn talk(lines: &[u8]) -> (String, Vec<Mail>) {
    let (mut client, mut rx, task) = pipe();
    client.write_all(lines).await.expect("write");
    client.shutdown().await.expect("shutdown");
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.expect("read");
    let _ = task.await;
    let mut mails = Vec::new();
    while let Ok(m) = rx.try_recv() {
        mails.push(m);
    }
    (answer, mails)
}

#[tokio::test]
async fn lettre_delivers_a_page_that_arrives_with_its_envelope_and_decoded_subject() {
    let listener = bind().await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, tx, shutdown.clone()));
    let message = Message::builder()
        .from("cryowatch <cryowatch@lab.example>".parse().expect("from"))
        .to("Alice <alice@lab.example>".parse().expect("to"))
        .subject("[ALARM] Dewar 1: dewar-1.temp -170.2 °C (alarm 3)")
        .body("line one\n.starts with a dot\nlast line\n".to_string())
        .expect("message");
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    smtp.send(message).await.expect("delivered");
    let mail = rx.recv().await.expect("a mail");
    assert_eq!(mail.from, "cryowatch@lab.example");
    assert_eq!(mail.to, vec!["alice@lab.example".to_string()]);
    assert_eq!(mail.subject(), "[ALARM] Dewar 1: dewar-1.temp -170.2 °C (alarm 3)");
    let text = String::from_utf8_lossy(&mail.data);
    assert!(text.contains("\r\n.starts with a dot\r\n"), "{text}");
    shutdown.cancel();
    server.await.expect("server stops");
}

#[tokio::test]
async fn commands_out_of_order_are_refused_and_a_session_can_go_on() {
    let (answer, mails) = talk(
        b"MAIL FROM:<a@b>\r\nEHLO x\r\nRCPT TO:<c@d>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n\
          RCPT TO:<>\r\nRCPT TO:<c@d>\r\nRSET\r\nDATA\r\nNOOP\r\nFROB\r\nMAIL FROM:<>\r\nRCPT to: <c@d>\r\n\
          DATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    )
    .await;
    let codes: Vec<&str> = answer.lines().map(|l| &l[..4]).collect();
    assert_eq!(
        codes,
        [
            "220 ", "503 ", "250-", "250-", "250-", "250 ", "503 ", "503 ", "250 ", "503 ", "501 ", "250 ", "250 ",
            "503 ", "250 ", "502 ", "250 ", "250 ", "354 ", "250 ", "221 "
        ],
        "{answer}"
    );
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "");
    assert_eq!(mails[0].subject(), "hi");
    assert_eq!(mails[0].data, b"Subject: hi\r\n\r\n.dot\r\n");
}

#[tokio::test]
async fn a_line_too_long_ends_the_session() {
    let mut input = b"EHLO x\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'a', MAX_LINE * 3));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let (answer, _) = talk(&input).await;
    assert!(answer.ends_with("500 5.5.2 line too long\r\n"), "{answer}");
    assert_eq!(
        answer.matches("250 ").count(),
        1,
        "nothing read after the long line: {answer}"
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_session_goes_on() {
    let mut input = b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    let line = [b'x'; 998];
    for _ in 0..(MAX_MESSAGE / 1000 + 10) {
        input.extend_from_slice(&line);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b".\r\nMAIL FROM:<a@b>\r\nQUIT\r\n");
    let (answer, mails) = talk(&input).await;
    assert!(
        answer.contains("552 5.3.4 message too big\r\n250 2.1.0 ok\r\n221"),
        "{answer}"
    );
    assert!(mails.is_empty());
}

#[tokio::test]
async fn too_many_errors_and_recipients_are_bounded() {
    let (answer, _) = talk(&b"FROB\r\n".repeat(20)).await;
    assert_eq!(answer.matches("502 ").count(), MAX_ERRORS - 1, "{answer}");
    assert!(answer.ends_with("421 4.7.0 too many errors\r\n"), "{answer}");
    let mut input = b"HELO x\r\nMAIL FROM:<a@b>\r\n".to_vec();
    for i in 0..=MAX_RECIPIENTS {
        input.extend_from_slice(format!("RCPT TO:<r{i}@d>\r\n").as_bytes());
    }
    let (answer, _) = talk(&input).await;
    assert_eq!(answer.matches("250 2.1.5").count(), MAX_RECIPIENTS);
    assert!(answer.ends_with("452 4.5.3 too many recipients\r\n"), "{answer}");
}

#[test]
fn headers_are_unfolded_and_encoded_words_decoded() {
    let mail = Mail {
        from: String::new(),
        to: Vec::new(),
        data: b"To: a@b\r\nSubject: =?utf-8?b?wrBD?= =?utf-8?q?_and_=C2=B0F?=\r\n  folded\r\n\r\nSubject: body"
            .to_vec(),
    };
    assert_eq!(mail.subject(), "°C and °F folded");
    assert_eq!(mail.header("TO").as_deref(), Some("a@b"));
    assert_eq!(
        decode_words("=?latin1?q?x?= plain =?utf-8?b?!!?="),
        "=?latin1?q?x?= plain =?utf-8?b?!!?="
    );
}
