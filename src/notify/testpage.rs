//! `cryowatch test-page`: a test page through the real path (outbox → channel →
//! delivery record), to a contact on every channel that reaches them. With the daemon
//! running its dispatcher sends it; otherwise this command sends it itself. The
//! outbox keeps the result as the record of the test.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dispatcher::Dispatcher;
use crate::config::Config;
use crate::model::now_ms;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum TestPageError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

/// How long to wait for the running daemon to send the test page.
const WAIT: Duration = Duration::from_secs(60);

pub async fn run(cfg: &Config, contact: &str) -> Result<String, TestPageError> {
    let failed = |e: &dyn std::fmt::Display| TestPageError::Failed(e.to_string());
    let lock = crate::store::lock::take(&cfg.store.path).map_err(|e| failed(&format!("{e:#}")))?;
    let store = Store::open(&cfg.store.path).map_err(|e| failed(&e))?;
    let tag = super::acklink::installation_tag(&store).ok();
    let built = super::channels::build(&cfg.notify, tag.as_deref());
    let mut dispatcher = Dispatcher::new(Arc::new(cfg.clone()), store, built.senders);
    let ids = dispatcher
        .test_page(contact, now_ms())
        .map_err(TestPageError::BadInput)?;
    let reader = Store::open(&cfg.store.path).map_err(|e| failed(&e))?;
    let deadline = Instant::now() + WAIT;
    loop {
        if lock.is_some() {
            // No daemon: send it here.
            dispatcher.send_due(now_ms()).await.map_err(|e| failed(&e))?;
        }
        let all = reader.notifications(None).map_err(|e| failed(&e))?;
        let mine: Vec<_> = all.into_iter().filter(|n| ids.contains(&n.id)).collect();
        let done = mine.iter().all(|n| n.state != "pending");
        if done || Instant::now() > deadline || (lock.is_some() && mine.iter().all(|n| n.attempts > 0)) {
            let mut out = String::new();
            let mut all_sent = true;
            for n in &mine {
                all_sent &= n.state == "sent";
                let _ = writeln!(
                    out,
                    "test page {} to {} via {}: {} {}",
                    n.id,
                    n.contact,
                    n.via.as_deref().unwrap_or(&n.channel),
                    n.state,
                    n.detail.as_deref().or(n.error.as_deref()).unwrap_or("")
                );
            }
            return if all_sent {
                Ok(out)
            } else {
                Err(TestPageError::Failed(format!(
                    "{out}not every channel delivered the test page"
                )))
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
