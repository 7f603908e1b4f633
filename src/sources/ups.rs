//! UPS status through NUT's upsd.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::writer::StoreHandle;

/// Starts one poller per `[[ups]]` that has sensors.
pub fn spawn(_config: &Config, _store: &StoreHandle, _shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    Vec::new()
}
