//! SMS through a GSM modem on a serial port, with AT commands in text mode: the channel
//! that still works when the internet is down.
//!
//! One [`ModemChannel`] owns one modem. Every operation (send, health check, reading
//! replies) takes the modem for its whole exchange, so they never interleave. The port
//! is opened on first use and kept open. Every operation starts by setting the modem up
//! (`AT`, `ATE0`, `AT+CMEE=1`, `AT+CMGF=1`, `AT+CSCS="GSM"`: a few milliseconds), so a
//! modem that restarted in between (echo on, PDU mode) is ready again. After opening,
//! and whenever an exchange was cut short (a timeout, or a caller that gave up), the
//! line is resynchronised first: ESC ends any text entry, then late answers are drained
//! until the line is quiet. A read or write error closes the port; the next operation
//! reopens it.
//!
//! Text is sent in the GSM 7-bit alphabet ([`gsm7`]): characters outside it are
//! transliterated, long texts split into separate numbered messages. A message whose
//! submission timed out may still have been sent; a retry may then duplicate it (a page
//! twice is better than none).
//!
//! With a ring time ([`ModemChannel::with_ring`], `ring = "20s"`), each page first
//! rings the contact's phone ([`call`]) and then sends the SMS, both in one hold of the
//! modem. The call's outcome opens the attempt's detail (`call rang 20.0s, hung up;
//! message reference 7`); a call that fails never keeps the SMS from being sent.
//!
//! On a host where ModemManager runs, tell it to leave the modem alone (udev
//! `ENV{ID_MM_DEVICE_IGNORE}="1"`), or it will answer the port's traffic itself.

pub mod at;
pub mod call;
pub mod codes;
pub mod gsm7;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_serial::SerialStream;

use crate::config::notify::Contact;
use crate::notify::channel::{Delivery, Outgoing, SendFuture, Sender};
use at::{AtError, AtPort, LineState};

/// How long to wait for quiet when draining the line before initialisation.
const QUIET: Duration = Duration::from_millis(100);

/// Limits of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModemTimeouts {
    /// Any command up to its final result code (`AT`, `AT+CSQ`, `AT+CMGL`, …).
    pub command: Duration,
    /// From `AT+CMGS="…"` to the `> ` prompt.
    pub prompt: Duration,
    /// From Ctrl-Z to `+CMGS: <mr>` and `OK`: the network round trip.
    pub submit: Duration,
}

impl Default for ModemTimeouts {
    fn default() -> Self {
        ModemTimeouts {
            command: Duration::from_secs(5),
            prompt: Duration::from_secs(5),
            submit: Duration::from_secs(60),
        }
    }
}

/// Network registration (`+CREG` stat, 3GPP TS 27.007 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// 0: not registered and not searching.
    NotRegistered,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown.
    Unknown,
    /// 5: registered, roaming.
    Roaming,
    /// Any other stat (SMS-only and emergency-only variants of later releases).
    Other(u8),
}

impl Registration {
    pub fn from_stat(stat: u8) -> Registration {
        match stat {
            0 => Registration::NotRegistered,
            1 => Registration::Home,
            2 => Registration::Searching,
            3 => Registration::Denied,
            4 => Registration::Unknown,
            5 => Registration::Roaming,
            n => Registration::Other(n),
        }
    }

    /// Whether messages can be sent: home, roaming, or "registered for SMS only" (6, 7).
    pub fn is_registered(self) -> bool {
        matches!(
            self,
            Registration::Home | Registration::Roaming | Registration::Other(6 | 7)
        )
    }
}

/// What the periodic health check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModemHealth {
    /// `+CSQ` rssi, 0 (≤ -113 dBm) to 31 (≥ -51 dBm); `None` when the modem does not know.
    pub rssi: Option<u8>,
    pub registration: Registration,
}

impl ModemHealth {
    /// Signal strength in dBm, from [`ModemHealth::rssi`].
    pub fn signal_dbm(&self) -> Option<i32> {
        self.rssi.map(|r| -113 + 2 * i32::from(r))
    }

    /// Why messages would not go out right now, if they would not.
    pub fn problem(&self) -> Option<String> {
        if !self.registration.is_registered() {
            return Some(format!("not registered on a network ({:?})", self.registration));
        }
        if self.rssi.is_none_or(|r| r == 0) {
            return Some("no usable signal".into());
        }
        None
    }
}

