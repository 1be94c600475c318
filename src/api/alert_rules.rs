//! `GET/POST /alert-rules`, `PUT/DELETE /alert-rules/{id}` and `POST /alert-rules/{id}/snooze`.
//! Bodies are checked by `alerts::parse` (sentences that name the field); a `PUT` changes only
//! the fields it sends. Every change is audited and tells the running engine to re-read.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking};
use crate::alerts::{Rule, parse, rule_from_row, view};
use crate::model::{AuditAction, now_ms};
use crate::store::{RuleRow, Store, StoreError};
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    let list = t.get("alert-rules").and(t.state()).then(rules);
    let create = t
        .post("alert-rules")
        .and(t.json::<Map<String, Value>>(EXPECTED_RULE))
        .and(t.state())
        .then(create_rule);
    let update = t
        .protected_param(Method::PUT, "alert-rules/{id}")
        .and(t.json::<Map<String, Value>>(EXPECTED_RULE))
        .and(t.state())
        .then(update_rule);
    let delete = t
        .protected_param(Method::DELETE, "alert-rules/{id}")
        .and(t.state())
        .then(delete_rule);
    let snooze = t
        .protected_param(Method::POST, "alert-rules/{id}/snooze")
        .and(t.json::<Map<String, Value>>(EXPECTED_SNOOZE))
        .and(t.state())
        .then(snooze_rule);
    finish(list.or(create).or(update).or(delete).or(snooze))
}

/// What the rule endpoints expect.
const EXPECTED_RULE: &str = r#"Send a rule as a JSON object, e.g. {"name": "Hot", "kind": "threshold", "metric": "tmp", "op": "above", "value": 30, "for_secs": 120}."#;
const EXPECTED_SNOOZE: &str = r#"Send {"for_secs": 3600} (0 ends the snooze)."#;

/// Fields that belong to one kind only; dropped from a stored rule when a `PUT` changes kind.
const KIND_FIELDS: &[&str] = &[
    "metric",
    "op",
    "value",
    "hysteresis",
    "after_secs",
    "types",
    "count",
    "window_secs",
];

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("The rule id must be a whole number."))
}

fn to_rule(row: &RuleRow) -> Result<Rule, ApiError> {
    rule_from_row(row)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored rule {} is invalid", row.id)))
}

fn answer(status: StatusCode, row: &RuleRow) -> Result<Response, ApiError> {
    Ok(json_response(status, &view::rule(&to_rule(row)?, now_ms())))
}

/// Registered devices and the numeric telemetry fields devices have sent.
fn known(s: &Store) -> crate::store::Result<parse::Known> {
    let devices = s.devices()?.into_iter().map(|d| d.id.to_string()).collect();
    let mut metrics: Vec<String> = Vec::new();
    for (_, _, payload) in s.latest_telemetry()? {
        if let Value::Object(m) = payload {
            for (k, v) in m {
                if v.is_number() && k != "seq" && !metrics.contains(&k) {
                    metrics.push(k);
                }
            }
        }
    }
    metrics.sort();
    Ok(parse::Known {
        devices: Some(devices),
        metrics: Some(metrics),
    })
}

async fn rules(_user: Principal, state: Shared) -> Result<Response, ApiError> {
    let rows = blocking(&state.ctx.store, Store::alert_rules).await?;
    let now = now_ms();
    let list: Vec<Value> = rows
        .iter()
        .filter_map(rule_from_row)
        .map(|r| view::rule(&r, now))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "rules": list })))
}

async fn create_rule(
    user: Principal,
    body: Map<String, Value>,
    state: Shared,
) -> Result<Response, ApiError> {
    let row = blocking(&state.ctx.store, move |s| {
        let parsed = match parse::rule(&body, &known(s)?) {
            Ok(p) => p,
            Err(e) => return Ok(Err(ApiError::BadRequest(e))),
        };
        let spec = serde_json::to_string(&parsed.spec).unwrap_or_default();
        match s.insert_alert_rule(&parsed.name, parsed.enabled, &spec) {
            Err(StoreError::Exists(name)) => Ok(Err(ApiError::Conflict(format!(
                "A rule named {name:?} exists already."
            )))),
            Err(e) => Err(e),
            Ok(row) => {
                s.audit(
                    &user.username,
                    AuditAction::AlertRuleAdd,
                    &row.id.to_string(),
                    &json!({"name": row.name}),
                )?;
                Ok(Ok(row))
            }
        }
    })
    .await??;
    state.ctx.alerts.changed().await;
    answer(StatusCode::CREATED, &row)
}

