//! The pruning service: every `RZMON_PRUNE_EVERY` seconds, deletes what is older than its
//! retention, then the oldest raw readings while the file is over `RZMON_MAX_DB_MB`, then
//! returns the freed pages to the file system. Each step is a short transaction of its own
//! with a pause after it, so the writer never waits more than a few milliseconds.

use crate::config::LifecycleSettings;
use crate::metrics::Metrics;
use crate::model::now_ms;
use crate::store::{Kept, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Rows deleted per transaction (about 1–3 ms of write lock).
const BATCH: u32 = 1_000;
/// Pages handed back per `incremental_vacuum` step (4 MiB at 4 KiB pages).
const VACUUM_PAGES: u32 = 1_024;
/// Pause after each step: the writer's turn.
const PAUSE: Duration = Duration::from_millis(20);
const DAY_MS: i64 = 86_400_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted for their age.
    pub expired: u64,
    /// Raw readings deleted because the file was over its size limit.
    pub over_size: u64,
    /// Pages returned to the file system.
    pub pages_freed: i64,
}

/// Retention per kind of row, in days (0 = forever).
fn retention(s: &LifecycleSettings) -> [(Kept, u32); 5] {
    [
        (Kept::Telemetry, s.retention_days),
        (Kept::Rollups, s.rollup_retention_days),
        (Kept::Incidents, s.incident_retention_days),
        (Kept::Access, s.access_retention_days),
        (Kept::Audit, s.audit_retention_days),
    ]
}

/// Runs passes until `stop`; the first one right away. `exclusive` is shared with backups,
/// so a pass never frees pages under a running backup's feet (and the backup's row-count
/// check sees no rows vanish).
pub async fn run(
    store: Store,
    settings: LifecycleSettings,
    exclusive: Arc<Mutex<()>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(settings.prune_every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let _guard = exclusive.lock().await;
        match pass(&store, &settings, &stop).await {
            Ok(p) => {
                metrics.pruned_rows.add(p.expired + p.over_size);
                metrics.prune_passes.inc();
                if p != Pruned::default() {
                    tracing::info!(
                        expired = p.expired,
                        over_size = p.over_size,
                        pages_freed = p.pages_freed,
                        "pruned old data"
                    );
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "pruning pass failed; retrying at the next one"
            ),
        }
    }
}

/// One blocking store call off the async threads.
async fn call<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let s = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&s)).await??)
}

/// One pruning pass; stops early (with what it did) when `stop` is cancelled.
pub async fn pass(
    store: &Store,
    settings: &LifecycleSettings,
    stop: &CancellationToken,
) -> anyhow::Result<Pruned> {
    let mut out = Pruned::default();
    let now = now_ms();
    for (kind, days) in retention(settings) {
        if days == 0 {
            continue;
        }
        let cutoff = now - i64::from(days) * DAY_MS;
        loop {
            let n = call(store, move |s| s.prune_batch(kind, cutoff, BATCH)).await?;
            out.expired += n as u64;
            if n < BATCH as usize || !pause(stop).await {
                break;
            }
        }
    }
    if let Some(max_mb) = settings.max_db_mb {
        let max = i64::try_from(max_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        while call(store, Store::space).await?.used_bytes() > max {
            let n = call(store, |s| s.prune_oldest_telemetry(BATCH)).await?;
            out.over_size += n as u64;
            if n == 0 {
                tracing::warn!(
                    max_mb,
                    "the database is over RZMON_MAX_DB_MB with no raw readings left to prune"
                );
                break;
            }
            if !pause(stop).await {
                break;
            }
        }
    }
    let mut free = call(store, Store::space).await?.free_pages;
    while free > 0 {
        let left = call(store, |s| s.incremental_vacuum(VACUUM_PAGES)).await?;
        out.pages_freed += free - left;
        if left >= free || !pause(stop).await {
            break;
        }
        free = left;
    }
    Ok(out)
}

/// Waits `PAUSE`; `false` when `stop` was cancelled meanwhile.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(PAUSE) => true,
    }
}
