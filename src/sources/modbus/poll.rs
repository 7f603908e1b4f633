//! One poll of one device over an open connection: every planned block read, decoded,
//! and turned into readings. A failed block still yields readings (`comm_error`).

use std::time::Duration;

use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response};

use super::decode::{decode_bit, decode_point};
use super::plan::Block;
use crate::config::RegisterKind;
use crate::model::{Quality, Reading, now_ms};

/// What reading one block gave.
pub enum BlockOutcome {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    /// The device answered with a Modbus exception: the connection is fine.
    Exception(ExceptionCode),
    /// Timeout, I/O or protocol error: the connection can no longer be trusted.
    Broken(String),
}

pub async fn read_block(
    ctx: &mut Context,
    kind: RegisterKind,
    start: u16,
    count: u16,
    timeout: Duration,
) -> BlockOutcome {
    // The request is made through `Client::call` and the answer's size checked here:
    // tokio-modbus's `read_*` helpers assert the count (a panic in debug builds, which
    // would end the link's task and silence every unit on it) or pass a short answer on.
    let request = match kind {
        RegisterKind::Coil => Request::ReadCoils(start, count),
        RegisterKind::Discrete => Request::ReadDiscreteInputs(start, count),
        RegisterKind::Holding => Request::ReadHoldingRegisters(start, count),
        RegisterKind::Input => Request::ReadInputRegisters(start, count),
    };
    let want = usize::from(count);
    match tokio::time::timeout(timeout, ctx.call(request)).await {
        Err(_) => BlockOutcome::Broken(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => BlockOutcome::Broken(e.to_string()),
        Ok(Ok(Err(code))) => BlockOutcome::Exception(code),
        Ok(Ok(Ok(response))) => match response {
            Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits) if bits.len() >= want => {
                // Bits come in whole bytes: the padding of the last one is not data.
                bits.truncate(want);
                BlockOutcome::Bits(bits)
            }
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) if words.len() == want => {
                BlockOutcome::Words(words)
            }
            Response::ReadCoils(v) | Response::ReadDiscreteInputs(v) => BlockOutcome::Broken(format!(
                "asked for {want} bits at {start}, the answer holds {}",
                v.len()
            )),
            Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v) => BlockOutcome::Broken(format!(
                "asked for {want} registers at {start}, the answer holds {}",
                v.len()
            )),
            other => BlockOutcome::Broken(format!("an answer to another request: {other:?}")),
        },
    }
}

/// Readings for every point of a block from a successful response. A response shorter
/// than asked for marks the missing points `comm_error`.
pub fn decode_block(block: &Block, outcome: &BlockOutcome, time: i64) -> Vec<Reading> {
    block
        .points
        .iter()
        .map(|(sensor, p)| {
            let range = block.range_of(p);
            let (value, quality) = match outcome {
                BlockOutcome::Words(words) => match words.get(range) {
                    Some(w) => decode_point(w, p),
                    None => (None, Quality::CommError),
                },
                BlockOutcome::Bits(bits) => match bits.get(range.start) {
                    Some(b) => decode_bit(*b, p),
                    None => (None, Quality::CommError),
                },
                BlockOutcome::Exception(_) | BlockOutcome::Broken(_) => (None, Quality::CommError),
            };
            Reading {
                sensor: *sensor,
                time,
                value,
                quality,
                source_time: false,
                flag: None,
            }
        })
        .collect()
}

/// The result of polling a device once.
pub struct PollResult {
    pub readings: Vec<Reading>,
    /// Set when the connection must be reopened before the next poll.
    pub broken: Option<String>,
    /// Exceptions seen, with the block they concern, for logging.
    pub exceptions: Vec<(RegisterKind, u16, u16, ExceptionCode)>,
}

/// Polls every block. When a block of several points gets an exception, its points are
/// read one by one so a single misaddressed point does not blind its neighbours.
pub async fn poll_device(ctx: &mut Context, blocks: &[Block], timeout: Duration) -> PollResult {
    let mut res = PollResult {
        readings: Vec::new(),
        broken: None,
        exceptions: Vec::new(),
    };
    for block in blocks {
        if res.broken.is_some() {
            res.readings.extend(comm_errors(block, now_ms()));
            continue;
        }
        let outcome = read_block(ctx, block.kind, block.start, block.count, timeout).await;
        match &outcome {
            BlockOutcome::Broken(why) => {
                res.broken = Some(why.clone());
                res.readings.extend(comm_errors(block, now_ms()));
            }
            BlockOutcome::Exception(code) if block.points.len() > 1 => {
                res.exceptions.push((block.kind, block.start, block.count, *code));
                for (sensor, p) in &block.points {
                    let single = Block {
                        kind: block.kind,
                        start: p.address,
                        count: if p.register.is_bit() { 1 } else { p.data_type.words() },
                        points: vec![(*sensor, p.clone())],
                    };
                    let o = read_block(ctx, single.kind, single.start, single.count, timeout).await;
                    match &o {
                        BlockOutcome::Broken(why) => {
                            res.broken = Some(why.clone());
                            res.readings.extend(comm_errors(&single, now_ms()));
                            break;
                        }
                        BlockOutcome::Exception(code) => {
                            res.exceptions.push((single.kind, single.start, single.count, *code))
                        }
                        _ => {}
                    }
                    res.readings.extend(decode_block(&single, &o, now_ms()));
                }
            }
            BlockOutcome::Exception(code) => {
                res.exceptions.push((block.kind, block.start, block.count, *code));
                res.readings.extend(comm_errors(block, now_ms()));
            }
            _ => res.readings.extend(decode_block(block, &outcome, now_ms())),
        }
    }
    if res.broken.is_some() {
        // Points already read in this poll keep their good readings; the rest are
        // covered above. Make sure no point of any block is missing.
        let seen: std::collections::HashSet<usize> = res.readings.iter().map(|r| r.sensor).collect();
        let t = now_ms();
        for block in blocks {
            for (sensor, _) in &block.points {
                if !seen.contains(sensor) {
                    res.readings.push(Reading::bad(*sensor, t, Quality::CommError));
                }
            }
        }
    }
    res
}

/// `comm_error` readings for every point of a block.
pub fn comm_errors(block: &Block, time: i64) -> Vec<Reading> {
    block
        .points
        .iter()
        .map(|(s, _)| Reading::bad(*s, time, Quality::CommError))
        .collect()
}
