//! The store's lock file (`<store>.lock`): held by the running daemon, and for a moment
//! by a command that changes the store while no daemon runs (`ack`, `shelve`, `test-page`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The lock file next to the store.
pub fn path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    store.with_file_name(name)
}

/// Takes the store's lock: `None` when another process holds it. The file is private
/// (0600) in a private directory, as the store is.
pub fn take(store: &Path) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = path(store);
    if let Some(dir) = lock_path.parent() {
        super::embedded::private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {}", lock_path.display())))
        }
    }
}