/// A message read from the modem (and deleted from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// Sender number as the network reports it (`+15551230001`).
    pub from: String,
    pub text: String,
    /// Service centre timestamp, `yy/MM/dd,hh:mm:ss±zz` (zone in quarter hours).
    pub timestamp: String,
    /// The storage index it had on the modem.
    pub index: u32,
}

struct Line {
    port: Option<AtPort<SerialStream>>,
    /// False while an operation runs: if its future is dropped half way, the next
    /// operation finds it false and resynchronises.
    settled: bool,
}

/// An SMS channel on a serial GSM modem (`kind = "gsm_modem"`).
pub struct ModemChannel {
    id: String,
    serial: PathBuf,
    baud: u32,
    timeouts: ModemTimeouts,
    /// Ring the contact this long before each page's SMS.
    ring: Option<Duration>,
    line: Mutex<Line>,
}

impl std::fmt::Debug for ModemChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemChannel")
            .field("id", &self.id)
            .field("serial", &self.serial)
            .field("baud", &self.baud)
            .field("timeouts", &self.timeouts)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl ModemChannel {
    /// A channel named `id` on the modem at `serial` (8N1, no flow control). Nothing
    /// is opened until the first operation.
    pub fn new(id: impl Into<String>, serial: impl Into<PathBuf>, baud: u32) -> ModemChannel {
        ModemChannel {
            id: id.into(),
            serial: serial.into(),
            baud,
            timeouts: ModemTimeouts::default(),
            ring: None,
            line: Mutex::new(Line {
                port: None,
                settled: false,
            }),
        }
    }

    pub fn with_timeouts(mut self, timeouts: ModemTimeouts) -> ModemChannel {
        self.timeouts = timeouts;
        self
    }

    /// Before each page's SMS, call the contact and let it ring this long (`None`: no call).
    pub fn with_ring(mut self, ring: Option<Duration>) -> ModemChannel {
        self.ring = ring;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends `msg.sms` (or `msg.text` when that is empty) to the contact's phone, after
    /// ringing it when the channel has a ring time.
    pub async fn send(&self, msg: &Outgoing) -> Delivery {
        let Some(phone) = msg.contact.phone.as_deref() else {
            return Delivery::Unreachable {
                reason: format!("contact {:?} has no phone number", msg.contact.id),
            };
        };
        let text = if msg.sms.trim().is_empty() { &msg.text } else { &msg.sms };
        let delivery = match self.ring {
            Some(ring) if not_e164(phone).is_none() => {
                let mut line = self.line.lock().await;
                let call = self.call(&mut line, phone, ring).await;
                tracing::info!(channel = %self.id, notification = msg.id, contact = %msg.contact.id, call = %call, "wake-up call through the modem");
                with_call(self.submit(&mut line, phone, text).await, &call)
            }
            _ => self.send_sms(phone, text).await,
        };
        match &delivery {
            Delivery::Sent { detail } => {
                tracing::info!(channel = %self.id, notification = msg.id, contact = %msg.contact.id, detail, "sms sent through the modem");
            }
            Delivery::Failed { retry, reason, .. } => {
                tracing::warn!(channel = %self.id, notification = msg.id, contact = %msg.contact.id, retry, reason, "sms through the modem failed");
            }
            Delivery::Unreachable { .. } => {}
        }
        delivery
    }

    /// Sends `text` to `phone` (E.164, `+` and digits), split into parts when longer
    /// than one SMS. `Sent` names the message reference(s) the modem returned.
    pub async fn send_sms(&self, phone: &str, text: &str) -> Delivery {
        if let Some(refused) = not_e164(phone) {
            return refused;
        }
        let mut line = self.line.lock().await;
        self.submit(&mut line, phone, text).await
    }

    /// Rings `phone` for `ring` and hangs up; what happened, as the attempt's detail
    /// starts with it.
    async fn call(&self, line: &mut Line, phone: &str, ring: Duration) -> String {
        let limit = self.timeouts.command;
        match self.run(line, async |port| port.ring(phone, ring, limit).await).await {
            Ok(outcome) => outcome.to_string(),
            Err(err) => format!("call failed: {}", self.describe(&err)),
        }
    }

    /// Sends `text` to `phone` (checked) on the held line.
    async fn submit(&self, line: &mut Line, phone: &str, text: &str) -> Delivery {
        let parts = gsm7::split(&gsm7::to_gsm7(text));
        let mut refs = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let t = self.timeouts;
            let sent = self
                .run(line, async |port| {
                    port.send_sms(phone, &gsm7::encode(part), (t.prompt, t.submit)).await
                })
                .await;
            match sent {
                Ok(reference) => refs.push(reference.to_string()),
                Err(err) => {
                    let which = if parts.len() > 1 {
                        format!(" (part {} of {}, {} sent before it)", i + 1, parts.len(), refs.len())
                    } else {
                        String::new()
                    };
                    return Delivery::failed(err.retry(), format!("{}{which}", self.describe(&err)));
                }
            }
        }
        let detail = match refs.as_slice() {
            [one] => format!("message reference {one}"),
            many => format!("message references {} ({} parts)", many.join(", "), many.len()),
        };
        Delivery::Sent { detail }
    }

    /// The periodic health check: the modem answers (`AT` and the set-up commands), its
    /// signal (`AT+CSQ`) and its network registration (`AT+CREG?`). `Err` when it does
    /// not answer; a modem that answers without network is `Ok`, and
    /// [`ModemHealth::problem`] says what is wrong.
    pub async fn check(&self) -> Result<ModemHealth, String> {
        let t = self.timeouts;
        let mut line = self.line.lock().await;
        let result = self
            .run(&mut line, async |port| {
                let csq = port.command("AT+CSQ", t.command).await?;
                let creg = port.command("AT+CREG?", t.command).await?;
                let rssi = csq.iter().find_map(|l| at::parse_csq(&String::from_utf8_lossy(l)));
                // The last +CREG line: an unsolicited `+CREG: <stat>` may precede the answer.
                let stat = creg
                    .iter()
                    .rev()
                    .find_map(|l| at::parse_creg(&String::from_utf8_lossy(l)));
                match (rssi, stat) {
                    (Some(rssi), Some(stat)) => Ok(ModemHealth {
                        rssi,
                        registration: Registration::from_stat(stat),
                    }),
                    _ => Err(AtError::Unexpected {
                        what: "AT+CSQ / AT+CREG?".into(),
                        answer: [csq, creg]
                            .concat()
                            .iter()
                            .map(|l| String::from_utf8_lossy(l))
                            .collect::<Vec<_>>()
                            .join(" | "),
                    }),
                }
            })
            .await;
        result.map_err(|err| self.describe(&err))
    }

    /// Unread messages (`AT+CMGL="REC UNREAD"`), each then deleted (`AT+CMGD=<index>`)
    /// so it is returned once. Listing marks them read on the modem, so they are
    /// returned even if deleting fails (that is logged; they are not listed again).
    pub async fn receive(&self) -> Result<Vec<InboundSms>, String> {
        let t = self.timeouts;
        let id = self.id.clone();
        let mut line = self.line.lock().await;
        let result = self
            .run(&mut line, async |port| {
                let listing = port.command("AT+CMGL=\"REC UNREAD\"", t.command).await?;
                let messages: Vec<InboundSms> = at::parse_cmgl(&listing)
                    .into_iter()
                    .map(|m| InboundSms {
                        from: m.from,
                        text: m.text,
                        timestamp: m.timestamp,
                        index: m.index,
                    })
                    .collect();
                for m in &messages {
                    if let Err(err) = port.command(&format!("AT+CMGD={}", m.index), t.command).await {
                        tracing::warn!(channel = %id, index = m.index, "cannot delete a received sms from the modem: {err}");
                        if port.state() != LineState::InSync {
                            break;
                        }
                    }
                }
                Ok(messages)
            })
            .await;
        result.map_err(|err| self.describe(&err))
    }

    fn describe(&self, err: &AtError) -> String {
        format!("modem {}: {err}", self.serial.display())
    }

    /// Runs `op` on an open, initialised port, and keeps track of what it left behind.
    async fn run<T>(
        &self,
        line: &mut Line,
        op: impl AsyncFnOnce(&mut AtPort<SerialStream>) -> Result<T, AtError>,
    ) -> Result<T, AtError> {
        if line.port.is_none() {
            let builder = tokio_serial::new(self.serial.to_string_lossy(), self.baud)
                .data_bits(tokio_serial::DataBits::Eight)
                .parity(tokio_serial::Parity::None)
                .stop_bits(tokio_serial::StopBits::One)
                .flow_control(tokio_serial::FlowControl::None);
            let stream = SerialStream::open(&builder).map_err(|e| AtError::Open(e.to_string()))?;
            tracing::info!(channel = %self.id, serial = %self.serial.display(), "modem serial port opened");
            line.port = Some(AtPort::new(stream));
            line.settled = false;
        }
        let Some(port) = line.port.as_mut() else {
            return Err(AtError::Open("the port is not open".into()));
        };
        let resync = !line.settled || port.state() != LineState::InSync;
        line.settled = false;
        let result = match self.initialise(port, resync).await {
            Ok(()) => op(port).await,
            Err(err) => Err(err),
        };
        line.settled = true;
        if port.state() == LineState::Broken {
            tracing::warn!(channel = %self.id, serial = %self.serial.display(), "modem serial line failed; reopening on next use");
            line.port = None;
        }
        result
    }

    async fn initialise(&self, port: &mut AtPort<SerialStream>, resync: bool) -> Result<(), AtError> {
        let t = self.timeouts.command;
        if resync {
            port.resync(QUIET).await?;
        }
        // A half-typed command line on the modem may turn the first AT into ERROR.
        match port.command("AT", t).await {
            Ok(_) => {}
            Err(AtError::Error(_)) => {
                port.command("AT", t).await?;
            }
            Err(err) => return Err(err),
        }
        port.command("ATE0", t).await?;
        match port.command("AT+CMEE=1", t).await {
            Ok(_) | Err(AtError::Error(_) | AtError::Cme(_)) => {}
            Err(err) => return Err(err),
        }
        port.command("AT+CMGF=1", t).await?;
        port.command("AT+CSCS=\"GSM\"", t).await?;
        Ok(())
    }
}

