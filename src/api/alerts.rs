//! `GET /alerts` (active and history, with the `/incidents` filters plus `rule` and `state`)
//! and `POST /alerts/{id}/ack` (who and when is kept; allowed while firing and after
//! resolution; idempotent). Rules are in `alert_rules`.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::params::{RangeParams, present};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking};
use crate::alerts::{service, view};
use crate::model::{AuditAction, now_ms};
use crate::store::{AlertQuery, AlertState};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    let list = t
        .get("alerts")
        .and(query::<Params>())
        .and(t.state())
        .then(alerts);
    let ack = t
        .protected_param(Method::POST, "alerts/{id}/ack")
        .and(t.state())
        .then(acknowledge);
    finish(list.or(ack))
}

/// `GET /alerts` parameters: the range filters plus `rule` and `state`.
#[derive(Deserialize)]
struct Params {
    #[serde(flatten)]
    range: RangeParams,
    rule: Option<String>,
    state: Option<String>,
}

fn alert_query(q: &Params) -> Result<AlertQuery, String> {
    let range = q.range.parse()?;
    let rule_id = match present(&q.rule) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| "rule must be a rule id (a whole number).".to_owned())?,
        ),
    };
    let state = match present(&q.state) {
        None => None,
        Some("active") => Some(AlertState::Active),
        Some("firing") => Some(AlertState::Firing),
        Some("acknowledged") => Some(AlertState::Acknowledged),
        Some("resolved") => Some(AlertState::Resolved),
        Some(_) => {
            return Err("state must be active, firing, acknowledged or resolved.".to_owned());
        }
    };
    Ok(AlertQuery {
        range,
        rule_id,
        state,
    })
}

async fn alerts(_user: Principal, q: Params, state: Shared) -> Result<Response, ApiError> {
    let q = alert_query(&q).map_err(ApiError::BadRequest)?;
    let (rows, notices, deliveries) = blocking(&state.ctx.store, move |s| {
        let rows = s.alerts(&q)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        Ok((rows, s.alert_notices(&ids)?, s.deliveries_for_alerts(&ids)?))
    })
    .await?;
    let empty = Vec::new();
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = view::alert(r, notices.get(&r.id).unwrap_or(&empty));
            v["deliveries"] = view::deliveries(&deliveries, r.id);
            v
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "alerts": list })))
}

async fn acknowledge(id: String, user: Principal, state: Shared) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("The alert id must be a whole number."))?;
    let username = user.username.clone();
    let (row, notices, fresh) = blocking(&state.ctx.store, move |s| {
        let before = s.alert(id)?;
        let Some(before) = before else {
            return Ok((None, HashMap::new(), false));
        };
        let row = s.ack_alert(id, &username, now_ms())?;
        let fresh = before.acked_ms.is_none();
        if fresh {
            s.audit(
                &username,
                AuditAction::AlertAck,
                &id.to_string(),
                &json!({"rule": before.rule_name, "device": before.device}),
            )?;
        }
        Ok((row, s.alert_notices(&[id])?, fresh))
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::Missing(format!("There is no alert {id}.")))?;
    let empty = Vec::new();
    let notices = notices.get(&id).unwrap_or(&empty);
    if fresh {
        state.ctx.alerts.changed().await;
        service::publish_alert(&state.ctx.hub, &row, notices);
    }
    Ok(json_response(StatusCode::OK, &view::alert(&row, notices)))
}
