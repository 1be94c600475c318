//! The data lifecycle on top of `store`: retention (pruning and returning space), scheduled
//! verified backups, restore, and CSV export. Services run off the ingest path and stop
//! through their `stop` token.

pub mod backups;
pub mod csv;
pub mod restore;
pub mod retention;
mod schedule;

pub use backups::{BackupInfo, Backups};
pub use schedule::BackupEvery;

use std::fs::File;
use std::path::Path;

/// Name of the lock file the running server holds in the data directory.
pub const LOCK_FILE: &str = "rzmon.lock";

/// An exclusive lock on the data directory, held by the running server for its lifetime, so
/// `rzmon restore` (and a second server) can tell it is running. Released when dropped or
/// when the process ends, however it ends.
#[derive(Debug)]
pub struct ServerLock(#[allow(dead_code)] File);

impl ServerLock {
    /// Takes the lock; `Ok(None)` if another process holds it.
    pub fn try_acquire(data_dir: &Path) -> std::io::Result<Option<Self>> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(data_dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
