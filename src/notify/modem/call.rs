//! The wake-up call before a page's SMS (`ring = "20s"` on a `gsm_modem` channel): the
//! modem dials the contact as a voice call (`ATD<number>;`, the semicolon makes it
//! voice), lets it ring, and hangs up with `ATH`. Nothing is said on the line; the
//! phone ringing at night is the point, and it needs no internet.
//!
//! After `ATD`, GSM modems answer `OK` at once for a voice call (with `+COLP` off, the
//! default) and report the call's end later as a result line: `NO CARRIER`, `BUSY`,
//! `NO ANSWER`, `NO DIALTONE`. Some answer `BUSY` or `NO CARRIER` instead of `OK`. An
//! `OK` or `CONNECT` while ringing means the call was picked up. Whatever happened, `ATH`
//! follows, so no call is left up.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::at::{AtError, AtPort, Final, LineState, final_code, is_unsolicited};

/// A result line about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLine {
    /// `OK`: dialled (right after `ATD`), or picked up (while ringing).
    Ok,
    /// `CONNECT[ <rate>]`: picked up.
    Connect,
    /// The call ended or never started.
    Ended(Ended),
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <n>`.
    Cme(u16),
    /// `+CMS ERROR: <n>` (not expected after `ATD`, but a final result all the same).
    Cms(u16),
}

/// How the network ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    NoCarrier,
    Busy,
    NoAnswer,
    NoDialtone,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::NoCarrier => "no carrier",
            Ended::Busy => "busy",
            Ended::NoAnswer => "no answer",
            Ended::NoDialtone => "no dial tone",
        }
    }
}

/// `line` as a result about a call, if it is one.
pub fn call_line(line: &str) -> Option<CallLine> {
    let line = line.trim();
    let ended = match line.to_ascii_uppercase().as_str() {
        "NO CARRIER" => Some(Ended::NoCarrier),
        "BUSY" => Some(Ended::Busy),
        "NO ANSWER" => Some(Ended::NoAnswer),
        "NO DIALTONE" | "NO DIAL TONE" => Some(Ended::NoDialtone),
        l if l == "CONNECT" || l.starts_with("CONNECT ") => return Some(CallLine::Connect),
        _ => None,
    };
    if let Some(e) = ended {
        return Some(CallLine::Ended(e));
    }
    Some(match final_code(line)? {
        Final::Ok => CallLine::Ok,
        Final::Error => CallLine::Error,
        Final::Cme(n) => CallLine::Cme(n),
        Final::Cms(n) => CallLine::Cms(n),
    })
}

/// What became of a wake-up call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It rang for the whole time and was hung up.
    Rang(Duration),
    /// Someone picked up after this long; hung up then.
    Answered(Duration),
    /// The network ended it (or refused it) after this long.
    Ended(Ended, Duration),
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallOutcome::Rang(d) => write!(f, "call rang {:.1}s, hung up", d.as_secs_f64()),
            CallOutcome::Answered(d) => write!(f, "call answered after {:.1}s, hung up", d.as_secs_f64()),
            CallOutcome::Ended(e, d) => write!(f, "call {} after {:.1}s", e.as_str(), d.as_secs_f64()),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AtPort<S> {
    /// Dials `number` as a voice call, lets it ring for `ring` (or until it ends or is
    /// picked up) and hangs up with `ATH`. `limit`: for `ATD`'s first answer and for
    /// `ATH`. `ATH` is sent even after an error, unless the line itself failed.
    pub async fn ring(&mut self, number: &str, ring: Duration, limit: Duration) -> Result<CallOutcome, AtError> {
        let cmd = format!("ATD{number};");
        let result = self.ring_inner(&cmd, ring, limit).await;
        let result = self.note(result);
        if self.state() == LineState::Broken {
            return result;
        }
        let hung_up = self.command("ATH", limit).await;
        match (result, hung_up) {
            (Ok(outcome), Ok(_)) => Ok(outcome),
            (Ok(_), Err(err)) | (Err(err), _) => Err(err),
        }
    }

    async fn ring_inner(&mut self, cmd: &str, ring: Duration, limit: Duration) -> Result<CallOutcome, AtError> {
        let start = Instant::now();
        self.write_command(cmd).await?;
        let first = match tokio::time::timeout(limit, self.call_result(cmd)).await {
            Ok(line) => line?,
            Err(_) => {
                return Err(AtError::Timeout {
                    what: cmd.to_string(),
                    limit,
                });
            }
        };
        match first {
            CallLine::Ok => {}
            other => return outcome(other, cmd, start),
        }
        let left = ring.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, self.call_result(cmd)).await {
            Ok(line) => outcome(line?, cmd, start),
            Err(_) => Ok(CallOutcome::Rang(start.elapsed())),
        }
    }

    /// The next result line about the call; echo, unsolicited codes (`RING`, `+CLCC:`
    /// lines are not asked for) and anything else are skipped.
    async fn call_result(&mut self, cmd: &str) -> Result<CallLine, AtError> {
        loop {
            let line = self.next_line(false).await?;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.eq_ignore_ascii_case(cmd) || is_unsolicited(text) {
                continue;
            }
            if let Some(result) = call_line(text) {
                return Ok(result);
            }
        }
    }
}

fn outcome(line: CallLine, cmd: &str, start: Instant) -> Result<CallOutcome, AtError> {
    match line {
        CallLine::Ok | CallLine::Connect => Ok(CallOutcome::Answered(start.elapsed())),
        CallLine::Ended(e) => Ok(CallOutcome::Ended(e, start.elapsed())),
        CallLine::Error => Err(AtError::Error(cmd.to_string())),
        CallLine::Cme(n) => Err(AtError::Cme(n)),
        CallLine::Cms(n) => Err(AtError::Cms(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_progress_lines_are_told_apart_from_other_lines() {
        assert_eq!(call_line("OK"), Some(CallLine::Ok));
        assert_eq!(call_line(" NO CARRIER "), Some(CallLine::Ended(Ended::NoCarrier)));
        assert_eq!(call_line("BUSY"), Some(CallLine::Ended(Ended::Busy)));
        assert_eq!(call_line("NO ANSWER"), Some(CallLine::Ended(Ended::NoAnswer)));
        assert_eq!(call_line("NO DIALTONE"), Some(CallLine::Ended(Ended::NoDialtone)));
        assert_eq!(call_line("CONNECT 9600"), Some(CallLine::Connect));
        assert_eq!(call_line("CONNECT"), Some(CallLine::Connect));
        assert_eq!(call_line("ERROR"), Some(CallLine::Error));
        assert_eq!(call_line("+CME ERROR: 30"), Some(CallLine::Cme(30)));
        assert_eq!(call_line("+COLP: \"+15551230001\",145"), None);
        assert_eq!(call_line("CONNECTED"), None);
        assert_eq!(call_line("RING"), None);
    }

    #[test]
    fn outcomes_read_as_what_happened_to_the_call() {
        assert_eq!(
            CallOutcome::Rang(Duration::from_millis(20_040)).to_string(),
            "call rang 20.0s, hung up"
        );
        assert_eq!(
            CallOutcome::Ended(Ended::Busy, Duration::from_millis(310)).to_string(),
            "call busy after 0.3s"
        );
        assert_eq!(
            CallOutcome::Answered(Duration::from_secs(4)).to_string(),
            "call answered after 4.0s, hung up"
        );
    }

    #[tokio::test]
    async fn a_call_rings_its_time_then_is_hung_up_with_ath() {
        let (ours, mut modem) = tokio::io::duplex(1024);
        let mut port = AtPort::new(ours);
        let peer = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"ATD+15551230001;\r") {
                let n = modem.read(&mut buf).await.expect("read ATD");
                got.extend_from_slice(&buf[..n]);
            }
            modem.write_all(b"\r\nOK\r\n\r\nRING\r\n").await.expect("write OK");
            while !got.ends_with(b"ATH\r") {
                let n = modem.read(&mut buf).await.expect("read ATH");
                got.extend_from_slice(&buf[..n]);
            }
            modem.write_all(b"\r\nOK\r\n").await.expect("write OK");
        });
        let t0 = Instant::now();
        let outcome = port
            .ring("+15551230001", Duration::from_millis(300), Duration::from_secs(2))
            .await
            .expect("call");
        assert!(
            matches!(outcome, CallOutcome::Rang(d) if d >= Duration::from_millis(300)),
            "{outcome:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        peer.await.expect("peer");
        assert_eq!(port.state(), LineState::InSync);
    }

    #[tokio::test]
    async fn a_busy_callee_ends_the_call_at_once_and_it_is_still_hung_up() {
        let (ours, mut modem) = tokio::io::duplex(1024);
        let mut port = AtPort::new(ours);
        let peer = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b";\r") {
                let n = modem.read(&mut buf).await.expect("read ATD");
                got.extend_from_slice(&buf[..n]);
            }
            modem.write_all(b"\r\nBUSY\r\n").await.expect("write BUSY");
            while !got.ends_with(b"ATH\r") {
                let n = modem.read(&mut buf).await.expect("read ATH");
                got.extend_from_slice(&buf[..n]);
            }
            modem.write_all(b"\r\nOK\r\n").await.expect("write OK");
        });
        let outcome = port
            .ring("+15551230001", Duration::from_secs(30), Duration::from_secs(2))
            .await
            .expect("call");
        assert!(matches!(outcome, CallOutcome::Ended(Ended::Busy, _)), "{outcome:?}");
        peer.await.expect("peer");
    }
}
