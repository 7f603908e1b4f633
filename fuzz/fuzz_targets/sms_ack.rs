//! Inbound SMS: the `ACK <id> [comment]` reply parser (`notify::inbound::parse_ack`) and
//! the GSM modem's side of it, the AT answer reader (`notify::modem::at::AtPort`) with
//! the `+CMGL` listing parser.
//!
//! Input: one byte that chooses how the modem's answer is cut into reads, then the
//! bytes the modem answers to `AT+CMGL="REC UNREAD"`:
//!
//! ```text
//! 3
//! +CMGL: 1,"REC UNREAD","+15551230001",,"26/11/23,08:00:00+04"
//! ACK 12 topped up
//!
//! OK
//! ```
//!
//! Checked:
//! - the answer gives the same lines however the serial line cuts it into reads;
//! - every listed message comes from its own `+CMGL:` header;
//! - every line that parses as an ACK round-trips (`ACK <id> <comment>` gives the same
//!   reply);
//! - `ACK <id> <comment>` gives the id it was written with and the comment, trimmed;
//! - an `ACK <id> <comment>` sent through a well-formed listing, cut anywhere, arrives
//!   with its index, sender, id and comment.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use cryowatch::notify::inbound::{AckReply, parse_ack};
use cryowatch::notify::modem::at::{AtPort, Listed, parse_cmgl};
use cryowatch::notify::modem::gsm7;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CMGL: &str = "AT+CMGL=\"REC UNREAD\"";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
});

/// The modem's side of the serial line: serves `data` in reads of the sizes `cut`
/// chooses, then end of file; takes every write.
struct Line<'a> {
    data: &'a [u8],
    pos: usize,
    cut: u32,
}

impl Line<'_> {
    fn next_len(&mut self) -> usize {
        if self.cut == 0 {
            return usize::MAX;
        }
        // A small linear congruential sequence: reads of 1 to 8 bytes.
        self.cut = self.cut.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (self.cut >> 16) as usize % 8
    }
}

impl AsyncRead for Line<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = self.next_len().min(self.data.len() - self.pos).min(buf.remaining());
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Line<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `AT+CMGL` answered with `answer`, read in pieces chosen by `cut` (0: all at once).
fn list(answer: &[u8], cut: u32) -> Result<Vec<Vec<u8>>, String> {
    let mut port = AtPort::new(Line {
        data: answer,
        pos: 0,
        cut,
    });
    RUNTIME
        .block_on(port.command(CMGL, Duration::from_secs(10)))
        .map_err(|e| e.to_string())
}

/// What a parsed ACK promises.
fn check_ack(text: &str, reply: &AckReply) {
    assert!(reply.alarm >= 0, "{text:?} gave alarm {}", reply.alarm);
    assert!(
        text.contains(&reply.alarm.to_string()),
        "{text:?} gave alarm {}",
        reply.alarm
    );
    assert_eq!(reply.comment, reply.comment.trim(), "{text:?}: comment not trimmed");
    // Written back the way people type it, it reads the same.
    for form in [
        format!("ACK {} {}", reply.alarm, reply.comment),
        format!("  ack #{}  {} ", reply.alarm, reply.comment),
    ] {
        assert_eq!(parse_ack(&form).as_ref(), Some(reply), "{form:?} (from {text:?})");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, answer)) = data.split_first() else {
        return;
    };

    // Every line on its own, as an SMS text.
    let lossy = String::from_utf8_lossy(answer);
    for line in lossy.split(['\r', '\n']) {
        if let Some(reply) = parse_ack(line) {
            check_ack(line, &reply);
        }
    }

    // The whole input as the modem's answer: the same lines however it is cut.
    let whole = list(answer, 0);
    let cut_up = list(answer, u32::from(cut) + 1);
    assert_eq!(whole, cut_up, "the answer depends on how the line cut it (cut {cut})");
    if let Ok(lines) = &whole {
        let headers = lines.iter().filter(|l| l.starts_with(b"+CMGL:")).count();
        let listed = parse_cmgl(lines);
        assert!(
            listed.len() <= headers,
            "{} messages from {headers} headers",
            listed.len()
        );
        for m in &listed {
            if let Some(reply) = parse_ack(&m.text) {
                check_ack(&m.text, &reply);
            }
        }
    }

    // An ACK with the first line as its comment, through a well-formed listing.
    let first = lossy.lines().next().unwrap_or_default();
    let id = i64::from(u32::from_le_bytes([cut, answer.len() as u8, 7, 0]));
    let comment = first.trim();
    let text = format!("ACK {id} {comment}");
    assert_eq!(
        parse_ack(&text),
        Some(AckReply {
            alarm: id,
            comment: comment.to_string()
        }),
        "{text:?}"
    );
    let sendable = gsm7::to_gsm7(&text);
    let index = u32::from(cut) * 3;
    let mut listing =
        format!("\r\n+CMGL: {index},\"REC UNREAD\",\"+41791234567\",,\"26/11/23,08:00:00+04\"\r\n").into_bytes();
    listing.extend(gsm7::encode(&sendable));
    listing.extend(b"\r\n\r\nOK\r\n");
    for cut in [0, u32::from(cut) + 1] {
        let lines = list(&listing, cut).unwrap_or_else(|e| panic!("{listing:?}: {e}"));
        let got = parse_cmgl(&lines);
        assert_eq!(
            got,
            [Listed {
                index,
                status: "REC UNREAD".into(),
                from: "+41791234567".into(),
                timestamp: "26/11/23,08:00:00+04".into(),
                text: sendable.clone(),
            }],
            "{listing:?} cut {cut}"
        );
    }
});
