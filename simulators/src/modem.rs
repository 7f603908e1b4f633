//! A fake GSM modem on a serial line (one end of a socat pty pair), speaking the AT
//! commands of 3GPP TS 27.007 / 27.005 text mode that an SMS sender needs:
//!
//! `AT`, `ATE0`/`ATE1`, `ATZ`, `ATI`, `AT+CMEE=n`, `AT+CMGF=0|1`, `AT+CSCS="GSM"|"IRA"`,
//! `AT+CSQ`, `AT+CREG?`, `AT+CMGS="<number>"` (prompt `> `, text, Ctrl-Z submits, ESC
//! cancels), `AT+CMGL="REC UNREAD"|"REC READ"|"ALL"`, `AT+CMGR=<i>`, `AT+CMGD=<i>[,<flag>]`,
//! `AT+CNMI=...`, `ATD<number>;` (a voice call: `OK`, then `NO CARRIER` when the call
//! ends by itself; `BUSY` instead of `OK` when the callee is busy) and `ATH` (hang up,
//! `OK`). Anything else answers `ERROR`. Like a real modem it starts with echo
//! on and in PDU mode, so a sender must initialise it. Text is in the GSM 7-bit
//! alphabet, one byte per septet (`AT+CSCS="GSM"`), or ASCII (`"IRA"`). A submission of
//! more than 160 septets answers `+CMS ERROR: 305`.
//!
//! Every submitted message is recorded as one JSON line, `{"to":"+1555…","text":"…","ref":7}`,
//! and every call once it ended as one line
//! `{"call":"+1555…","dialled_ms":…,"ended_ms":…,"ended_by":"ATH"|"NO CARRIER"|"BUSY"}`
//! (milliseconds since the Unix epoch), in the order they happened.
//!
//! The control port (TCP, one command per line, one answer line per command):
//!
//! ```text
//! sms <from> <text...>   -> ok <index>   queue an inbound SMS; AT+CMGL lists it, +CMTI announces it
//! fail <count> <code>    -> ok           the next <count> submissions answer +CMS ERROR: <code>
//! silent on|off          -> ok           on: answer nothing; off: back as after a restart
//!                                        (echo on, PDU mode), messages kept
//! network <state>        -> ok           home | roaming | searching | denied | none | <stat>;
//!                                        unregistered, submissions answer +CMS ERROR: 331
//! signal <rssi>          -> ok           AT+CSQ rssi, 0-31 or 99
//! call_end <ms>|never|busy -> ok         a dialled call ends by itself with NO CARRIER
//!                                        <ms> after dialling, rings until ATH (never,
//!                                        the default), or ATD answers BUSY
//! sent                   -> [{"to":..,"text":..,"ref":..},...]
//! calls                  -> [{"call":..,"dialled_ms":..,"ended_ms":..,"ended_by":..},...]
//! inbox                  -> [{"index":..,"from":..,"text":..,"status":..},...]
//! help                   -> the commands
//! ```

mod call;
mod control;
mod gsm;
mod serve;

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde_json::json;

pub use call::{Call, CallEnd};
pub use gsm::{gsm_decode, gsm_encode};
pub use serve::{ModemConfig, ModemSim};

const CTRL_Z: u8 = 0x1A;
const ESC: u8 = 0x1B;
const SMS_MAX: usize = 160;
const MAX_LINE: usize = 4096;

/// A message submitted through the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub to: String,
    pub text: String,
    pub reference: u8,
}

impl SentSms {
    pub fn json(&self) -> serde_json::Value {
        json!({"to": self.to, "text": self.text, "ref": self.reference})
    }
}

#[derive(Debug, Clone)]
struct Stored {
    from: String,
    text: String,
    timestamp: String,
    read: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Command,
    Text { to: String },
}

/// What feeding bytes to the modem produced.
#[derive(Debug, Default)]
pub struct Fed {
    /// Bytes to write back on the serial line.
    pub output: Vec<u8>,
    /// Messages submitted by these bytes.
    pub sent: Vec<SentSms>,
    /// Calls that ended (hung up, or busy) by these bytes or this moment.
    pub calls: Vec<Call>,
}

/// The modem's state machine: bytes in, bytes out. No I/O.
#[derive(Debug)]
pub struct Modem {
    echo: bool,
    text_mode: bool,
    ira: bool,
    entry: Entry,
    line: Vec<u8>,
    next_ref: u8,
    silent: bool,
    failures: VecDeque<u16>,
    creg: u8,
    rssi: u8,
    inbox: BTreeMap<u32, Stored>,
    sent: Vec<SentSms>,
    urcs: Vec<u8>,
    calls: Vec<Call>,
    call_end: CallEnd,
}

