//! The fake modem's control commands (see the parent module for the protocol).

use std::time::SystemTime;

use serde_json::json;

use super::{Entry, Modem, SentSms, Stored, sc_timestamp};

const HELP: &str = "commands: sms <from> <text> | fail <count> <code> | silent on|off | \
network home|roaming|searching|denied|none|<stat> | signal <rssi> | call_end <ms>|never|busy | \
sent | calls | inbox | help";

impl Modem {
    /// One control command; returns the answer line.
    pub fn control(&mut self, line: &str) -> String {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match cmd {
            "sms" => {
                let (from, text) = rest.split_once(' ').unwrap_or((rest, ""));
                if from.is_empty() {
                    return "err usage: sms <from> <text>".into();
                }
                let index = (1..).find(|i| !self.inbox.contains_key(i)).unwrap_or(1);
                self.inbox.insert(
                    index,
                    Stored {
                        from: from.to_string(),
                        text: text.to_string(),
                        timestamp: sc_timestamp(SystemTime::now()),
                        read: false,
                    },
                );
                self.urcs.extend_from_slice(format!("\r\n+CMTI: \"SM\",{index}\r\n").as_bytes());
                format!("ok {index}")
            }
            "fail" => match rest.split_once(' ').map(|(n, c)| (n.parse::<usize>(), c.trim().parse::<u16>())) {
                Some((Ok(n), Ok(code))) => {
                    self.failures = std::iter::repeat_n(code, n).collect();
                    "ok".into()
                }
                _ => "err usage: fail <count> <code>".into(),
            },
            "silent" => match rest {
                "on" => {
                    self.silent = true;
                    "ok".into()
                }
                "off" => {
                    // Back as after a restart: a sender must initialise it again.
                    self.silent = false;
                    self.echo = true;
                    self.text_mode = false;
                    self.ira = false;
                    self.entry = Entry::Command;
                    self.line.clear();
                    "ok".into()
                }
                _ => "err usage: silent on|off".into(),
            },
            "network" => {
                let stat = match rest {
                    "home" => Some(1),
                    "roaming" => Some(5),
                    "searching" => Some(2),
                    "denied" => Some(3),
                    "none" => Some(0),
                    n => n.parse().ok(),
                };
                match stat {
                    Some(s) => {
                        self.creg = s;
                        "ok".into()
                    }
                    None => "err usage: network home|roaming|searching|denied|none|<stat>".into(),
                }
            }
            "signal" => match rest.parse::<u8>() {
                Ok(r) if r <= 31 || r == 99 => {
                    self.rssi = r;
                    "ok".into()
                }
                _ => "err usage: signal <0-31|99>".into(),
            },
            "call_end" => self.set_call_end(rest),
            "calls" => serde_json::Value::from(self.calls.iter().map(|c| c.json()).collect::<Vec<_>>()).to_string(),
            "sent" => serde_json::Value::from(self.sent.iter().map(SentSms::json).collect::<Vec<_>>()).to_string(),
            "inbox" => serde_json::Value::from(
                self.inbox
                    .iter()
                    .map(|(i, m)| json!({"index": i, "from": m.from, "text": m.text, "status": if m.read { "REC READ" } else { "REC UNREAD" }}))
                    .collect::<Vec<_>>(),
            )
            .to_string(),
            "help" => HELP.into(),
            "" => format!("err empty command; {HELP}"),
            _ => format!("err unknown command {line:?}; {HELP}"),
        }
    }
}
