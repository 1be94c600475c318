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
mod tests;

pub use rule::{Condition, Rule, Spec};
pub use service::{Deps, run};

use std::sync::Arc;
use tokio::sync::Notify;

/// The API's handle on the running engine: tell it that rules, snoozes or acknowledgements
/// changed in the store. Cheap to clone; signals coalesce (one reload covers many changes).
#[derive(Clone, Default)]
pub struct Alerts {
    changed: Arc<Notify>,
}

impl Alerts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rules or acknowledgements changed: the engine re-reads them.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    async fn wait_changed(&self) {
        self.changed.notified().await;
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
