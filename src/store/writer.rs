//! The store writer: a dedicated thread that commits readings in batches, so no source
//! ever waits on the disk. Whatever is queued when a batch starts goes into one
//! transaction; callers learn of the commit through `on_commit` (the MQTT source
//! acknowledges to the broker only then).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use super::embedded::{Row, Store};
use crate::model::Reading;

/// Readings to store, and what to do once they are durable.
pub struct Batch {
    pub readings: Vec<Reading>,
    pub on_commit: Option<Box<dyn FnOnce() + Send>>,
}

impl Batch {
    pub fn new(readings: Vec<Reading>) -> Batch {
        Batch {
            readings,
            on_commit: None,
        }
    }
}

/// Counters read by `status`, benchmarks and logs.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub committed: AtomicU64,
    pub transactions: AtomicU64,
    pub failures: AtomicU64,
}

/// The cloneable sending side. When every handle is dropped, the writer commits what is
/// queued and stops.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Batch>,
    pub stats: Arc<WriterStats>,
}

#[derive(Debug, thiserror::Error)]
#[error("the store writer has stopped")]
pub struct WriterStopped;

impl StoreHandle {
    pub async fn send(&self, batch: Batch) -> Result<(), WriterStopped> {
        self.tx.send(batch).await.map_err(|_| WriterStopped)
    }
}

/// Joins the writer thread; returns once every queued reading is committed.
pub struct WriterJoin(JoinHandle<()>);

impl WriterJoin {
    pub async fn join(self) {
        let _ = tokio::task::spawn_blocking(move || self.0.join()).await;
    }
}

/// Starts the writer. `sensor_ids[i]` is the store id of configured sensor `i`.
pub fn spawn(
    store: Store,
    sensor_ids: Vec<i64>,
    queue: usize,
    batch_size: usize,
) -> std::io::Result<(StoreHandle, WriterJoin)> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let stats = Arc::new(WriterStats::default());
    let thread_stats = stats.clone();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(store, sensor_ids, rx, batch_size, &thread_stats))?;
    Ok((StoreHandle { tx, stats }, WriterJoin(handle)))
}

fn run(mut store: Store, ids: Vec<i64>, mut rx: mpsc::Receiver<Batch>, batch_size: usize, stats: &WriterStats) {
    let mut rows = Vec::with_capacity(batch_size);
    let mut callbacks: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            for r in &batch.readings {
                if let Some(&id) = ids.get(r.sensor) {
                    rows.push(Row {
                        sensor: id,
                        time: r.time,
                        value: r.value,
                        quality: r.quality,
                        source_time: r.source_time,
                    });
                }
            }
            callbacks.extend(batch.on_commit);
            if rows.len() < batch_size {
                next = rx.try_recv().ok();
            }
        }
        if commit(&mut store, &rows, &rx, stats) {
            for cb in callbacks.drain(..) {
                cb();
            }
        } else {
            // Not stored: the sources must not confirm these readings to their senders.
            callbacks.clear();
        }
        rows.clear();
    }
    if let Err(e) = store.checkpoint() {
        tracing::warn!(error = %e, "store checkpoint at shutdown failed");
    }
    tracing::info!(
        committed = stats.committed.load(Ordering::Relaxed),
        "store writer stopped"
    );
}

/// Commits, retrying with backoff while the disk refuses. Gives up (returns false) only
/// when the daemon is shutting down and the store still fails, and says how much was lost.
fn commit(store: &mut Store, rows: &[Row], rx: &mpsc::Receiver<Batch>, stats: &WriterStats) -> bool {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        match store.insert(rows) {
            Ok(()) => {
                stats.committed.fetch_add(rows.len() as u64, Ordering::Relaxed);
                stats.transactions.fetch_add(1, Ordering::Relaxed);
                if attempts > 0 {
                    tracing::warn!(attempts, readings = rows.len(), "store write succeeded after retrying");
                }
                return true;
            }
            Err(e) => {
                attempts += 1;
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, attempts, readings = rows.len(), "store write failed; retrying");
                if rx.is_closed() && attempts >= 5 {
                    tracing::error!(
                        readings = rows.len(),
                        "shutting down with the store still failing: these readings are lost"
                    );
                    return false;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
