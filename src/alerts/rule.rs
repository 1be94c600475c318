//! What a rule says: its kind with the kind's parameters, scope, severity and timers, plus the
//! default rules a fresh install starts with. Stored as JSON (`Spec`'s serialization) and read
//! back through `parse`, so one set of sentences checks the API and the database alike.

use crate::model::DeviceId;
use crate::notify::Severity;
use serde::Serialize;

/// Default seconds until an event-like alert (`incident`, `access_denied`) resolves itself.
pub const RESOLVE_AFTER: u64 = 15 * 60;
/// Default first reminder while firing and unacknowledged, and the interval after it.
pub const REMINDER_FIRST: u64 = 30 * 60;
pub const REMINDER_EVERY: u64 = 2 * 60 * 60;

/// A stored rule with its database fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    /// One of the rules created on first start.
    pub builtin: bool,
    /// No notices while `now < snoozed_until_ms`.
    pub snoozed_until_ms: Option<i64>,
    pub spec: Spec,
}

impl Rule {
    pub fn snoozed(&self, now_ms: i64) -> bool {
        self.snoozed_until_ms.is_some_and(|t| now_ms < t)
    }

    /// Whether the rule looks at `device` (`None` for system alerts).
    pub fn covers(&self, device: Option<&DeviceId>) -> bool {
        match (&self.spec.devices, device) {
            (_, None) => matches!(self.spec.condition, Condition::Health),
            (None, Some(_)) => !matches!(self.spec.condition, Condition::Health),
            (Some(list), Some(d)) => list.contains(d),
        }
    }

    /// The incident type an alert of this rule is written as: `alert:<name as a slug>`.
    pub fn incident_type(&self) -> String {
        let slug: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("alert:{slug}")
    }
}

/// Everything about a rule except its name and switch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    pub severity: Severity,
    /// `None`: every device.
    pub devices: Option<Vec<DeviceId>>,
    #[serde(flatten)]
    pub condition: Condition,
    /// How long the condition must hold before the alert fires (`threshold`, `door_open_for`).
    pub for_secs: u64,
    /// How long a recovered `threshold` alert keeps firing before it resolves.
    pub keep_firing_for_secs: u64,
    /// Event-like alerts resolve this long after their last event.
    pub resolve_after_secs: u64,
    /// First reminder while firing and unacknowledged (0 = none) and the interval after it.
    pub reminder_first_secs: u64,
    pub reminder_every_secs: u64,
}

/// `above` fires at `value ≥ threshold`, `below` at `value ≤ threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Above,
    Below,
}

/// The rule kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// A numeric telemetry field crosses `value`; recovers `hysteresis` back on the other side.
    Threshold {
        metric: String,
        op: Op,
        value: f64,
        hysteresis: f64,
    },
    /// `locked` is false for `for_secs`.
    DoorOpenFor,
    /// No message from a device for `after_secs`.
    Silence { after_secs: u64 },
    /// A device incident of one of `types`, at once.
    Incident { types: Vec<String> },
    /// `count` denied card swipes within `window_secs` at one device.
    AccessDenied { count: u32, window_secs: u64 },
    /// A health check of rzmon itself fails (system alert, no device).
    Health,
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Threshold { .. } => "threshold",
            Self::DoorOpenFor => "door_open_for",
            Self::Silence { .. } => "silence",
            Self::Incident { .. } => "incident",
            Self::AccessDenied { .. } => "access_denied",
            Self::Health => "health",
        }
    }

    /// Event-like alerts resolve by themselves after `resolve_after_secs`.
    pub fn event_like(&self) -> bool {
        matches!(self, Self::Incident { .. } | Self::AccessDenied { .. })
    }
}

impl Spec {
    /// A rule with the default timers.
    pub fn new(severity: Severity, condition: Condition) -> Self {
        Self {
            severity,
            devices: None,
            condition,
            for_secs: 0,
            keep_firing_for_secs: 0,
            resolve_after_secs: RESOLVE_AFTER,
            reminder_first_secs: REMINDER_FIRST,
            reminder_every_secs: REMINDER_EVERY,
        }
    }

    fn lasting(mut self, for_secs: u64) -> Self {
        self.for_secs = for_secs;
        self
    }
}

/// Incident types the default security rule fires on at once.
pub const SECURITY_INCIDENTS: &[&str] = &[
    "unauthorized_access",
    "door_forced",
    "forced_entry",
    "tamper",
    "intrusion",
];

/// The rules of a fresh install (name, spec): server-room sense out of the box.
pub fn defaults() -> Vec<(&'static str, Spec)> {
    use Severity::{Critical, Warning};
    let threshold = |metric: &str, op, value, hysteresis| Condition::Threshold {
        metric: metric.into(),
        op,
        value,
        hysteresis,
    };
    vec![
        (
            "Temperature high",
            Spec::new(Warning, threshold("tmp", Op::Above, 30.0, 1.0)).lasting(120),
        ),
        (
            "Temperature critical",
            Spec::new(Critical, threshold("tmp", Op::Above, 35.0, 1.0)).lasting(120),
        ),
        (
            "Humidity low",
            Spec::new(Warning, threshold("lf", Op::Below, 20.0, 1.0)).lasting(600),
        ),
        (
            "Humidity high",
            Spec::new(Warning, threshold("lf", Op::Above, 80.0, 1.0)).lasting(600),
        ),
        (
            "Door unlocked too long",
            Spec::new(Warning, Condition::DoorOpenFor).lasting(600),
        ),
        (
            "Device silent",
            Spec::new(Warning, Condition::Silence { after_secs: 180 }),
        ),
        (
            "Security incident",
            Spec::new(
                Critical,
                Condition::Incident {
                    types: SECURITY_INCIDENTS.iter().map(|s| (*s).to_owned()).collect(),
                },
            ),
        ),
        (
            "Denied card swipes",
            Spec::new(
                Warning,
                Condition::AccessDenied {
                    count: 5,
                    window_secs: 120,
                },
            ),
        ),
        ("rzmon health", Spec::new(Critical, Condition::Health)),
    ]
}
