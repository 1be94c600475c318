//! `GET /alerts` (active and history, with the `/incidents` filters plus `rule` and `state`)
//! and `POST /alerts/{id}/ack` (who and when is kept; allowed while firing and after
//! resolution; idempotent). Rules are in `alert_rules`.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, blocking, params};
use crate::alerts::{service, view};
use crate::model::now_ms;
use crate::store::{AlertQuery, AlertState};
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(_user: Principal, q: HashMap<String, String>, state: Shared) -> Response {
    respond(alerts(q, &state).await)
}

fn query(q: &HashMap<String, String>) -> Result<AlertQuery, String> {
    let range = params::range_query(q)?;
    let rule_id = match q.get("rule").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| "rule must be a rule id (a whole number).".to_owned())?,
        ),
    };
    let state = match q.get("state").map(|v| v.trim()).filter(|v| !v.is_empty()) {
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

async fn alerts(q: HashMap<String, String>, state: &Shared) -> Result<Response, ApiError> {
    let q = query(&q).map_err(ApiError::BadRequest)?;
    let (rows, notices) = blocking(&state.ctx.store, move |s| {
        let rows = s.alerts(&q)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        Ok((rows, s.alert_notices(&ids)?))
    })
    .await?;
    let empty = Vec::new();
    let list: Vec<Value> = rows
        .iter()
        .map(|r| view::alert(r, notices.get(&r.id).unwrap_or(&empty)))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "alerts": list })))
}

pub async fn ack(id: String, user: Principal, state: Shared) -> Response {
    respond(acknowledge(id, user, &state).await)
}

async fn acknowledge(id: String, user: Principal, state: &Shared) -> Result<Response, ApiError> {
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
                "alertAck",
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
        state.ctx.alerts.changed();
        service::publish_alert(&state.ctx.hub, &row, notices);
    }
    Ok(json_response(StatusCode::OK, &view::alert(&row, notices)))
}
