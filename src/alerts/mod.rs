//! The rule engine: server-side alert rules over what devices send, their presence and a clock
//! tick, with state persisted in SQLite so a restart neither loses nor repeats an alert.
//!
//! ```text
//! hub (typed, bounded; on lag: re-read the store) ─▶ engine (pure state machine) ─▶ service
//! clock tick, rule changes (Alerts::changed) ──────▶        service ─▶ store (alerts, incidents)
//!                                                           service ─▶ Notice channel ─▶ notify
//!                                                           service ─▶ hub {"type":"alert"}
//! ```
//! `rule` says what a rule is and which rules a fresh install has, `parse` checks rule bodies,
//! `engine` decides, `service` applies, `view` is the JSON shape.

pub mod engine;
pub mod parse;
pub mod rule;
pub mod service;
pub mod view;

#[cfg(test)]
mod lag_tests;
#[cfg(test)]
mod tests;

pub use rule::{Condition, Rule, Spec};
pub use service::{Deps, run};

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long an API call waits for the engine to apply its change before answering anyway.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The API's handle on the running engine: tell it that rules, snoozes or acknowledgements
/// changed in the store, and wait until it has re-read them, so that what the API answered
/// (a new rule, a snooze) already holds for the next reading. Cheap to clone; requests
/// coalesce (one reload covers every change made before it began).
#[derive(Clone)]
pub struct Alerts {
    /// Generation of the newest change request.
    requested: Arc<watch::Sender<u64>>,
    /// Generation the engine has applied.
    applied: Arc<watch::Sender<u64>>,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            requested: Arc::new(watch::channel(0).0),
            applied: Arc::new(watch::channel(0).0),
        }
    }
}

impl Alerts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rules, snoozes or acknowledgements changed: the engine re-reads them. Returns once it
    /// has (at most [`APPLY_WAIT`]; at once when no engine runs).
    pub async fn changed(&self) {
        let mut wanted = 0;
        self.requested.send_modify(|g| {
            *g += 1;
            wanted = *g;
        });
        if self.requested.receiver_count() == 0 {
            return;
        }
        let mut applied = self.applied.subscribe();
        let done = applied.wait_for(|g| *g >= wanted);
        if tokio::time::timeout(APPLY_WAIT, done).await.is_err() {
            tracing::warn!("the rule engine did not apply a rule change within 5 s");
        }
    }

    /// The engine's end: a receiver of change requests.
    fn requests(&self) -> watch::Receiver<u64> {
        self.requested.subscribe()
    }

    /// The engine applied every request up to `generation`.
    fn applied(&self, generation: u64) {
        self.applied.send_if_modified(|g| {
            let newer = generation > *g;
            if newer {
                *g = generation;
            }
            newer
        });
    }
}

/// A stored rule row as a [`Rule`]; `None` (logged) if its JSON no longer parses.
pub fn rule_from_row(row: &crate::store::RuleRow) -> Option<Rule> {
    let parsed = serde_json::from_str::<serde_json::Value>(&row.spec)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            let map = v.as_object().cloned().unwrap_or_default();
            parse::spec(&map, &parse::Known::default())
        });
    match parsed {
        Ok(spec) => Some(Rule {
            id: row.id,
            name: row.name.clone(),
            enabled: row.enabled,
            builtin: row.builtin,
            snoozed_until_ms: row.snoozed_until_ms,
            spec,
        }),
        Err(e) => {
            tracing::error!(rule = row.id, name = %row.name, error = %e, "stored alert rule is invalid; it is ignored");
            None
        }
    }
}
