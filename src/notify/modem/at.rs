//! The AT command conversation (3GPP TS 27.007 and 27.005, text mode) over any byte
//! stream, and pure parsers for what the modem answers.
//!
//! [`AtPort`] writes one command, reads lines until a final result code (`OK`, `ERROR`,
//! `+CMS ERROR: n`, `+CME ERROR: n`) and returns the intermediate lines. Echoed
//! commands, blank lines and unsolicited result codes (`+CMTI: ...`, `RING`) in between
//! are skipped. Every wait has a limit; a timeout leaves the line out of step (a late
//! answer may still arrive), which [`AtPort::state`] reports so the caller can
//! resynchronise with [`AtPort::resync`] before the next command.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codes::{cme_error, cms_error};
use super::gsm7;

/// Ctrl-Z: ends the text of `AT+CMGS` and submits it.
const CTRL_Z: u8 = 0x1A;
/// ESC: cancels text entry; also clears a half-typed command line on most modems.
const ESC: u8 = 0x1B;
/// A modem never sends this much without a line end; something is wrong with the line.
const MAX_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error("cannot open the serial port: {0}")]
    Open(String),
    #[error("serial line failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer to {what} within {limit:?}")]
    Timeout { what: String, limit: Duration },
    #[error("the modem answered ERROR to {0}")]
    Error(String),
    #[error("+CMS ERROR: {0} ({reason})", reason = cms_error(*.0).1)]
    Cms(u16),
    #[error("+CME ERROR: {0} ({reason})", reason = cme_error(*.0).1)]
    Cme(u16),
    #[error("unexpected answer to {what}: {answer:?}")]
    Unexpected { what: String, answer: String },
}

impl AtError {
    /// Whether a later attempt through the same modem may succeed.
    pub fn retry(&self) -> bool {
        match self {
            AtError::Cms(code) => cms_error(*code).0,
            AtError::Cme(code) => cme_error(*code).0,
            _ => true,
        }
    }
}

/// How far the line can be trusted after the last exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// Every answer so far was read up to its final result code.
    InSync,
    /// A wait timed out: a late answer may still come, or the modem is still in text entry.
    OutOfStep,
    /// Reading or writing failed: reopen the port.
    Broken,
}

/// A final result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Ok,
    Error,
    Cms(u16),
    Cme(u16),
}

/// `line` as a final result code, if it is one. Verbose codes (`+CMS ERROR: network
/// timeout`, after `AT+CMEE=2`) count as code 500 / 100, "unknown".
pub fn final_code(line: &str) -> Option<Final> {
    let line = line.trim();
    if line == "OK" {
        return Some(Final::Ok);
    }
    if line == "ERROR" {
        return Some(Final::Error);
    }
    if let Some(rest) = line.strip_prefix("+CMS ERROR:") {
        return Some(Final::Cms(rest.trim().parse().unwrap_or(500)));
    }
    if let Some(rest) = line.strip_prefix("+CME ERROR:") {
        return Some(Final::Cme(rest.trim().parse().unwrap_or(100)));
    }
    None
}

/// `+CMGS: <mr>`: the message reference of a submitted message.
pub fn parse_cmgs(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("+CMGS:")?;
    rest.split(',').next()?.trim().parse().ok()
}

/// `+CSQ: <rssi>,<ber>`: rssi 0–31, `None` for 99 (not known or not detectable).
pub fn parse_csq(line: &str) -> Option<Option<u8>> {
    let rest = line.trim().strip_prefix("+CSQ:")?;
    let rssi: u8 = rest.split(',').next()?.trim().parse().ok()?;
    match rssi {
        0..=31 => Some(Some(rssi)),
        99 => Some(None),
        _ => None,
    }
}

/// `+CREG: <n>,<stat>[,...]` (the answer to `AT+CREG?`) or `+CREG: <stat>` (the
/// unsolicited form): the registration status.
pub fn parse_creg(line: &str) -> Option<u8> {
    let fields = split_fields(line.trim().strip_prefix("+CREG:")?);
    let stat = if fields.len() >= 2 { &fields[1] } else { fields.first()? };
    stat.trim().parse().ok()
}

/// Comma-separated fields, with double-quoted fields unquoted (commas inside quotes
/// belong to the field, as in the timestamp `"26/11/23,08:00:00+04"`).
pub fn split_fields(s: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    for c in s.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            _ => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// One message from `AT+CMGL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub index: u32,
    pub status: String,
    pub from: String,
    /// The service centre timestamp as the modem reports it, `yy/MM/dd,hh:mm:ss±zz`.
    pub timestamp: String,
    pub text: String,
}