/// Refuses a number that is not E.164 (`+` and digits): it goes into AT commands.
fn not_e164(phone: &str) -> Option<Delivery> {
    let ok = phone.starts_with('+') && phone.len() > 4 && phone[1..].bytes().all(|b| b.is_ascii_digit());
    (!ok).then(|| Delivery::failed(false, format!("{phone:?} is not an E.164 number like \"+15551230001\"")))
}

/// The SMS attempt's outcome with the wake-up call's in front.
fn with_call(delivery: Delivery, call: &str) -> Delivery {
    match delivery {
        Delivery::Sent { detail } => Delivery::Sent {
            detail: format!("{call}; {detail}"),
        },
        Delivery::Failed {
            retry,
            reason,
            retry_after,
        } => Delivery::Failed {
            retry,
            reason: format!("{call}; {reason}"),
            retry_after,
        },
        unreachable @ Delivery::Unreachable { .. } => unreachable,
    }
}

impl Sender for ModemChannel {
    fn send<'a>(&'a self, msg: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(ModemChannel::send(self, msg))
    }

    fn reaches(&self, contact: &Contact) -> bool {
        contact.phone.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_what_keeps_messages_from_going_out() {
        let ok = ModemHealth {
            rssi: Some(20),
            registration: Registration::Home,
        };
        assert_eq!(ok.problem(), None);
        assert_eq!(ok.signal_dbm(), Some(-73));
        let roaming_no_signal = ModemHealth {
            rssi: None,
            registration: Registration::Roaming,
        };
        assert_eq!(roaming_no_signal.problem().as_deref(), Some("no usable signal"));
        let searching = ModemHealth {
            rssi: Some(10),
            registration: Registration::from_stat(2),
        };
        assert!(searching.problem().is_some_and(|p| p.contains("Searching")));
        assert!(Registration::from_stat(6).is_registered());
        assert!(!Registration::from_stat(3).is_registered());
    }

    #[tokio::test]
    async fn a_missing_serial_port_is_a_retryable_failure() {
        let ch = ModemChannel::new("modem", "/nonexistent/ttyUSB9", 115_200);
        match ch.send_sms("+15551230001", "x").await {
            Delivery::Failed { retry, reason, .. } => {
                assert!(retry);
                assert!(reason.contains("/nonexistent/ttyUSB9"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(ch.check().await.is_err());
    }

    #[tokio::test]
    async fn a_number_that_is_not_e164_is_refused_before_the_modem() {
        let ch = ModemChannel::new("modem", "/nonexistent/ttyUSB9", 115_200);
        let d = ch.send_sms("+1555\"; AT+CMGD=1", "x").await;
        assert!(matches!(d, Delivery::Failed { retry: false, .. }), "{d:?}");
    }
}
