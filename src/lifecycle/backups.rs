//! Scheduled, verified backups in `<data>/backups/`: each is written online (`VACUUM INTO`,
//! one read transaction, so ingest goes on), then checked (`integrity_check` on the copy,
//! schema version, row counts against the live database before and after), recorded in a
//! `<name>.json` beside it, and the oldest beyond `RZMON_BACKUP_KEEP` are deleted. A failure
//! sets the `backup` health check failed until the next backup succeeds.

use super::BackupEvery;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::{format_ts, now_ms};
use crate::store::{BackupCheck, Store};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Name of the health check backups report to.
pub const HEALTH_CHECK: &str = "backup";
/// Directory inside the data directory.
pub const DIR: &str = "backups";

/// A backup file as listed by `GET /backups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupInfo {
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// When it was taken (RFC 3339 UTC).
    pub time: String,
    /// Integrity check, schema version and row counts passed.
    pub verified: bool,
    /// What the verification found (or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<BackupCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds the backup and its verification took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Why `make` did not produce a verified backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is already running")]
    Busy,
    #[error("{0}")]
    Failed(String),
}

/// The backups of one data directory. Shared by the schedule, the API and the CLI.
pub struct Backups {
    store: Store,
    dir: PathBuf,
    keep: usize,
    /// Held while a backup runs (a second one is refused, not queued).
    busy: Mutex<()>,
    /// Shared with the pruning pass: the two never run at once.
    exclusive: Arc<Mutex<()>>,
    health: Health,
    metrics: Arc<Metrics>,
    /// The interrupt handle of the copy running now, if any (see `interrupt`).
    copying: Arc<Copying>,
    /// Set once shutdown began: a backup that fails then was interrupted, not broken.
    stopping: std::sync::atomic::AtomicBool,
    /// Held while a new backup is named and the old ones beyond `keep` are deleted, and while
    /// listing: a list never shows the moment in between (`keep` + 1 backups).
    shown: Arc<std::sync::Mutex<()>>,
}

