//! Rules from JSON objects, checked field by field: every refusal is one sentence that starts
//! with the field's name (`for_secs must be ...`), for API answers and for a hand-edited database.

use super::rule::{Condition, Op, Spec};
use crate::model::{DEVICE_ID_RULE, DeviceId};
use crate::notify::Severity;
use serde_json::{Map, Value};

/// Longest duration a rule may name: 30 days.
pub const MAX_SECS: u64 = 30 * 86_400;
/// Longest rule name and incident type.
const MAX_NAME: usize = 100;
const MAX_TYPE: usize = 128;
/// Largest `count` of an `access_denied` rule (and most entries in `types` / `devices`).
const MAX_COUNT: u64 = 1000;

/// Every field a rule body may carry.
const FIELDS: &[&str] = &[
    "name",
    "enabled",
    "kind",
    "severity",
    "devices",
    "metric",
    "op",
    "value",
    "hysteresis",
    "after_secs",
    "types",
    "count",
    "window_secs",
    "for_secs",
    "keep_firing_for_secs",
    "resolve_after_secs",
    "reminder_first_secs",
    "reminder_every_secs",
];

/// What the parser may check against: registered devices and numeric telemetry fields seen.
/// `None` skips the check (reading rules back from the database).
#[derive(Debug, Default)]
pub struct Known {
    pub devices: Option<Vec<String>>,
    pub metrics: Option<Vec<String>>,
}

/// A parsed rule body: name, switch and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub name: String,
    pub enabled: bool,
    pub spec: Spec,
}

/// Parses a whole rule (name, enabled and spec).
pub fn rule(body: &Map<String, Value>, known: &Known) -> Result<Parsed, String> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "{unknown} is not a rule field; use {}.",
            FIELDS.join(", ")
        ));
    }
    let name = match body.get("name") {
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => return Err("name must be a text (what the alert is called).".into()),
    };
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "name must be 1 to {MAX_NAME} printable characters."
        ));
    }
    let enabled = match body.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("enabled must be true or false.".into()),
    };
    Ok(Parsed {
        name,
        enabled,
        spec: spec(body, known)?,
    })
}

/// Parses the spec part of a rule.
pub fn spec(body: &Map<String, Value>, known: &Known) -> Result<Spec, String> {
    let severity = match body.get("severity").and_then(Value::as_str) {
        None if !body.contains_key("severity") => Severity::Warning,
        Some("warning") => Severity::Warning,
        Some("critical") => Severity::Critical,
        _ => return Err("severity must be \"warning\" or \"critical\".".into()),
    };
    let condition = condition(body, known)?;
    let mut spec = Spec::new(severity, condition);
    spec.devices = devices(body, known)?;
    if spec.devices.is_some() && matches!(spec.condition, Condition::Health) {
        return Err("devices must be null for health rules (they are about rzmon itself).".into());
    }
    let secs = |field, default| opt_secs(body, field).map(|v| v.unwrap_or(default));
    spec.for_secs = secs("for_secs", spec.for_secs)?;
    spec.keep_firing_for_secs = secs("keep_firing_for_secs", spec.keep_firing_for_secs)?;
    spec.resolve_after_secs = secs("resolve_after_secs", spec.resolve_after_secs)?;
    spec.reminder_first_secs = secs("reminder_first_secs", spec.reminder_first_secs)?;
    spec.reminder_every_secs = secs("reminder_every_secs", spec.reminder_every_secs)?;
    if spec.condition.event_like() && spec.resolve_after_secs == 0 {
        return Err("resolve_after_secs must be at least 1 for event-like rules.".into());
    }
    Ok(spec)
}

fn condition(body: &Map<String, Value>, known: &Known) -> Result<Condition, String> {
    const KINDS: &str = "threshold, door_open_for, silence, incident, access_denied or health";
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("kind must be one of {KINDS}."))?;
    Ok(match kind {
        "threshold" => Condition::Threshold {
            metric: metric(body, known)?,
            op: match body.get("op").and_then(Value::as_str) {
                Some("above") => Op::Above,
                Some("below") => Op::Below,
                _ => return Err("op must be \"above\" or \"below\".".into()),
            },
            value: number(body, "value")?
                .ok_or("value must be a number (the threshold) for threshold rules.")?,
            hysteresis: match number(body, "hysteresis")? {
                None => 0.0,
                Some(h) if h >= 0.0 => h,
                Some(_) => return Err("hysteresis must not be negative.".into()),
            },
        },
        "door_open_for" => Condition::DoorOpenFor,
        "silence" => Condition::Silence {
            after_secs: match opt_secs(body, "after_secs")? {
                Some(s) if s > 0 => s,
                _ => {
                    return Err(format!(
                        "after_secs must be a whole number of seconds from 1 to {MAX_SECS} for silence rules."
                    ));
                }
            },
        },
        "incident" => Condition::Incident {
            types: types(body)?,
        },
        "access_denied" => Condition::AccessDenied {
            count: match body.get("count").and_then(Value::as_u64) {
                Some(n) if (1..=MAX_COUNT).contains(&n) => u32::try_from(n).unwrap_or(1),
                _ => {
                    return Err(format!(
                        "count must be a whole number from 1 to {MAX_COUNT}."
                    ));
                }
            },
            window_secs: match opt_secs(body, "window_secs")? {
                Some(s) if s > 0 => s,
                _ => {
                    return Err(format!(
                        "window_secs must be a whole number of seconds from 1 to {MAX_SECS}."
                    ));
                }
            },
        },
        "health" => Condition::Health,
        other => return Err(format!("kind {other:?} is unknown; use {KINDS}.")),
    })
}

