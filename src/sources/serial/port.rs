//! The loop that owns one serial port: opening it (with backoff), polling its sensors
//! one query at a time, and reading the lines nobody asked for.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;

use super::parse::{self, Lines, Unsolicited};
use super::{DevicePlan, send};
use crate::config::{Parity, SerialDevice};
use crate::model::{Quality, Reading, now_ms};
use crate::pipeline::CommitHandle;
use crate::sources::backoff::Backoff;
use crate::telemetry::Telemetry;

/// What was received and not asked for since it was last logged.
#[derive(Default)]
struct Unasked {
    count: u64,
    last: String,
}

/// The port, its received bytes, and what the loop remembers between polls.
struct Line<'a> {
    plan: &'a DevicePlan,
    port: Option<SerialStream>,
    lines: Lines,
    unasked: Unasked,
    /// Per polled sensor: why it last failed, to log changes only.
    failing: Vec<Option<&'static str>>,
    /// Why the port last failed, to log changes only.
    port_failing: Option<String>,
    backoff: Backoff,
    /// When a closed port may be opened again.
    next_open: Instant,
    buf: Vec<u8>,
}

/// Polls the device's sensors every poll interval and turns unsolicited lines into
/// event readings until `shutdown`.
pub(super) async fn run(plan: DevicePlan, store: CommitHandle, shutdown: CancellationToken, telemetry: Arc<Telemetry>) {
    let dev = &plan.device;
    let mut line = Line {
        plan: &plan,
        port: None,
        lines: Lines::new(&dev.line_ending),
        unasked: Unasked::default(),
        failing: vec![None; plan.polled.len()],
        port_failing: None,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60).max(dev.poll_interval)),
        next_open: Instant::now(),
        buf: vec![0; 512],
    };
    let mut next_poll = Instant::now();
    loop {
        if line.port.is_none() && Instant::now() >= line.next_open {
            match open(dev) {
                Ok(p) => {
                    line.port = Some(p);
                    line.lines.clear();
                    tracing::debug!(device = %dev.id, "serial port opened");
                }
                Err(why) => line.port_failed(why),
            }
        }
        let wake = match line.port {
            None => next_poll.min(line.next_open),
            Some(_) => next_poll,
        };
        let mut readings = Vec::new();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {}
            n = read_some(line.port.as_mut(), &mut line.buf) => {
                line.received(n);
                line.unsolicited(&mut readings);
            }
        }
        if Instant::now() >= next_poll {
            if !plan.polled.is_empty() {
                let started = Instant::now();
                line.poll(&mut readings).await;
                plan.telemetry.poll.observe(started.elapsed());
            }
            line.log_unasked();
            next_poll = next_due(next_poll, dev.poll_interval, Instant::now());
        }
        if !send(&store, &telemetry, readings).await {
            break;
        }
    }
    line.log_unasked();
    plan.telemetry.set_connected(false);
}

