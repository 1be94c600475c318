//! What the rule engine hands to delivery: one [`Notice`] per alert transition that a human
//! should hear about. The contract between `alerts` (which decides *when*) and `notify` (which
//! decides *how*, *where* and whether quiet hours, grouping or the storm cap hold it back).

use crate::model::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How loud an alert is. Critical alerts pass quiet hours unless a channel says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

/// Which transition of an alert a notice announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The alert started firing.
    Firing,
    /// Still firing and not acknowledged after the reminder interval.
    Reminder,
    /// The alert recovered. Delivery sends it on a channel only if that channel got the firing.
    Resolved,
}

/// One alert transition to deliver. Built by `alerts`, persisted by `notify` into its outbox
/// before `submit` returns, so a restart does not lose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The alert row this notice belongs to (`alerts.id`).
    pub alert_id: i64,
    pub kind: NoticeKind,
    /// The rule that fired (`alert_rules.id`) and its human name, e.g. "Temperature high".
    pub rule_id: i64,
    pub rule_name: String,
    /// The device the alert is about; `None` for alerts about rzmon itself (e.g. a failed backup).
    pub device: Option<DeviceId>,
    pub severity: Severity,
    /// One line for a phone: "esp32-1: temperature 36.2 °C ≥ 35 °C".
    pub summary: String,
    /// The value that crossed the threshold and the threshold, where the rule has them.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// When the alert started firing and when this transition happened (epoch ms).
    pub started_ms: i64,
    pub at_ms: i64,
    /// Extra labels for receivers that group by them (webhook `labels`), e.g. `metric`.
    pub labels: BTreeMap<String, String>,
}