/// The messages in an `AT+CMGL` answer: each `+CMGL: <index>,<stat>,<oa>,[<alpha>],
/// [<scts>][,...]` header line and the text line(s) after it, as [`AtPort::command`]
/// returns them. Lines before the first header (unsolicited codes) are ignored;
/// headers that do not parse drop their message.
pub fn parse_cmgl(lines: &[Vec<u8>]) -> Vec<Listed> {
    let mut out: Vec<Option<Listed>> = Vec::new();
    for line in lines {
        let text = String::from_utf8_lossy(line);
        if let Some(rest) = text.strip_prefix("+CMGL:") {
            let f = split_fields(rest);
            let index = f.first().and_then(|i| i.parse().ok());
            out.push(index.map(|index| Listed {
                index,
                status: f.get(1).cloned().unwrap_or_default(),
                from: f.get(2).cloned().unwrap_or_default(),
                timestamp: f.get(4).cloned().unwrap_or_default(),
                text: String::new(),
            }));
        } else if let Some(Some(msg)) = out.last_mut() {
            if !msg.text.is_empty() {
                msg.text.push('\n');
            }
            msg.text.push_str(&gsm7::decode(line));
        }
    }
    out.into_iter().flatten().collect()
}

/// One AT conversation partner on a byte stream (a serial port, or a duplex pipe in tests).
pub struct AtPort<S> {
    io: S,
    buf: Vec<u8>,
    state: LineState,
    /// The last line ended with a CR that was the last byte read: its LF may follow.
    lf_owed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AtPort<S> {
    pub fn new(io: S) -> AtPort<S> {
        AtPort {
            io,
            buf: Vec::new(),
            state: LineState::InSync,
            lf_owed: false,
        }
    }

    pub fn state(&self) -> LineState {
        self.state
    }

    /// Records what a failure says about the line.
    pub(super) fn note<T>(&mut self, result: Result<T, AtError>) -> Result<T, AtError> {
        match &result {
            Err(AtError::Io(_)) => self.state = LineState::Broken,
            Err(AtError::Timeout { .. } | AtError::Unexpected { .. }) if self.state == LineState::InSync => {
                self.state = LineState::OutOfStep;
            }
            _ => {}
        }
        result
    }

    /// Sends ESC (ending any text entry without sending), then discards whatever
    /// arrives until the line has been quiet for `quiet` (at most 10 × `quiet`).
    /// The state becomes [`LineState::InSync`]: the next command's answer is its own.
    pub async fn resync(&mut self, quiet: Duration) -> Result<(), AtError> {
        let result = self.resync_inner(quiet).await;
        if result.is_ok() {
            self.state = LineState::InSync;
        }
        self.note(result)
    }

    async fn resync_inner(&mut self, quiet: Duration) -> Result<(), AtError> {
        self.io.write_all(&[ESC]).await?;
        self.io.flush().await?;
        let deadline = tokio::time::Instant::now() + quiet * 10;
        while tokio::time::Instant::now() < deadline {
            self.buf.clear();
            match tokio::time::timeout(quiet, self.io.read_buf(&mut self.buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err(eof()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Sends `cmd` and returns the lines before its `OK`. Other final result codes are
    /// errors; no final result within `limit` is [`AtError::Timeout`].
    pub async fn command(&mut self, cmd: &str, limit: Duration) -> Result<Vec<Vec<u8>>, AtError> {
        let result = async {
            self.write_command(cmd).await?;
            self.answer(cmd, limit).await
        }
        .await;
        self.note(result)
    }

    /// Writes `cmd` and its CR.
    pub(super) async fn write_command(&mut self, cmd: &str) -> Result<(), AtError> {
        tracing::trace!(cmd, "modem command");
        self.io.write_all(cmd.as_bytes()).await?;
        self.io.write_all(b"\r").await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Sends `AT+CMGS="<to>"`, waits for the `> ` prompt, writes `text` and Ctrl-Z and
    /// returns the message reference from `+CMGS: <mr>`. Without a prompt in time, ESC
    /// is sent so the modem does not take the next command as message text.
    pub async fn send_sms(&mut self, to: &str, text: &[u8], limits: (Duration, Duration)) -> Result<u16, AtError> {
        let cmd = format!("AT+CMGS=\"{to}\"");
        tracing::trace!(cmd, "modem command");
        let result = async {
            self.io.write_all(cmd.as_bytes()).await?;
            self.io.write_all(b"\r").await?;
            self.io.flush().await?;
            match tokio::time::timeout(limits.0, self.prompt(&cmd)).await {
                Ok(r) => r?,
                Err(_) => {
                    self.io.write_all(&[ESC]).await?;
                    return Err(AtError::Timeout {
                        what: format!("{cmd} (the > prompt)"),
                        limit: limits.0,
                    });
                }
            }
            self.io.write_all(text).await?;
            self.io.write_all(&[CTRL_Z]).await?;
            self.io.flush().await?;
            let lines = self.answer(&cmd, limits.1).await?;
            lines
                .iter()
                .find_map(|l| parse_cmgs(&String::from_utf8_lossy(l)))
                .ok_or_else(|| AtError::Unexpected {
                    what: cmd.clone(),
                    answer: "OK without +CMGS: <reference>".into(),
                })
        }
        .await;
        self.note(result)
    }

    /// Reads the answer to `cmd` up to its final result code, within `limit`.
    async fn answer(&mut self, cmd: &str, limit: Duration) -> Result<Vec<Vec<u8>>, AtError> {
        match tokio::time::timeout(limit, self.collect(cmd)).await {
            Ok(r) => r,
            Err(_) => Err(AtError::Timeout {
                what: cmd.to_string(),
                limit,
            }),
        }
    }

    async fn collect(&mut self, cmd: &str) -> Result<Vec<Vec<u8>>, AtError> {
        let mut lines = Vec::new();
        // The line after a `+CMGL:` header is message text, whatever it says ("OK" too).
        let mut text_next = false;
        loop {
            let line = self.next_line(text_next).await?;
            if text_next {
                lines.push(line);
                text_next = false;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.eq_ignore_ascii_case(cmd) || is_unsolicited(text) {
                continue;
            }
            match final_code(text) {
                Some(Final::Ok) => return Ok(lines),
                Some(other) => return Err(error_of(other, cmd)),
                None => {}
            }
            text_next = text.starts_with("+CMGL:");
            lines.push(line);
        }
    }

    /// Waits for `>` at the start of a line; a final result code instead is the error.
    async fn prompt(&mut self, cmd: &str) -> Result<(), AtError> {
        loop {
            let start = self.buf.iter().position(|b| !matches!(b, b'\r' | b'\n'));
            if let Some(s) = start
                && self.buf[s] == b'>'
            {
                let end = if self.buf.get(s + 1) == Some(&b' ') {
                    s + 2
                } else {
                    s + 1
                };
                self.buf.drain(..end);
                return Ok(());
            }
            if let Some(line) = self.take_line(false) {
                let text = String::from_utf8_lossy(&line);
                match final_code(&text) {
                    Some(Final::Ok) => {
                        return Err(AtError::Unexpected {
                            what: cmd.to_string(),
                            answer: "OK instead of the > prompt".into(),
                        });
                    }
                    Some(other) => return Err(error_of(other, cmd)),
                    None => continue,
                }
            }
            self.fill().await?;
        }
    }

    /// The next line. `raw`: the bytes up to the next CRLF as they are (message text,
    /// possibly empty or holding a lone LF); otherwise the next non-empty line ended by
    /// CR or LF.
    pub(super) async fn next_line(&mut self, raw: bool) -> Result<Vec<u8>, AtError> {
        loop {
            if let Some(line) = self.take_line(raw) {
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    fn take_line(&mut self, raw: bool) -> Option<Vec<u8>> {
        if raw {
            // A header's CRLF may have been split across reads: its LF is still here.
            // Any other leading LF belongs to the text.
            let from = usize::from(self.lf_owed && self.buf.first() == Some(&b'\n'));
            let end = self.buf[from..].windows(2).position(|w| w == b"\r\n")? + from;
            let line = self.buf[from..end].to_vec();
            self.buf.drain(..end + 2);
            self.lf_owed = false;
            return Some(line);
        }
        let Some(start) = self.buf.iter().position(|b| !matches!(b, b'\r' | b'\n')) else {
            self.buf.clear();
            return None;
        };
        self.buf.drain(..start);
        let end = self.buf.iter().position(|b| matches!(b, b'\r' | b'\n'))?;
        let line = self.buf[..end].to_vec();
        let skip = if self.buf[end..].starts_with(b"\r\n") { 2 } else { 1 };
        self.lf_owed = self.buf[end] == b'\r' && end + 1 == self.buf.len();
        self.buf.drain(..end + skip);
        Some(line)
    }

    async fn fill(&mut self) -> Result<(), AtError> {
        if self.buf.len() > MAX_BUFFER {
            self.buf.clear();
            return Err(AtError::Unexpected {
                what: "a line".into(),
                answer: format!("more than {MAX_BUFFER} bytes without a line end"),
            });
        }
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(eof());
        }
        Ok(())
    }
}

fn eof() -> AtError {
    AtError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the serial line was closed",
    ))
}

fn error_of(code: Final, cmd: &str) -> AtError {
    match code {
        Final::Cms(n) => AtError::Cms(n),
        Final::Cme(n) => AtError::Cme(n),
        Final::Ok | Final::Error => AtError::Error(cmd.to_string()),
    }
}

/// Unsolicited result codes a modem may send between answers.
pub(super) fn is_unsolicited(line: &str) -> bool {
    [
        "+CMTI:",
        "+CDSI:",
        "+CBM:",
        "+CMT:",
        "RING",
        "+CRING:",
        "+CIEV:",
        "^",
        "+CPIN: READY",
        "Call Ready",
        "SMS Ready",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

#[cfg(test)]
mod tests;
