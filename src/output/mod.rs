//! Local alarm outputs (`[[output]]`): a beacon or siren in the room, driven through a
//! coil or holding register of a Modbus I/O module, reaches whoever is nearby before
//! any phone does.
//!
//! One task keeps the desired value of every output current: it reads the open alarms
//! from the store when the commit stage announces an alarm transition, and once a
//! second besides, decides each output with [`decide`] (pure), appends every change of
//! an output's state to the audit trail, and publishes the values to write on a
//! [`Desired`] channel. The Modbus poller of the output's device writes that value after
//! every poll of the device, through the device's own connection — every poll, changed
//! or not, so the module's communication watchdog sees traffic, and so a value
//! overwritten on the module or lost while the link was down is restored within a poll.

pub mod decide;

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{AlarmId, now_ms};
use crate::pipeline::CommitHandle;
use crate::store::Store;
use crate::store::outputs::OutputChange;

/// The value to write to each output, by its index in `Config::outputs`: `true`
/// energised (1), `false` de-energised (0). Shorter than the outputs (empty) while
/// nothing has been decided: nothing is written then.
pub type Desired = watch::Receiver<Vec<bool>>;

/// How often the open alarms are read when no transition is announced (a missed or
/// lagging announcement is caught up this late at worst).
const REFRESH: Duration = Duration::from_secs(1);

/// The deciding side: the outputs, their last recorded state, the store.
struct Decider {
    config: std::sync::Arc<Config>,
    store: Store,
    /// The state last recorded per output, and the alarms that made it so.
    recorded: Vec<Option<(bool, Vec<AlarmId>)>>,
    tx: watch::Sender<Vec<bool>>,
}

impl Decider {
    /// Reads the open alarms, decides every output, records the changes and publishes
    /// the values. A change whose record fails is recorded again at the next refresh.
    fn refresh(&mut self) -> Result<(), crate::store::StoreError> {
        let alarms = self.store.open_alarms()?;
        let now = now_ms();
        let mut values = Vec::with_capacity(self.config.outputs.len());
        for (i, output) in self.config.outputs.iter().enumerate() {
            let d = decide::decide(output, &alarms);
            values.push(output.energised(d.on));
            let before = &self.recorded[i];
            if before.as_ref().is_some_and(|(on, _)| *on == d.on) {
                continue;
            }
            let device = self.config.devices.get(output.device).map_or("", |d| d.id.as_str());
            let change = OutputChange {
                output: &output.id,
                device,
                target: output.target.to_string(),
                state: if d.on { "on" } else { "off" },
                value: u8::from(output.energised(d.on)),
                fail_safe: output.fail_safe,
                when: output.when.to_string(),
                alarms: d.causes.clone(),
                previous: before.as_ref().map(|(_, causes)| causes.clone()).unwrap_or_default(),
                initial: before.is_none(),
            };
            match self.store.record_output_change(now, &change) {
                Ok(_) => {
                    tracing::info!(
                        output = %output.id,
                        device,
                        target = %change.target,
                        state = change.state,
                        value = change.value,
                        alarms = ?d.causes,
                        "local alarm output changed"
                    );
                    self.recorded[i] = Some((d.on, d.causes));
                }
                Err(e) => {
                    tracing::error!(output = %output.id, error = %e, "could not record the output's change in the audit trail; trying again");
                }
            }
        }
        self.tx.send_if_modified(|v| {
            let changed = *v != values;
            *v = values;
            changed
        });
        Ok(())
    }
}

/// Starts the task deciding the outputs, after deciding them once (so the first poll
/// already writes the right value). With no `[[output]]`, starts nothing and the
/// channel stays empty.
pub fn spawn(
    config: &Config,
    handle: &CommitHandle,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Option<JoinHandle<()>>, Desired)> {
    let (tx, rx) = watch::channel(Vec::new());
    if config.outputs.is_empty() {
        return Ok((None, rx));
    }
    let store = Store::open(&config.store.path).context("opening the store for the local alarm outputs")?;
    let mut decider = Decider {
        config: std::sync::Arc::new(config.clone()),
        store,
        recorded: vec![None; config.outputs.len()],
        tx,
    };
    decider
        .refresh()
        .context("reading the open alarms for the local alarm outputs")?;
    let mut events = handle.events.subscribe();
    let shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut listening = true;
        let mut decider = Some(decider);
        loop {
            let announced = async {
                if listening {
                    events.recv().await.map(|_| ())
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = announced => if let Err(broadcast::error::RecvError::Closed) = r { listening = false },
                _ = tokio::time::sleep(REFRESH) => {}
            }
            // One refresh for every transition announced so far.
            while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
            let Some(mut d) = decider.take() else { break };
            let done = tokio::task::spawn_blocking(move || {
                if let Err(e) = d.refresh() {
                    tracing::error!(error = %e, "local alarm outputs: reading the open alarms failed; keeping the last values");
                }
                d
            })
            .await;
            match done {
                Ok(d) => decider = Some(d),
                Err(e) => {
                    tracing::error!(error = %e, "local alarm outputs: deciding failed; the outputs keep their last values");
                    break;
                }
            }
        }
    });
    Ok((Some(task), rx))
}
