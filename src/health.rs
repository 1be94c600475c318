//! The health registry: named checks, each `ok` or failed with a reason, shared by every part
//! that can tell something is wrong (the writer, the broker watch, backups, bridges, ...).
//! `/health` shows it; others react to changes through `subscribe` (a `tokio::sync::watch`).
//! A transition is logged once (warn when a check fails, info when it recovers). An ok check
//! may carry a detail (e.g. the bridge's backlog); details change freely and are neither
//! logged nor seen as changes by watchers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Store writer: commits succeed (failed e.g. while the disk is full).
pub const DATABASE: &str = "database";
/// Internal broker reachable and its ingest link alive.
pub const BROKER: &str = "broker";
/// No connection has reported a damaged database file. Once failed it stays failed until the
/// process restarts (a damaged file does not heal by itself).
pub const INTEGRITY: &str = "integrity";

/// The state of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// A sentence saying what is wrong (shown to logged-in users only).
    Failed(String),
}

impl Check {
    pub fn is_ok(&self) -> bool {
        matches!(self, Check::Ok)
    }
}

/// Every check by name.
pub type Snapshot = BTreeMap<String, Check>;

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Health {
    tx: Arc<watch::Sender<Snapshot>>,
    /// The detail of each ok check that has one.
    details: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// An empty registry (healthy: no check has failed).
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Snapshot::new())),
            details: Arc::default(),
        }
    }

    /// Marks `check` ok (registering it if new).
    pub fn set_ok(&self, check: &str) {
        self.set_detail(check, None);
        self.set(check, Check::Ok);
    }

    /// Marks `check` ok with a `detail` shown beside it (to logged-in users).
    pub fn set_ok_with(&self, check: &str, detail: impl Into<String>) {
        self.set_detail(check, Some(detail.into()));
        self.set(check, Check::Ok);
    }

    /// Marks `check` failed with `reason`.
    pub fn set_failed(&self, check: &str, reason: impl Into<String>) {
        self.set_detail(check, None);
        self.set(check, Check::Failed(reason.into()));
    }

    fn set_detail(&self, check: &str, detail: Option<String>) {
        let mut all = self.details.lock().unwrap_or_else(|e| e.into_inner());
        match detail {
            Some(d) => all.insert(check.to_owned(), d),
            None => all.remove(check),
        };
    }

    /// The detail of `check` while it is ok, if it has one.
    pub fn detail(&self, check: &str) -> Option<String> {
        let all = self.details.lock().unwrap_or_else(|e| e.into_inner());
        all.get(check).cloned()
    }

    fn set(&self, check: &str, state: Check) {
        self.tx.send_if_modified(|all| {
            if all.get(check) == Some(&state) {
                return false;
            }
            match &state {
                Check::Ok => tracing::info!(check, "health check ok"),
                Check::Failed(reason) => tracing::warn!(check, reason, "health check failed"),
            }
            all.insert(check.to_owned(), state);
            true
        });
    }

    /// The current state of every check.
    pub fn snapshot(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    /// True when no check has failed.
    pub fn is_ok(&self) -> bool {
        self.tx.borrow().values().all(Check::is_ok)
    }

    /// Sees every change (the receiver's first value is the current state).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failing one check makes the whole degraded; recovery restores it; watchers see both
    /// changes and no repeated ones.
    #[tokio::test]
    async fn checks_fail_and_recover_and_changes_are_seen() {
        let h = Health::new();
        let mut rx = h.subscribe();
        assert!(h.is_ok());
        h.set_ok(DATABASE);
        h.set_ok(BROKER);
        assert!(h.is_ok());
        rx.mark_unchanged();
        h.set_failed(DATABASE, "disk full");
        assert!(!h.is_ok());
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            rx.borrow_and_update().get(DATABASE),
            Some(&Check::Failed("disk full".into()))
        );
        h.set_failed(DATABASE, "disk full");
        assert!(!rx.has_changed().unwrap(), "same state is no change");
        let clone = h.clone();
        clone.set_ok(DATABASE);
        assert!(h.is_ok());
        assert!(rx.has_changed().unwrap());
        assert_eq!(h.snapshot().len(), 2);
        rx.mark_unchanged();
        h.set_ok_with(DATABASE, "12 rows behind");
        h.set_ok_with(DATABASE, "3 rows behind");
        assert!(!rx.has_changed().unwrap(), "a new detail is no change");
        assert_eq!(h.detail(DATABASE).as_deref(), Some("3 rows behind"));
        h.set_failed(DATABASE, "disk full");
        assert_eq!(h.detail(DATABASE), None, "a failure replaces the detail");
    }
}
