//! How alerts and rules look as JSON: the one shape `GET /alerts`, `GET /alert-rules` and the
//! `{"type":"alert"}` WebSocket event share.

use super::rule::Rule;
use crate::model::format_ts;
use crate::store::AlertRow;
use serde_json::{Value, json};

/// `firing`, `acknowledged` (still firing) or `resolved`.
pub fn state(row: &AlertRow) -> &'static str {
    match (row.resolved_ms, row.acked_ms) {
        (Some(_), _) => "resolved",
        (None, Some(_)) => "acknowledged",
        (None, None) => "firing",
    }
}

/// An alert with the notices handed to delivery (`kind`, `at`).
pub fn alert(row: &AlertRow, notices: &[(String, i64)]) -> Value {
    let notices: Vec<Value> = notices
        .iter()
        .map(|(kind, at)| json!({"kind": kind, "at": format_ts(*at)}))
        .collect();
    json!({
        "id": row.id,
        "rule_id": row.rule_id,
        "rule": row.rule_name,
        "device": row.device,
        "subject": row.subject,
        "severity": row.severity,
        "state": state(row),
        "summary": row.summary,
        "value": row.value,
        "threshold": row.threshold,
        "started": format_ts(row.started_ms),
        "last_event": format_ts(row.last_event_ms),
        "resolved": row.resolved_ms.map(format_ts),
        "acknowledged": row.acked_ms.map(|at| json!({"by": row.acked_by, "at": format_ts(at)})),
        "notices": notices,
    })
}

/// A rule: database fields plus its spec's fields (`kind`, `severity`, `devices`, ...).
pub fn rule(r: &Rule, now_ms: i64) -> Value {
    let mut v = serde_json::to_value(&r.spec).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(r.id));
        m.insert("name".into(), json!(r.name));
        m.insert("enabled".into(), json!(r.enabled));
        m.insert("builtin".into(), json!(r.builtin));
        m.insert(
            "snoozed_until".into(),
            json!(r.snoozed_until_ms.filter(|&t| t > now_ms).map(format_ts)),
        );
        m.insert("incident_type".into(), json!(r.incident_type()));
    }
    v
}

/// The delivery record of alert `id` (per channel and notice: sent, failed with the reason,
/// held by quiet hours, ...) from `rows` of several alerts; `next` is when an open row is due.
pub fn deliveries(rows: &[crate::store::DeliveryRow], id: i64) -> Value {
    let list: Vec<Value> = rows
        .iter()
        .filter(|d| d.alert_id == id)
        .map(|d| {
            json!({"channel_id": d.channel_id, "channel": d.channel, "notice": d.notice,
                   "state": d.state, "detail": d.detail, "attempts": d.attempts,
                   "updated": format_ts(d.updated_ms), "next": d.next_ms.map(format_ts)})
        })
        .collect();
    Value::Array(list)
}
