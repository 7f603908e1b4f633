//! `cryowatch demo`: the device simulators and the daemon in one process, with an
//! embedded store in a temporary (or given) directory. Needs no broker and no setup.

use std::path::PathBuf;
use std::time::Duration;

pub async fn run(dir: Option<PathBuf>, duration: Option<Duration>) -> anyhow::Result<()> {
    let _ = (dir, duration);
    anyhow::bail!("demo: not wired yet")
}
