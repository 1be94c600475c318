//! `GET /devices`: every registered device with presence, last seen, last telemetry values and
//! whether its access list is in sync; `GET /audit`: who did what.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, blocking, params};
use crate::model::{DeviceId, format_ts};
use crate::store::RangeQuery;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(_user: Principal, state: Shared) -> Response {
    respond(devices(&state).await)
}

async fn devices(state: &Shared) -> Result<Response, ApiError> {
    let (devices, statuses, versions, (version, _), last) = blocking(&state.ctx.store, |s| {
        let devices = s.devices()?;
        let mut last = HashMap::new();
        for d in &devices {
            let q = RangeQuery {
                limit: 1,
                device: DeviceId::parse(&d.id),
                ..RangeQuery::default()
            };
            if let Some(row) = s.telemetry(&q)?.into_iter().next() {
                last.insert(d.id.clone(), row);
            }
        }
        Ok((
            devices,
            s.device_statuses()?,
            s.device_access_versions()?,
            s.access_list()?,
            last,
        ))
    })
    .await?;
    let statuses: HashMap<_, _> = statuses
        .into_iter()
        .map(|s| (s.device.clone(), s))
        .collect();
    let presence = state.ctx.commands.presence();
    let list: Vec<Value> = devices
        .into_iter()
        .map(|d| {
            let online = DeviceId::parse(&d.id).is_some_and(|id| presence.is_online(&id));
            let status = statuses.get(&d.id);
            let synced = versions.get(&d.id).copied();
            let telemetry = last.get(&d.id).map(|r| {
                json!({"timestamp": format_ts(r.ts_ms), "tmp": r.data.get("tmp"), "lf": r.data.get("lf"), "locked": r.data.get("locked")})
            });
            json!({
                "id": d.id,
                "enabled": d.enabled,
                "created": format_ts(d.created_ms),
                "online": online,
                "since": status.map(|s| format_ts(s.since_ms)),
                "last_seen": status.map(|s| format_ts(s.last_seen_ms)),
                "last_telemetry": telemetry,
                "access_version": synced,
                "access_in_sync": synced == Some(version),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "devices": list, "access_version": version }),
    ))
}

pub async fn audit(_user: Principal, q: HashMap<String, String>, state: Shared) -> Response {
    respond(audit_log(q, &state).await)
}

async fn audit_log(q: HashMap<String, String>, state: &Shared) -> Result<Response, ApiError> {
    let limit =
        params::parse_limit(q.get("limit").map(String::as_str)).map_err(ApiError::BadRequest)?;
    let rows = blocking(&state.ctx.store, move |s| s.audit_log(limit)).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"timestamp": format_ts(r.ts_ms), "user": r.username, "action": r.action, "target": r.target, "detail": r.detail}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "audit": rows })))
}