impl Line<'_> {
    /// One poll of every polled sensor, in order; a reading each.
    async fn poll(&mut self, out: &mut Vec<Reading>) {
        let mut answered = false;
        for k in 0..self.plan.polled.len() {
            let (sensor, q) = &self.plan.polled[k];
            // What came before the query was not its answer.
            self.unsolicited(out);
            let answer = match self.port.is_some() {
                true => self.ask(&q.bytes, out).await,
                false => None,
            };
            let reading = parse::reading(*sensor, now_ms(), answer.as_deref(), q);
            answered |= answer.is_some();
            let why = match (reading.quality, &answer) {
                (Quality::CommError, None) if self.port.is_none() => Some("port not open"),
                (Quality::CommError, None) => Some("no answer within the timeout"),
                (Quality::CommError, Some(_)) => Some("answer matches neither pattern nor fault_patterns"),
                _ => None,
            };
            if self.failing[k] != why {
                let id = &self.plan.device.id;
                let sensor = self.plan.sensor_id(*sensor);
                match why {
                    Some(reason) => {
                        tracing::warn!(device = %id, sensor, reason, answer = answer.as_deref().unwrap_or(""), "serial sensor not read; it reads comm_error")
                    }
                    None => tracing::info!(device = %id, sensor, "serial sensor read again"),
                }
                self.failing[k] = why;
            }
            out.push(reading);
        }
        let up = self.port.is_some() && answered;
        self.plan.telemetry.set_connected(up);
        if up {
            self.backoff.reset();
            if self.port_failing.take().is_some() {
                tracing::info!(device = %self.plan.device.id, "serial port working again");
            }
        }
    }

    /// Sends `query` and returns the first answer line within the timeout; event lines
    /// arriving meanwhile are taken as events.
    async fn ask(&mut self, query: &[u8], out: &mut Vec<Reading>) -> Option<String> {
        let timeout = self.plan.device.timeout;
        let deadline = Instant::now() + timeout;
        let port = self.port.as_mut()?;
        let sent = async {
            port.write_all(query).await?;
            port.flush().await
        };
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.port_failed(format!("cannot write: {e}"));
                return None;
            }
            Err(_) => {
                self.port_failed(format!("a write took longer than {timeout:?}"));
                return None;
            }
        }
        loop {
            while let Some(text) = self.lines.next_line() {
                let time = now_ms();
                match parse::event(&text, &self.plan.events, time) {
                    Unsolicited::Unmatched => return Some(text),
                    other => self.event(other, &text, out),
                }
            }
            let port = self.port.as_mut()?;
            match tokio::time::timeout_at(deadline, port.read(&mut self.buf)).await {
                Err(_) => return None,
                Ok(n) => self.received(n),
            }
        }
    }

    /// Takes a read's outcome: bytes into the line buffer, an error or end closes the port.
    fn received(&mut self, n: std::io::Result<usize>) {
        match n {
            Ok(0) => self.port_failed("the port was closed".into()),
            Ok(n) => {
                if let Some(bytes) = self.buf.get(..n) {
                    self.lines.push(bytes);
                }
            }
            Err(e) => self.port_failed(format!("cannot read: {e}")),
        }
    }

    /// Every complete line received: events, or counted as unasked.
    fn unsolicited(&mut self, out: &mut Vec<Reading>) {
        while let Some(text) = self.lines.next_line() {
            let u = parse::event(&text, &self.plan.events, now_ms());
            self.event(u, &text, out);
        }
    }

    fn event(&mut self, u: Unsolicited, text: &str, out: &mut Vec<Reading>) {
        match u {
            Unsolicited::Reading(r) => {
                tracing::info!(device = %self.plan.device.id, sensor = self.plan.sensor_id(r.sensor), line = text, "serial event");
                out.push(r);
            }
            Unsolicited::UnknownValue { sensor, text: value } => {
                let sensor = self.plan.sensor_id(sensor);
                tracing::warn!(device = %self.plan.device.id, sensor, value, "serial event line with a value not in its `values`; ignored");
            }
            Unsolicited::Unmatched => {
                self.unasked.count += 1;
                self.unasked.last = text.chars().take(200).collect();
            }
        }
    }

    /// Logs the unasked lines of the last interval, once.
    fn log_unasked(&mut self) {
        if self.unasked.count > 0 {
            let u = std::mem::take(&mut self.unasked);
            tracing::warn!(device = %self.plan.device.id, lines = u.count, last = %u.last, "unsolicited serial lines matching no [[serial.event]] pattern");
        }
    }

    /// Closes the port (reopened with backoff) and logs why when that changes.
    fn port_failed(&mut self, why: String) {
        self.port = None;
        self.next_open = Instant::now() + self.backoff.next_delay();
        self.lines.clear();
        self.plan.telemetry.set_connected(false);
        if self.port_failing.as_deref() != Some(why.as_str()) {
            tracing::warn!(device = %self.plan.device.id, port = %self.plan.device.port.display(), reason = %why, "serial port failed; its sensors read comm_error until it is reopened");
            self.port_failing = Some(why);
        }
    }
}

async fn read_some(port: Option<&mut SerialStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    match port {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The next poll after the one due at `when`: one interval later, or the first tick of
/// the schedule after `now` when polling ran late (missed polls are not made up).
fn next_due(when: Instant, interval: Duration, now: Instant) -> Instant {
    let mut next = when + interval;
    while next <= now && !interval.is_zero() {
        next += interval;
    }
    next
}

fn open(d: &SerialDevice) -> Result<SerialStream, String> {
    let builder = tokio_serial::new(d.port.to_string_lossy(), d.baud)
        .parity(match d.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .data_bits(match d.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .stop_bits(if d.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        });
    SerialStream::open(&builder).map_err(|e| format!("cannot open {}: {e}", d.port.display()))
}