/// `tmp`, `lf` or a numeric field some device has sent.
fn metric(body: &Map<String, Value>, known: &Known) -> Result<String, String> {
    let m = body
        .get("metric")
        .and_then(Value::as_str)
        .map(str::trim)
        .ok_or("metric must name a telemetry field: tmp, lf or another numeric field.")?;
    if m == "locked" {
        return Err("metric locked is not numeric; use a door_open_for rule for the door.".into());
    }
    let seen = m == "tmp"
        || m == "lf"
        || known
            .metrics
            .as_ref()
            .is_none_or(|k| k.iter().any(|x| x == m));
    let shaped =
        !m.is_empty() && m.len() <= 64 && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !shaped || !seen {
        let others = known
            .metrics
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|k| format!(" (seen so far: {})", k.join(", ")))
            .unwrap_or_default();
        return Err(format!(
            "metric {m:?} is unknown; use tmp, lf or a numeric field your devices send{others}."
        ));
    }
    Ok(m.to_owned())
}

/// A finite number, `None` when absent. JSON has no NaN; strings such as "NaN" are refused too.
fn number(body: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(format!("{field} must be a finite number.")),
        },
        Some(_) => Err(format!(
            "{field} must be a finite number (not NaN, text or infinity)."
        )),
    }
}

/// Whole seconds from 0 to 30 days; `None` when absent.
fn opt_secs(body: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(s) if s <= MAX_SECS => Ok(Some(s)),
            _ => Err(format!(
                "{field} must be a whole number of seconds from 0 to {MAX_SECS} (not negative)."
            )),
        },
    }
}

fn types(body: &Map<String, Value>) -> Result<Vec<String>, String> {
    let bad = || {
        format!(
            "types must be a list of 1 to {MAX_COUNT} incident types (texts of 1 to {MAX_TYPE} characters)."
        )
    };
    let list = body
        .get("types")
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    if list.is_empty() || list.len() > MAX_COUNT as usize {
        return Err(bad());
    }
    list.iter()
        .map(|v| match v.as_str().map(str::trim) {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_TYPE => Ok(s.to_owned()),
            _ => Err(bad()),
        })
        .collect()
}

/// `null`/absent: every device; otherwise a non-empty list of registered device ids.
fn devices(body: &Map<String, Value>, known: &Known) -> Result<Option<Vec<DeviceId>>, String> {
    let list = match body.get("devices") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_COUNT as usize => list,
        Some(_) => {
            return Err("devices must be a list of device ids, or null for every device.".into());
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let id = v
            .as_str()
            .and_then(DeviceId::parse)
            .ok_or_else(|| format!("devices must hold device ids ({DEVICE_ID_RULE})."))?;
        if let Some(registered) = &known.devices
            && !registered.iter().any(|d| d == id.as_str())
        {
            return Err(format!("devices: {id} is not a registered device."));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Parsed, String> {
        let known = Known {
            devices: Some(vec!["esp32-1".into()]),
            metrics: Some(vec!["co2".into()]),
        };
        rule(v.as_object().unwrap(), &known)
    }

    /// Every default rule survives its own serialization (the database round trip).
    #[test]
    fn defaults_round_trip() {
        for (name, spec) in super::super::rule::defaults() {
            let mut body = serde_json::to_value(&spec).unwrap();
            body["name"] = json!(name);
            assert_eq!(parse(body).unwrap().spec, spec, "{name}");
        }
    }

    /// A minimal threshold rule takes the documented defaults.
    #[test]
    fn threshold_defaults() {
        let p = parse(json!({"name": "CO2", "kind": "threshold", "metric": "co2", "op": "above", "value": 1000})).unwrap();
        assert!(p.enabled);
        assert_eq!(p.spec.severity, Severity::Warning);
        assert_eq!((p.spec.for_secs, p.spec.resolve_after_secs), (0, 900));
        assert_eq!(
            (p.spec.reminder_first_secs, p.spec.reminder_every_secs),
            (1800, 7200)
        );
    }

    /// Bad input is refused with a sentence that starts with the field's name.
    #[test]
    fn refusals_name_the_field() {
        let base =
            json!({"name": "x", "kind": "threshold", "metric": "tmp", "op": "above", "value": 30});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let cases = [
            (with("metric", json!("nope")), "metric"),
            (with("metric", json!("locked")), "metric"),
            (with("for_secs", json!(-5)), "for_secs"),
            (with("value", json!("NaN")), "value"),
            (with("hysteresis", json!(-1)), "hysteresis"),
            (with("devices", json!(["ghost"])), "devices"),
            (with("devices", json!([])), "devices"),
            (with("severity", json!("loud")), "severity"),
            (with("kind", json!("magic")), "kind"),
            (with("op", json!("equals")), "op"),
            (with("name", json!("")), "name"),
            (with("enabled", json!("yes")), "enabled"),
            (with("bogus", json!(1)), "bogus"),
            (json!({"name": "s", "kind": "silence"}), "after_secs"),
            (
                json!({"name": "a", "kind": "access_denied", "count": 0, "window_secs": 5}),
                "count",
            ),
            (
                json!({"name": "i", "kind": "incident", "types": []}),
                "types",
            ),
            (
                json!({"name": "h", "kind": "health", "devices": ["esp32-1"]}),
                "devices",
            ),
        ];
        for (body, field) in cases {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert!(err.starts_with(field), "{body}: {err}");
        }
    }
}
