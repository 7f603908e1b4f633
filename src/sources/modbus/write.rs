//! Writing a device's local alarm outputs (`[[output]]`) after its poll, through the
//! same connection: each output's desired value ([`crate::output::Desired`]) is written
//! every poll, changed or not, so the module's communication watchdog sees traffic and a
//! value changed on the module (or lost while the link was down) is restored.

use std::time::Duration;

use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::config::OutputTarget;
use crate::output::Desired;

/// An output written through its device's link.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// Index in `Config::outputs` (and in the desired values).
    pub index: usize,
    pub id: String,
    pub target: OutputTarget,
}

/// What writing one output gave.
enum Written {
    Done,
    /// The module refused the write: the connection is fine.
    Refused(ExceptionCode),
    /// Timeout, I/O or protocol error: the connection can no longer be trusted.
    Broken(String),
}

async fn write_one(ctx: &mut Context, target: OutputTarget, value: bool, timeout: Duration) -> Written {
    let request = match target {
        OutputTarget::Coil(a) => Request::WriteSingleCoil(a, value),
        OutputTarget::Register(a) => Request::WriteSingleRegister(a, u16::from(value)),
    };
    match tokio::time::timeout(timeout, ctx.call(request)).await {
        Err(_) => Written::Broken(format!("no answer to the write of {target} within {timeout:?}")),
        Ok(Err(e)) => Written::Broken(e.to_string()),
        Ok(Ok(Err(code))) => Written::Refused(code),
        Ok(Ok(Ok(response))) => match (target, response) {
            (OutputTarget::Coil(a), Response::WriteSingleCoil(b, v)) if a == b && v == value => Written::Done,
            (OutputTarget::Register(a), Response::WriteSingleRegister(b, v)) if a == b && v == u16::from(value) => {
                Written::Done
            }
            (_, other) => Written::Broken(format!("the write of {target} was answered with {other:?}")),
        },
    }
}

/// Logs an output's write failures only when they change, so a module that refuses a
/// write does not flood the journal every poll.
#[derive(Debug, Default)]
pub struct WriteHealth {
    failing: Vec<Option<String>>,
}

impl WriteHealth {
    fn set(&mut self, k: usize, device: &str, output: &OutputPlan, why: Option<String>) {
        if self.failing.len() <= k {
            self.failing.resize(k + 1, None);
        }
        if self.failing[k] == why {
            return;
        }
        match &why {
            Some(reason) => tracing::warn!(
                device,
                output = %output.id,
                target = %output.target,
                reason = %reason,
                "local alarm output not written"
            ),
            None => {
                tracing::info!(device, output = %output.id, target = %output.target, "local alarm output written again")
            }
        }
        self.failing[k] = why;
    }
}

/// Writes every output of a device with its desired value. Returns why the connection
/// must be reopened, if it must. Nothing is written while no value is decided, or once
/// the deciding task has stopped (so the module's watchdog takes over).
pub async fn write_outputs(
    ctx: &mut Context,
    device: &str,
    outputs: &[OutputPlan],
    desired: &Desired,
    timeout: Duration,
    health: &mut WriteHealth,
) -> Option<String> {
    if outputs.is_empty() || desired.has_changed().is_err() {
        return None;
    }
    let values = desired.borrow().clone();
    for (k, output) in outputs.iter().enumerate() {
        let Some(&value) = values.get(output.index) else {
            continue;
        };
        match write_one(ctx, output.target, value, timeout).await {
            Written::Done => {
                tracing::trace!(device, output = %output.id, value, "local alarm output written");
                health.set(k, device, output, None);
            }
            Written::Refused(code) => health.set(k, device, output, Some(format!("exception {code:?}"))),
            Written::Broken(why) => {
                health.set(k, device, output, Some(why.clone()));
                return Some(why);
            }
        }
    }
    None
}
