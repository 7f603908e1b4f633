//! An MQTT event loop polled by a task of its own.
//!
//! rumqttc's `EventLoop::poll` must not be dropped while it connects: a `select!` whose
//! other branch (a timer, a beat) fires during the handshake drops the half-open
//! connection, and the next poll opens another one. The broker then sees two connections
//! of one client id at every start. The task here polls the loop to the end of each
//! call and hands the events over a channel, whose `recv` may be dropped at any point.

use std::time::Duration;

use rumqttc::{ConnectionError, Event, EventLoop};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The events of one connection, read with [`Events::next`]; the polling stops when
/// this is dropped.
pub struct Events {
    rx: mpsc::Receiver<Result<Event, ConnectionError>>,
    task: JoinHandle<()>,
}

/// Polls `events` in a task of its own, waiting `retry` after each failure before it
/// connects again.
pub fn pump(mut events: EventLoop, retry: Duration) -> Events {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        loop {
            let event = events.poll().await;
            let failed = event.is_err();
            if tx.send(event).await.is_err() {
                break;
            }
            if failed {
                tokio::time::sleep(retry).await;
            }
        }
    });
    Events { rx, task }
}

impl Events {
    /// The next event, or a connection failure (after which the next connection is
    /// attempted `retry` later). Cancel-safe.
    pub async fn next(&mut self) -> Result<Event, ConnectionError> {
        match self.rx.recv().await {
            Some(event) => event,
            // The task only stops when this side is gone, or if it panicked.
            None => Err(ConnectionError::RequestsDone),
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}
