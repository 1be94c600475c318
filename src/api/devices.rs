//! `GET /devices`: every registered device with presence, last seen, last telemetry values and
//! whether its access list is in sync, from one query; `POST /devices` / `DELETE /devices/{id}`: register (the
//! MQTT password is shown once) and remove; `POST /devices/{id}/password`: re-key (a new password,
//! shown once; the old one stops working); `GET /audit`: who did what.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking, params};
use crate::model::{AuditAction, DEVICE_ID_RULE, DeviceId, format_ts};
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    let list = t.get("devices").and(t.state()).then(devices);
    let add = t
        .post("devices")
        .and(t.json::<AddDevice>(EXPECTED_ADD_BODY))
        .and(t.state())
        .then(add_device);
    let remove = t
        .protected_param(Method::DELETE, "devices/{id}")
        .and(t.state())
        .then(remove_device);
    let rekey = t
        .protected_param(Method::POST, "devices/{id}/password")
        .and(t.state())
        .then(rekey_device);
    let audit = t
        .get("audit")
        .and(query::<AuditParams>())
        .and(t.state())
        .then(audit_log);
    finish(list.or(add).or(remove).or(rekey).or(audit))
}

async fn devices(_user: Principal, state: Shared) -> Result<Response, ApiError> {
    let (devices, version, configs) = blocking(&state.ctx.store, |s| {
        let (devices, version) = s.device_overview()?;
        let configs = devices
            .iter()
            .map(|d| {
                s.device_config(d.id.as_str())
                    .map(|c| c.map(|(config, _)| config))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((devices, version, configs))
    })
    .await?;
    let presence = state.ctx.commands.presence();
    let list: Vec<Value> = devices
        .into_iter()
        .zip(configs)
        .map(|(d, config)| {
            let telemetry = d.last_telemetry.map(|(ts, data)| {
                json!({"timestamp": format_ts(ts), "tmp": data.get("tmp"), "lf": data.get("lf"), "locked": data.get("locked")})
            });
            json!({
                "id": d.id,
                "enabled": d.enabled,
                "created": format_ts(d.created_ms),
                "online": presence.is_online(&d.id),
                "since": d.status.map(|(since, _)| format_ts(since)),
                "last_seen": d.status.map(|(_, seen)| format_ts(seen)),
                "last_telemetry": telemetry,
                "access_version": d.access_version,
                "access_in_sync": d.access_version == Some(version),
                "limits": limits(config.as_ref()),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "devices": list, "access_version": version }),
    ))
}

/// The device's own limits from the config it last reported (`getConfig`/`setConfig`): the
/// numeric `tmp_max` and `lf_max`, null when unknown. The dashboard uses them where no alert
/// rule sets a limit.
fn limits(config: Option<&Value>) -> Value {
    let num = |k: &str| config.and_then(|c| c.get(k)).filter(|v| v.is_number());
    json!({ "tmp_max": num("tmp_max"), "lf_max": num("lf_max") })
}

/// `GET /audit` parameters.
#[derive(serde::Deserialize)]
struct AuditParams {
    limit: Option<String>,
}

async fn audit_log(_user: Principal, q: AuditParams, state: Shared) -> Result<Response, ApiError> {
    let limit = params::parse_limit(params::present(&q.limit)).map_err(ApiError::BadRequest)?;
    let rows = blocking(&state.ctx.store, move |s| s.audit_log(limit)).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"timestamp": format_ts(r.ts_ms), "user": r.username, "action": r.action, "target": r.target, "detail": r.detail}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "audit": rows })))
}

/// What `POST /devices` expects.
const EXPECTED_ADD_BODY: &str = r#"Send {"id": "esp32-1"}."#;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDevice {
    id: String,
}

/// Registers a device and answers its MQTT credentials — the only time the password is shown.
async fn add_device(user: Principal, req: AddDevice, state: Shared) -> Result<Response, ApiError> {
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
                s.audit(&u, AuditAction::DeviceAdd, d.as_str(), &json!({}))?;
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

/// A new MQTT password for a registered device, answered once; the old password stops working
/// for new connections and the device's live connection is closed within a second.
async fn rekey_device(id: String, user: Principal, state: Shared) -> Result<Response, ApiError> {
    let device = DeviceId::parse(&id)
        .ok_or_else(|| ApiError::bad_request(format!("The device id must be {DEVICE_ID_RULE}.")))?;
    let password = crate::secrets::random_password(crate::secrets::DEVICE_PASSWORD_LEN)
        .map_err(ApiError::internal)?;
    let hash = crate::secrets::hash_device_secret(&password).map_err(ApiError::internal)?;
    let (d, u) = (device.to_string(), user.username.clone());
    let changed = blocking(&state.ctx.store, move |s| {
        let changed = s.set_device_secret(&d, &hash)?;
        if changed {
            s.audit(&u, AuditAction::DevicePasswd, &d, &json!({}))?;
        }
        Ok(changed)
    })
    .await?;
    if !changed {
        return Err(ApiError::Missing(format!(
            "There is no device named {device}."
        )));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "device": device, "username": device, "password": password }),
    ))
}

/// Removes a device (its history stays); its live connection is closed within a second.
async fn remove_device(id: String, user: Principal, state: Shared) -> Result<Response, ApiError> {
    let device = DeviceId::parse(&id)
        .ok_or_else(|| ApiError::bad_request(format!("The device id must be {DEVICE_ID_RULE}.")))?;
    let (d, u) = (device.to_string(), user.username.clone());
    let removed = blocking(&state.ctx.store, move |s| {
        let removed = s.remove_device(&d)?;
        if removed {
            s.audit(&u, AuditAction::DeviceRemove, &d, &json!({}))?;
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