async fn update_rule(
    id: String,
    user: Principal,
    body: Map<String, Value>,
    state: Shared,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let row = blocking(&state.ctx.store, move |s| {
        let Some(old) = s.alert_rule(id)? else {
            return Ok(Err(ApiError::Missing(format!(
                "There is no alert rule {id}."
            ))));
        };
        let Some(old_rule) = rule_from_row(&old) else {
            return Ok(Err(ApiError::internal(anyhow::anyhow!(
                "stored rule {id} is invalid"
            ))));
        };
        let mut merged = match serde_json::to_value(&old_rule.spec) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if body
            .get("kind")
            .is_some_and(|k| k != &json!(old_rule.spec.condition.kind()))
        {
            merged.retain(|k, _| !KIND_FIELDS.contains(&k.as_str()));
        }
        merged.insert("name".into(), json!(old.name));
        merged.insert("enabled".into(), json!(old.enabled));
        merged.extend(body.clone());
        let parsed = match parse::rule(&merged, &known(s)?) {
            Ok(p) => p,
            Err(e) => return Ok(Err(ApiError::BadRequest(e))),
        };
        let spec = serde_json::to_string(&parsed.spec).unwrap_or_default();
        match s.update_alert_rule(id, &parsed.name, parsed.enabled, &spec) {
            Err(StoreError::Exists(name)) => Ok(Err(ApiError::Conflict(format!(
                "A rule named {name:?} exists already."
            )))),
            Err(e) => Err(e),
            Ok(None) => Ok(Err(ApiError::Missing(format!(
                "There is no alert rule {id}."
            )))),
            Ok(Some(row)) => {
                s.audit(
                    &user.username,
                    AuditAction::AlertRuleChange,
                    &id.to_string(),
                    &Value::Object(body),
                )?;
                Ok(Ok(row))
            }
        }
    })
    .await??;
    state.ctx.alerts.changed().await;
    answer(StatusCode::OK, &row)
}

async fn delete_rule(id: String, user: Principal, state: Shared) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let deleted = blocking(&state.ctx.store, move |s| {
        let Some(old) = s.alert_rule(id)? else {
            return Ok(false);
        };
        s.delete_alert_rule(id)?;
        s.audit(
            &user.username,
            AuditAction::AlertRuleRemove,
            &id.to_string(),
            &json!({"name": old.name}),
        )?;
        Ok(true)
    })
    .await?;
    if !deleted {
        return Err(ApiError::Missing(format!("There is no alert rule {id}.")));
    }
    state.ctx.alerts.changed().await;
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "deleted": true}),
    ))
}

async fn snooze_rule(
    id: String,
    user: Principal,
    body: Map<String, Value>,
    state: Shared,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let secs = match body.get("for_secs").map(Value::as_u64) {
        Some(Some(s)) if s <= parse::MAX_SECS => s,
        _ => {
            return Err(ApiError::bad_request(format!(
                "for_secs must be a whole number of seconds from 0 to {} (0 ends the snooze).",
                parse::MAX_SECS
            )));
        }
    };
    if let Some(unknown) = body.keys().find(|k| *k != "for_secs") {
        return Err(ApiError::bad_request(format!(
            "{unknown} is not a snooze field; {EXPECTED_SNOOZE}"
        )));
    }
    let until = (secs > 0).then(|| now_ms() + crate::alerts::engine::secs_ms(secs));
    let row = blocking(&state.ctx.store, move |s| {
        let row = s.snooze_alert_rule(id, until)?;
        if row.is_some() {
            s.audit(
                &user.username,
                AuditAction::AlertRuleSnooze,
                &id.to_string(),
                &json!({"for_secs": secs}),
            )?;
        }
        Ok(row)
    })
    .await?
    .ok_or_else(|| ApiError::Missing(format!("There is no alert rule {id}.")))?;
    state.ctx.alerts.changed().await;
    answer(StatusCode::OK, &row)
}
