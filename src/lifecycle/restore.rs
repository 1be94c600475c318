//! `rzmon restore FILE`: replaces the database by a backup while the server is stopped. The
//! file must pass `integrity_check` and must not be from a newer schema; the replaced
//! database (with its `-wal`/`-shm`, so it stays consistent) is kept aside as
//! `rzmon.db.before-restore-<time>`; the copy is checked again before it takes the place.

use super::ServerLock;
use crate::model::{format_ts, now_ms};
use crate::store::{self, check_backup};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the replaced database went (`None` if there was none).
    pub kept_aside: Option<PathBuf>,
    pub check: store::BackupCheck,
}

/// Restores `file` into `db` (the database path inside `data_dir`).
pub fn restore(data_dir: &Path, db: &Path, file: &Path) -> anyhow::Result<Restored> {
    let Some(_lock) = ServerLock::try_acquire(data_dir)
        .with_context(|| format!("cannot lock the data directory {}", data_dir.display()))?
    else {
        bail!(
            "rzmon is running on {}; stop it first (e.g. systemctl stop rzmon), then restore",
            data_dir.display()
        );
    };
    let check = check_backup(file).map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    if check.schema_version > store::latest_schema_version() {
        bail!(
            "{} has schema version {}, newer than this rzmon ({}): restore it with a newer rzmon; nothing was changed",
            file.display(),
            check.schema_version,
            store::latest_schema_version()
        );
    }
    let stamp: String = format_ts(now_ms())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let incoming = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&incoming);
    copy_private(file, &incoming)?;
    if let Err(e) = check_backup(&incoming) {
        let _ = std::fs::remove_file(&incoming);
        bail!(
            "the copy of {} is damaged ({e}); nothing was changed",
            file.display()
        );
    }
    let kept_aside = if db.exists() {
        let aside = PathBuf::from(format!("{}.before-restore-{stamp}", db.display()));
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", db.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to).with_context(|| {
                    format!("cannot move {} to {}", from.display(), to.display())
                })?;
            }
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, db)
        .with_context(|| format!("cannot move the restored copy to {}", db.display()))?;
    Ok(Restored { kept_aside, check })
}

/// Copies `from` to a new file `to` with mode 0600 and syncs it.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut dst = options
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut src, &mut dst).with_context(|| format!("cannot write {}", to.display()))?;
    dst.sync_all()?;
    Ok(())
}
