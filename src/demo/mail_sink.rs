//! The demo's mail sink: a small SMTP receiver (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT) on a loopback port. The demo's email channel delivers to it through
//! the same SMTP client as a real server, and every message it accepts goes to the demo,
//! which prints and keeps it. It relays nothing. Lines, messages, recipients, sessions and
//! idle time are bounded, so a confused or hostile client costs little.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// The longest line taken, CRLF included (RFC 5321 4.5.3.1.6).
pub const MAX_LINE: usize = 1000;
/// The largest message taken; a larger one is refused with 552 once its end is read.
pub const MAX_MESSAGE: usize = 1 << 20;
/// The most recipients of one message.
pub const MAX_RECIPIENTS: usize = 100;
/// A client silent this long is disconnected.
const IDLE: Duration = Duration::from_secs(60);
/// Sessions served at once; more are told to come back later (421).
const MAX_SESSIONS: usize = 16;
/// Refused commands before a session is closed.
const MAX_ERRORS: usize = 10;

/// A message as received: the envelope and the raw text (headers and body).
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Mail {
    /// The header `name` (case-insensitive), unfolded, encoded words (RFC 2047) decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let head = head.split("\n\n").next().unwrap_or("");
        let mut found: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with([' ', '\t']) {
                if let Some(f) = found.as_mut() {
                    f.push(' ');
                    f.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_string());
            }
        }
        found.map(|v| decode_words(&v))
    }

    pub fn subject(&self) -> String {
        self.header("subject").unwrap_or_default()
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); anything it
/// cannot decode is left as written. Blanks between two encoded words are dropped.
pub fn decode_words(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let decoded = word[2..].split_once("?=").and_then(|(inner, tail)| {
            let mut parts = inner.splitn(3, '?');
            let (charset, enc, payload) = (parts.next()?, parts.next()?, parts.next()?);
            let charset = charset.to_ascii_lowercase();
            if charset != "utf-8" && charset != "us-ascii" {
                return None;
            }
            let bytes = match enc {
                "b" | "B" => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(payload).ok()?
                }
                "q" | "Q" => q_decode(payload)?,
                _ => return None,
            };
            Some((String::from_utf8(bytes).ok()?, tail))
        });
        match decoded {
            Some((d, tail)) => {
                if !(after_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&d);
                rest = tail;
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &word[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

fn q_decode(payload: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len());
    let mut bytes = payload.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

/// Binds a free loopback port.
pub async fn bind() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0)).await
}

/// Accepts sessions on `listener` until `shutdown`; each accepted message goes to `mail`.
pub async fn serve(listener: TcpListener, mail: mpsc::Sender<Mail>, shutdown: CancellationToken) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "mail sink: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            let _ = stream.write_all(b"421 4.3.2 too many connections, try later\r\n").await;
            continue;
        };
        let (mail, shutdown) = (mail.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                r = session(stream, &mail) => if let Err(e) = r {
                    tracing::debug!(error = %e, "mail sink: session ended");
                },
            }
        });
    }
}

/// One SMTP session on `stream`, from the greeting to QUIT (or an error, or silence).
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, mail: &mpsc::Sender<Mail>) -> io::Result<()> {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut state = Session::default();
    w.write_all(b"220 cryowatch-demo mail sink ESMTP\r\n").await?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let mut limited = (&mut r).take(MAX_LINE as u64);
        let n = tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut line))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client silent"))??;
        if n == 0 || !line.ends_with(b"\n") {
            if n == MAX_LINE {
                w.write_all(b"500 5.5.2 line too long\r\n").await?;
            }
            return Ok(());
        }
        let reply = match state.input(&line) {
            Step::Quiet => continue,
            Step::Reply(text) => text,
            Step::Close(text) => {
                w.write_all(text.as_bytes()).await?;
                return Ok(());
            }
            Step::Deliver(m) => match mail.send(m).await {
                Ok(()) => "250 2.0.0 accepted\r\n".to_string(),
                Err(_) => "451 4.3.0 the mail sink is stopping\r\n".to_string(),
            },
        };
        w.write_all(reply.as_bytes()).await?;
    }
}