impl Default for Modem {
    fn default() -> Self {
        Modem {
            echo: true,
            text_mode: false,
            ira: false,
            entry: Entry::Command,
            line: Vec::new(),
            next_ref: 1,
            silent: false,
            failures: VecDeque::new(),
            creg: 1,
            rssi: 21,
            inbox: BTreeMap::new(),
            sent: Vec::new(),
            urcs: Vec::new(),
            calls: Vec::new(),
            call_end: CallEnd::default(),
        }
    }
}

fn response(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `yy/MM/dd,hh:mm:ss+00` (UTC) for a service centre timestamp.
fn sc_timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{:02}/{m:02}/{d:02},{:02}:{:02}:{:02}+00",
        y % 100,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Modem {
    /// Bytes arriving on the serial line.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        self.feed_at(input, SystemTime::now())
    }

    /// Bytes arriving on the serial line at `now`.
    pub fn feed_at(&mut self, input: &[u8], now: SystemTime) -> Fed {
        let mut fed = Fed::default();
        if self.silent {
            return fed;
        }
        for &b in input {
            if self.echo && b != ESC {
                fed.output.push(b);
            }
            match (&self.entry, b) {
                (Entry::Text { .. }, ESC) => {
                    self.entry = Entry::Command;
                    self.line.clear();
                }
                (Entry::Text { to }, CTRL_Z) => {
                    let to = to.clone();
                    let text = std::mem::take(&mut self.line);
                    self.entry = Entry::Command;
                    self.submit(to, &text, &mut fed);
                }
                (Entry::Text { .. }, b'\r') => {
                    self.line.push(b'\n');
                    fed.output.extend_from_slice(b"\r\n> ");
                }
                (Entry::Text { .. }, _) => self.line.push(b),
                (Entry::Command, ESC) => self.line.clear(),
                (Entry::Command, b'\r') => {
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.line))
                        .trim()
                        .to_string();
                    self.command(&line, now, &mut fed);
                }
                (Entry::Command, b'\n') => {}
                (Entry::Command, _) => {
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                    }
                }
            }
        }
        if self.entry == Entry::Command && self.line.is_empty() {
            fed.output.append(&mut self.urcs);
        }
        fed
    }

    /// Unsolicited result codes waiting for a moment between commands.
    pub fn take_urcs(&mut self) -> Vec<u8> {
        if self.silent || self.entry != Entry::Command || !self.line.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.urcs)
    }

    fn submit(&mut self, to: String, text: &[u8], fed: &mut Fed) {
        let text = if self.ira {
            String::from_utf8_lossy(text).into_owned()
        } else {
            gsm_decode(text)
        };
        let septets = if self.ira {
            gsm_encode(&text).len()
        } else {
            text_len_septets(&text)
        };
        let error = if septets > SMS_MAX {
            Some(305)
        } else if let Some(code) = self.failures.pop_front() {
            Some(code)
        } else if !matches!(self.creg, 1 | 5) {
            Some(331)
        } else {
            None
        };
        if let Some(code) = error {
            tracing::info!(to = %to, code, "modem: submission refused");
            response(&mut fed.output, &format!("+CMS ERROR: {code}"));
            return;
        }
        let sms = SentSms {
            to,
            text,
            reference: self.next_ref,
        };
        self.next_ref = self.next_ref.wrapping_add(1);
        tracing::info!(to = %sms.to, reference = sms.reference, "modem: sms sent");
        response(&mut fed.output, &format!("+CMGS: {}", sms.reference));
        response(&mut fed.output, "OK");
        self.sent.push(sms.clone());
        fed.sent.push(sms);
    }

    fn command(&mut self, line: &str, now: SystemTime, fed: &mut Fed) {
        if line.is_empty() || !line.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("at")) {
            return;
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("ATD") {
            return self.dial(&line[3..], now, fed);
        }
        if upper == "ATH" || upper == "ATH0" {
            return self.hang_up(now, fed);
        }
        let out = &mut fed.output;
        let arg = |prefix: &str| upper.strip_prefix(prefix).map(|_| line[prefix.len()..].trim());
        let ok = match upper.as_str() {
            "AT" => true,
            "ATE0" | "ATE" => {
                self.echo = false;
                true
            }
            "ATE1" => {
                self.echo = true;
                true
            }
            "ATZ" => {
                self.echo = true;
                self.text_mode = false;
                true
            }
            "ATI" => {
                response(out, "cryosim fake GSM modem");
                true
            }
            "AT+CSQ" => {
                response(out, &format!("+CSQ: {},99", self.rssi));
                true
            }
            "AT+CREG?" => {
                response(out, &format!("+CREG: 0,{}", self.creg));
                true
            }
            "AT+CMGF?" => {
                response(out, &format!("+CMGF: {}", u8::from(self.text_mode)));
                true
            }
            "AT+CMGF=0" | "AT+CMGF=1" => {
                self.text_mode = upper.ends_with('1');
                true
            }
            _ if upper.starts_with("AT+CMEE=") || upper.starts_with("AT+CNMI=") => true,
            _ => {
                if let Some(cs) = arg("AT+CSCS=") {
                    match cs.trim_matches('"').to_ascii_uppercase().as_str() {
                        "GSM" => self.ira = false,
                        "IRA" => self.ira = true,
                        _ => return response(out, "ERROR"),
                    }
                    true
                } else if let Some(to) = arg("AT+CMGS=") {
                    let to = to.split(',').next().unwrap_or("").trim().trim_matches('"').to_string();
                    if !self.text_mode || to.is_empty() {
                        return response(out, "+CMS ERROR: 302");
                    }
                    self.entry = Entry::Text { to };
                    out.extend_from_slice(b"\r\n> ");
                    return;
                } else if let Some(stat) = arg("AT+CMGL=") {
                    return self.list(&stat.trim_matches('"').to_ascii_uppercase(), out);
                } else if let Some(idx) = arg("AT+CMGR=") {
                    return self.read_one(idx, out);
                } else if let Some(args) = arg("AT+CMGD=") {
                    return self.delete(args, out);
                } else {
                    false
                }
            }
        };
        response(out, if ok { "OK" } else { "ERROR" });
    }

    fn encode(&self, text: &str) -> Vec<u8> {
        if self.ira {
            text.chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect()
        } else {
            gsm_encode(text)
        }
    }

    fn list(&mut self, stat: &str, out: &mut Vec<u8>) {
        if !self.text_mode || !matches!(stat, "REC UNREAD" | "REC READ" | "ALL") {
            return response(out, "+CMS ERROR: 302");
        }
        let mut body = Vec::new();
        for (idx, m) in &mut self.inbox {
            let show = match stat {
                "REC UNREAD" => !m.read,
                "REC READ" => m.read,
                _ => true,
            };
            if !show {
                continue;
            }
            let status = if m.read { "REC READ" } else { "REC UNREAD" };
            body.push(format!("+CMGL: {idx},\"{status}\",\"{}\",,\"{}\"", m.from, m.timestamp).into_bytes());
            body.push(m.text.clone().into_bytes());
            m.read = true;
        }
        if !body.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        for (i, line) in body.into_iter().enumerate() {
            // Header lines are ASCII; text lines in the current character set.
            let bytes = if i % 2 == 1 {
                self.encode(&String::from_utf8_lossy(&line))
            } else {
                line
            };
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\r\n");
        }
        response(out, "OK");
    }

    fn read_one(&mut self, idx: &str, out: &mut Vec<u8>) {
        let Some(m) = idx.trim().parse().ok().and_then(|i: u32| self.inbox.get_mut(&i)) else {
            return response(out, "+CMS ERROR: 321");
        };
        let status = if m.read { "REC READ" } else { "REC UNREAD" };
        m.read = true;
        let (header, text) = (
            format!("+CMGR: \"{status}\",\"{}\",,\"{}\"", m.from, m.timestamp),
            m.text.clone(),
        );
        out.extend_from_slice(format!("\r\n{header}\r\n").as_bytes());
        let encoded = self.encode(&text);
        out.extend_from_slice(&encoded);
        out.extend_from_slice(b"\r\n");
        response(out, "OK");
    }

    fn delete(&mut self, args: &str, out: &mut Vec<u8>) {
        let mut it = args.split(',').map(str::trim);
        let idx: Option<u32> = it.next().and_then(|i| i.parse().ok());
        let flag: u8 = it.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        match (idx, flag) {
            (_, 4) => self.inbox.clear(),
            (_, 1..=3) => self.inbox.retain(|_, m| !m.read),
            (Some(i), 0) if self.inbox.remove(&i).is_some() => {}
            _ => return response(out, "+CMS ERROR: 321"),
        }
        response(out, "OK");
    }
}

fn text_len_septets(text: &str) -> usize {
    gsm_encode(text).len()
}

#[cfg(test)]
mod tests;