/// `rzmon-YYYYMMDD-HHMMSS-mmm.db` (UTC): what a backup's name looks like. Anything else is
/// not a backup (and never a path: no `/`, `\`, `..` or `%` can match).
pub fn valid_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("rzmon-")
        .and_then(|r| r.strip_suffix(".db"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 15 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

fn name_at(ms: i64) -> String {
    let t = format_ts(ms); // 2026-11-28T15:04:05.123Z
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    format!(
        "rzmon-{}-{}-{}.db",
        &digits[..8],
        &digits[8..14],
        &digits[14..17]
    )
}

impl Backups {
    pub fn new(
        store: Store,
        data_dir: &Path,
        keep: u32,
        exclusive: Arc<Mutex<()>>,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            dir: data_dir.join(DIR),
            keep: keep.max(1) as usize,
            busy: Mutex::new(()),
            exclusive,
            health,
            metrics,
            copying: Arc::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            shown: Arc::default(),
        }
    }

    /// Ends a running copy at once (shutdown); it fails and leaves no backup file.
    pub fn interrupt(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let handle = self
            .copying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            tracing::info!("backup interrupted: rzmon is stopping");
            h.interrupt();
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a backup now, verifies it, records it, rotates old ones.
    pub async fn make(&self) -> Result<BackupInfo, BackupError> {
        let _busy = self.busy.try_lock().map_err(|_| BackupError::Busy)?;
        let _exclusive = self.exclusive.lock().await;
        let (store, dir, keep) = (self.store.clone(), self.dir.clone(), self.keep);
        let (copying, shown) = (self.copying.clone(), self.shown.clone());
        let made = tokio::task::spawn_blocking(move || {
            make_blocking(&store, &dir, keep, &copying, &shown)
        })
        .await
        .map_err(|e| BackupError::Failed(format!("the backup task failed: {e}")))?;
        match &made {
            Ok(info) => {
                self.metrics.backups_made.inc();
                self.health.set_ok(HEALTH_CHECK);
                tracing::info!(
                    name = info.name,
                    size = info.size,
                    ms = info.duration_ms,
                    "backup written and verified"
                );
            }
            Err(_) if self.stopping.load(std::sync::atomic::Ordering::Acquire) => {}
            Err(e) => {
                self.metrics.backups_failed.inc();
                self.health
                    .set_failed(HEALTH_CHECK, format!("the last backup failed: {e}"));
            }
        }
        made
    }

    /// Every backup in the directory, newest first. Blocking (reads a directory).
    pub fn list(&self) -> std::io::Result<Vec<BackupInfo>> {
        let _shown = self
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list(&self.dir)
    }

    /// The file of backup `name`, if `name` is a backup's name and it exists.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        (valid_name(name) && path.is_file()).then_some(path)
    }
}

/// The schedule: a backup whenever `every` says, until `stop`.
pub async fn run(
    backups: Arc<Backups>,
    every: BackupEvery,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let Some(wait) = every.next_in_ms(now_ms()) else {
            return Ok(());
        };
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        tokio::select! {
            () = stop.cancelled() => {
                // Also ends a backup someone started through the API.
                backups.interrupt();
                return Ok(());
            }
            () = tokio::time::sleep(wait) => {}
        }
        let made = backups.make();
        tokio::pin!(made);
        let made = tokio::select! {
            r = &mut made => r,
            () = stop.cancelled() => {
                backups.interrupt();
                made.await
            }
        };
        match made {
            Ok(_) => {}
            Err(BackupError::Busy) => tracing::info!("scheduled backup skipped: one is running"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

/// The interrupt handle of the copy running now (`Backups::interrupt`).
type Copying = std::sync::Mutex<Option<rusqlite::InterruptHandle>>;

fn make_blocking(
    store: &Store,
    dir: &Path,
    keep: usize,
    copying: &Copying,
    shown: &std::sync::Mutex<()>,
) -> Result<BackupInfo, BackupError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| BackupError::Failed(format!("{what}: {e}"));
    create_private_dir(dir).map_err(|e| fail(&format!("cannot create {}", dir.display()), &e))?;
    let started = Instant::now();
    let ms = now_ms();
    let name = name_at(ms);
    // Written and checked under a name no listing shows, renamed once recorded.
    remove_partials(dir);
    let partial = dir.join(format!("{name}{PARTIAL}"));
    let before = store
        .backup_bounds()
        .map_err(|e| fail("cannot read the database", &e))?;
    let slot = || {
        copying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let copied = store.backup_interruptible(&partial, |h| *slot() = Some(h));
    *slot() = None;
    copied.map_err(|e| fail("cannot write the backup", &e))?;
    let after = store
        .backup_bounds()
        .map_err(|e| fail("cannot read the database", &e))?;
    let checked = Store::verify_backup(&partial, store.schema_version().ok(), before, after);
    let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let info = BackupInfo {
        name: name.clone(),
        size,
        time: format_ts(ms),
        verified: checked.is_ok(),
        error: checked.as_ref().err().map(ToString::to_string),
        check: checked.as_ref().ok().cloned(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    write_record(dir, &info).map_err(|e| fail("cannot record the backup", &e))?;
    let _shown = shown
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::fs::rename(&partial, dir.join(&name)).map_err(|e| fail("cannot name the backup", &e))?;
    if let Err(e) = checked {
        return Err(fail(&format!("backup {name} failed verification"), &e));
    }
    rotate(dir, keep);
    Ok(info)
}

/// Suffix of a backup being written.
const PARTIAL: &str = ".partial";

/// Deletes what an interrupted backup left (its process died mid-way).
fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(PARTIAL) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn record_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn write_record(dir: &Path, info: &BackupInfo) -> std::io::Result<()> {
    let tmp = dir.join(format!("{}.json.tmp", info.name));
    std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)?;
    std::fs::rename(&tmp, record_path(dir, &info.name))
}

/// Backups newest first; a file without a readable record counts as not verified.
fn list(dir: &Path) -> std::io::Result<Vec<BackupInfo>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid_name(&name) {
            continue;
        }
        let size = entry.metadata()?.len();
        let record: Option<BackupInfo> = std::fs::read(record_path(dir, &name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push(match record {
            Some(r) => BackupInfo { size, ..r },
            None => BackupInfo {
                time: String::new(),
                verified: false,
                check: None,
                error: Some("no verification record".into()),
                duration_ms: 0,
                size,
                name,
            },
        });
    }
    out.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(out)
}

/// Deletes the oldest backups (and their records) beyond `keep`.
fn rotate(dir: &Path, keep: usize) {
    let Ok(all) = list(dir) else { return };
    for old in all.iter().skip(keep) {
        for path in [dir.join(&old.name), record_path(dir, &old.name)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete an old backup");
            }
        }
        tracing::info!(name = old.name, "old backup deleted");
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_timestamps_and_nothing_else() {
        let n = name_at(1_795_860_000_123);
        assert_eq!(n, "rzmon-20261128-100000-123.db");
        assert!(valid_name(&n));
        for bad in [
            "../rzmon.db",
            "rzmon.db",
            "rzmon-20261128-100000-123.db/../x",
            "rzmon-2026112a-100000-123.db",
            "rzmon-20261128-100000-123.db.json",
            "..%2Frzmon.db",
            "",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