/// What to do with one line.
#[derive(Debug, PartialEq)]
enum Step {
    Reply(String),
    /// A line of a message being received: no answer.
    Quiet,
    /// The end of a message: hand it on, then answer.
    Deliver(Mail),
    /// Answer, then close.
    Close(String),
}

/// The protocol state of one session, without I/O.
#[derive(Debug, Default)]
struct Session {
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
    /// Set between DATA and the final dot.
    data: Option<Vec<u8>>,
    too_big: bool,
    errors: usize,
}

fn reply(s: &str) -> Step {
    Step::Reply(format!("{s}\r\n"))
}

impl Session {
    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
        self.data = None;
        self.too_big = false;
    }

    fn input(&mut self, line: &[u8]) -> Step {
        if let Some(data) = self.data.as_mut() {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if bare == b"." {
                let mail = Mail {
                    from: self.from.take().unwrap_or_default(),
                    to: std::mem::take(&mut self.to),
                    data: self.data.take().unwrap_or_default(),
                };
                let too_big = std::mem::take(&mut self.too_big);
                return if too_big {
                    reply("552 5.3.4 message too big")
                } else {
                    Step::Deliver(mail)
                };
            }
            // Dot-stuffing (4.5.2): a leading dot was doubled by the sender.
            let text = line.strip_prefix(b".").unwrap_or(line);
            if self.too_big || data.len() + text.len() > MAX_MESSAGE {
                self.too_big = true;
                data.clear();
            } else {
                data.extend_from_slice(text);
            }
            return Step::Quiet;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let step = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                self.reset();
                self.greeted = true;
                Step::Reply(format!(
                    "250-cryowatch-demo\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE}\r\n250 SMTPUTF8\r\n"
                ))
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                reply("250 cryowatch-demo")
            }
            "MAIL" if !self.greeted => reply("503 5.5.1 say EHLO first"),
            "MAIL" if self.from.is_some() => reply("503 5.5.1 MAIL already given; RSET first"),
            "MAIL" => match path(arg, "FROM:") {
                Some(from) => {
                    self.from = Some(from);
                    reply("250 2.1.0 ok")
                }
                None => reply("501 5.5.4 syntax: MAIL FROM:<address>"),
            },
            "RCPT" if self.from.is_none() => reply("503 5.5.1 MAIL first"),
            "RCPT" if self.to.len() >= MAX_RECIPIENTS => reply("452 4.5.3 too many recipients"),
            "RCPT" => match path(arg, "TO:").filter(|a| !a.is_empty()) {
                Some(to) => {
                    self.to.push(to);
                    reply("250 2.1.5 ok")
                }
                None => reply("501 5.5.4 syntax: RCPT TO:<address>"),
            },
            "DATA" if self.to.is_empty() => reply("503 5.5.1 RCPT first"),
            "DATA" => {
                self.data = Some(Vec::new());
                reply("354 end data with <CR><LF>.<CR><LF>")
            }
            "RSET" => {
                self.reset();
                reply("250 2.0.0 ok")
            }
            "NOOP" => reply("250 2.0.0 ok"),
            "QUIT" => return Step::Close("221 2.0.0 bye\r\n".into()),
            _ => reply("502 5.5.1 command not implemented"),
        };
        if matches!(&step, Step::Reply(r) if r.starts_with('5')) {
            self.errors += 1;
            if self.errors >= MAX_ERRORS {
                return Step::Close("421 4.7.0 too many errors\r\n".into());
            }
        }
        step
    }
}

/// The address of `FROM:<a@b> PARAMS` / `TO:<a@b>` (`key` case-insensitive); `""` for
/// the null path `<>`; `None` when malformed or holding control characters.
fn path(arg: &str, key: &str) -> Option<String> {
    let head = arg.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let rest = arg[key.len()..].trim_start().strip_prefix('<')?;
    let (addr, _params) = rest.split_once('>')?;
    (!addr.chars().any(char::is_control)).then(|| addr.to_string())
}

#[cfg(test)]
#[path = "mail_sink_tests.rs"]
mod tests;
