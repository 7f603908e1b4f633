//! Living under systemd: `READY=1` once the store is open and the sources are started,
//! `STATUS=` lines saying what the daemon is doing, `STOPPING=1` on the way out, and
//! watchdog pings sent only while the pipeline really progresses.
//!
//! Progress is the store writer committing: it commits on every clock tick (four times a
//! second) even with no reading, after evaluating the alarm rules. A writer stuck on the
//! disk, or an evaluation loop that hangs, stops the commits, so the pings stop and
//! systemd (`WatchdogSec=`) restarts the daemon. A commit the store refuses (disk full)
//! is progress too: the writer is retrying, the outage is raised and paged, and a
//! restart loop would only lose that. Without `NOTIFY_SOCKET` (not under systemd) every
//! call here does nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::commit::WriterStats;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The daemon is up: store open, sources started.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// What the daemon is doing, for `systemctl status`.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: committing what was received"),
    ]);
}

/// Pings the watchdog at half its period while the writer keeps committing; `None` when
/// systemd asked for no watchdog.
pub fn spawn_watchdog(stats: Arc<WriterStats>, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    tracing::info!(every_ms = crate::model::millis(every), "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        // Progress is a commit, or an attempt the store refused: a writer retrying
        // against a full disk is alive, and a restart would not give it space.
        let progress = || stats.transactions.load(Ordering::Relaxed) + stats.failures.load(Ordering::Relaxed);
        let mut last = progress();
        let mut stuck = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = progress();
            if now > last {
                send(&[NotifyState::Watchdog]);
                if stuck {
                    tracing::warn!("the store writer commits again; watchdog pings resumed");
                    status("running");
                    stuck = false;
                }
            } else if !stuck {
                tracing::error!(
                    "CRITICAL: the store writer has committed nothing for {} ms; watchdog pings withheld so systemd restarts cryowatch",
                    every.as_millis()
                );
                status("stuck: the store writer is not committing");
                stuck = true;
            }
            last = now;
        }
    }))
}
