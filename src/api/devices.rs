//! `GET /devices`: every registered device with presence, last seen, last telemetry values and
//! whether its access list is in sync; `POST /devices` / `DELETE /devices/{id}`: register (the
//! MQTT password is shown once) and remove; `GET /audit`: who did what.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, blocking, params};
use crate::model::{DEVICE_ID_RULE, DeviceId, format_ts};
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

/// What `POST /devices` expects.
pub const EXPECTED_ADD_BODY: &str = r#"Send {"id": "esp32-1"}."#;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDevice {
    id: String,
}

pub async fn add(user: Principal, req: AddDevice, state: Shared) -> Response {
    respond(add_device(user, req, &state).await)
}

/// Registers a device and answers its MQTT credentials — the only time the password is shown.
async fn add_device(user: Principal, req: AddDevice, state: &Shared) -> Result<Response, ApiError> {
    let id = DeviceId::parse(&req.id)
        .ok_or_else(|| ApiError::bad_request(format!("The device id must be {DEVICE_ID_RULE}.")))?;
    let password = crate::secrets::random_password(crate::secrets::DEVICE_PASSWORD_LEN)
        .map_err(ApiError::internal)?;
    let hash = crate::secrets::hash_device_secret(&password).map_err(ApiError::internal)?;
    let broker_hash = crate::secrets::mosquitto_hash(&password).map_err(ApiError::internal)?;
    let (d, u) = (id.clone(), user.username.clone());
    let created = blocking(&state.ctx.store, move |s| {
        match s.create_device(&d, &hash) {
            Err(crate::store::StoreError::Exists(_)) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => {
                s.set_broker_hash(d.as_str(), &broker_hash)?;
                s.audit(&u, "deviceAdd", d.as_str(), &json!({}))?;
                Ok(true)
            }
        }
    })
    .await?;
    if !created {
        return Err(ApiError::Conflict(format!(
            "A device named {id} exists already."
        )));
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "device": id, "username": id, "password": password }),
    ))
}

pub async fn remove(id: String, user: Principal, state: Shared) -> Response {
    respond(remove_device(id, user, &state).await)
}

/// Removes a device (its history stays); its live connection is closed within a second.
async fn remove_device(id: String, user: Principal, state: &Shared) -> Result<Response, ApiError> {
    let device = DeviceId::parse(&id)
        .ok_or_else(|| ApiError::bad_request(format!("The device id must be {DEVICE_ID_RULE}.")))?;
    let (d, u) = (device.to_string(), user.username.clone());
    let removed = blocking(&state.ctx.store, move |s| {
        let removed = s.remove_device(&d)?;
        if removed {
            s.audit(&u, "deviceRemove", &d, &json!({}))?;
        }
        Ok(removed)
    })
    .await?;
    if !removed {
        return Err(ApiError::Missing(format!(
            "There is no device named {device}."
        )));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "device": device, "removed": true }),
    ))
}
