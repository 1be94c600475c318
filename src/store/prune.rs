//! Deleting what is older than its retention, in small batches (each its own short write
//! transaction, so the writer waits at most a few milliseconds), and handing freed pages
//! back to the file system with `incremental_vacuum`.

use super::telemetry::first_id;
use super::{Result, Store};
use crate::store::rollups::SPANS_MS;

/// The kinds of rows with their own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Raw telemetry readings.
    Telemetry,
    /// 5-minute and hourly rollups.
    Rollups,
    /// Incidents (alerts included: they are incidents `alert:<rule>`), the log of alert state
    /// changes, resolved alerts with their notice records, and the notification outbox's
    /// finished notices.
    Incidents,
    /// Access log.
    Access,
    /// Audit log, the history of config changes, and expired revoked tokens.
    Audit,
}

/// Pages of the file: size, in use and free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub page_size: i64,
    pub pages: i64,
    pub free_pages: i64,
}

impl Space {
    /// Bytes holding data (free pages excluded).
    pub fn used_bytes(&self) -> i64 {
        (self.pages - self.free_pages) * self.page_size
    }
}

/// `DELETE` statements per kind: `?1` cutoff, `?2` batch size; each deletes the oldest rows
/// first through the table's time order.
fn delete_sql(kind: Kept) -> &'static [&'static str] {
    match kind {
        Kept::Telemetry => &["DELETE FROM telemetry WHERE id IN
            (SELECT id FROM telemetry WHERE id < ?1 ORDER BY id LIMIT ?2)"],
        // WITHOUT ROWID: deleted by key in `prune_batch`.
        Kept::Rollups => &[],
        // Alerts go with the incidents: a resolved alert's notice records, the notification
        // outbox (a notice and its deliveries once none is still open: pending, held or
        // suppressed ones are never pruned), then the alert row once nothing refers to it.
        Kept::Incidents => &[
            "DELETE FROM incidents WHERE id IN
            (SELECT id FROM incidents WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
            "DELETE FROM alert_events WHERE id IN
            (SELECT id FROM alert_events WHERE ts_ms < ?1 ORDER BY id LIMIT ?2)",
            "DELETE FROM alert_notices WHERE id IN
            (SELECT n.id FROM alert_notices n JOIN alerts a ON a.id = n.alert_id
             WHERE a.resolved_ms < ?1 LIMIT ?2)",
            "DELETE FROM notices WHERE id IN
            (SELECT n.id FROM notices n WHERE n.at_ms < ?1 AND NOT EXISTS
               (SELECT 1 FROM deliveries d WHERE d.notice_id = n.id
                AND d.state IN ('pending', 'held', 'suppressed'))
             ORDER BY n.id LIMIT ?2)",
            "DELETE FROM alerts WHERE id IN
            (SELECT a.id FROM alerts a WHERE a.resolved_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.alert_id = a.id)
             AND NOT EXISTS (SELECT 1 FROM alert_notices n WHERE n.alert_id = a.id)
             ORDER BY a.id LIMIT ?2)",
        ],
        Kept::Access => &["DELETE FROM access_events WHERE id IN
            (SELECT id FROM access_events WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)"],
        Kept::Audit => &[
            "DELETE FROM audit WHERE id IN
            (SELECT id FROM audit WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
            "DELETE FROM config_history WHERE id IN
            (SELECT id FROM config_history WHERE ts_ms < ?1 LIMIT ?2)",
            // Revoked tokens that expired before the cutoff can never be presented again.
            "DELETE FROM revoked_tokens WHERE jti IN
            (SELECT jti FROM revoked_tokens WHERE exp_s < ?1 / 1000 LIMIT ?2)",
        ],
    }
}

impl Store {
    /// Deletes at most `batch` rows of `kind` older than `cutoff_ms`, oldest first, in one
    /// short transaction; returns how many went (fewer than `batch`: nothing older is left).
    pub fn prune_batch(&self, kind: Kept, cutoff_ms: i64, batch: u32) -> Result<usize> {
        self.with_conn(|c| {
            let mut deleted = 0;
            if kind == Kept::Rollups {
                // WITHOUT ROWID: delete by primary key range, per span.
                let mut stmt = c.prepare_cached(
                    "DELETE FROM rollups WHERE (span_ms, device_key, bucket_ms) IN
                     (SELECT span_ms, device_key, bucket_ms FROM rollups INDEXED BY
                      rollups_span_bucket WHERE span_ms = ?1 AND bucket_ms < ?2 LIMIT ?3)",
                )?;
                for span in SPANS_MS {
                    deleted += stmt.execute((span, cutoff_ms, batch))?;
                }
                return Ok(deleted);
            }
            let cutoff = if kind == Kept::Telemetry {
                first_id(cutoff_ms)
            } else {
                cutoff_ms
            };
            for sql in delete_sql(kind) {
                deleted += c.prepare_cached(sql)?.execute((cutoff, batch))?;
            }
            Ok(deleted)
        })
    }

    /// Deletes the `batch` oldest raw readings whatever their age (the database is over its
    /// size limit); returns how many went.
    pub fn prune_oldest_telemetry(&self, batch: u32) -> Result<usize> {
        self.prune_batch(Kept::Telemetry, i64::MAX >> 10, batch)
    }

    /// Returns up to `pages` free pages to the file system (the file shrinks); how many
    /// free pages are left.
    pub fn incremental_vacuum(&self, pages: u32) -> Result<i64> {
        self.with_conn(|c| {
            // The pragma returns no rows but must be stepped to the end to do its work.
            let mut stmt = c.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            Ok(c.pragma_query_value(None, "freelist_count", |r| r.get(0))?)
        })
    }

    /// Page counts of the file.
    pub fn space(&self) -> Result<Space> {
        self.with_conn(|c| {
            let get = |p: &str| c.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
            Ok(Space {
                page_size: get("page_size")?,
                pages: get("page_count")?,
                free_pages: get("freelist_count")?,
            })
        })
    }
}
