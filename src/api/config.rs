//! `GET /getConfig`, `POST /setConfig` and `GET /configHistory`: a round trip to the device
//! through the commands module; the last reported config and every attempted change are kept.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking, params, target};
use crate::model::{AuditAction, Command, ConfigOutcome, format_ts, now_ms};
use crate::store::ConfigChangeRow;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// `?device=` (optional when only one device is registered).
#[derive(Deserialize)]
struct Target {
    device: Option<String>,
}

/// `GET /configHistory` parameters.
#[derive(Deserialize)]
struct HistoryParams {
    device: Option<String>,
    limit: Option<String>,
}

pub fn routes(t: &Table) -> Endpoints {
    let get = t
        .get("getConfig")
        .and(query::<Target>())
        .and(t.state())
        .then(get_config);
    let set = t
        .post("setConfig")
        .and(query::<Target>())
        .and(t.json::<Value>("Send the config changes as a JSON object."))
        .and(t.state())
        .then(set_config);
    let history = t
        .get("configHistory")
        .and(query::<HistoryParams>())
        .and(t.state())
        .then(config_history);
    finish(get.or(set).or(history))
}

async fn get_config(_user: Principal, q: Target, state: Shared) -> Result<Response, ApiError> {
    let state = &state;
    let device = target::device(q.device.as_deref(), state).await?;
    let reply = state
        .ctx
        .commands
        .request(
            &device,
            Command::GetConfig,
            None,
            state.ctx.config.command_timeout,
        )
        .await?;
    let config = match reply.get("config") {
        Some(c @ Value::Object(_)) => c.clone(),
        _ => {
            return Err(ApiError::Refused(format!(
                "Device {device} answered getConfig without a `config` object."
            )));
        }
    };
    let (d, c) = (device.to_string(), config.clone());
    blocking(&state.ctx.store, move |s| s.set_device_config(&d, &c)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "device": device, "config": config }),
    ))
}

async fn set_config(
    user: Principal,
    q: Target,
    body: Value,
    state: Shared,
) -> Result<Response, ApiError> {
    let state = &state;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "The body must be a JSON object with the config keys to change.",
        ));
    }
    let device = target::device(q.device.as_deref(), state).await?;
    let d = device.to_string();
    let old = blocking(&state.ctx.store, move |s| s.device_config(&d))
        .await?
        .map(|(c, _)| c);
    let result = state
        .ctx
        .commands
        .request(
            &device,
            Command::SetConfig,
            Some(body.clone()),
            state.ctx.config.command_timeout,
        )
        .await;
    let (outcome, new) = match &result {
        Ok(reply) => {
            let new = match reply.get("config") {
                Some(c @ Value::Object(_)) => c.clone(),
                _ => merged(old.as_ref(), &body),
            };
            (ConfigOutcome::Confirmed, new)
        }
        Err(e) => (ConfigOutcome::Failed(e.to_string()), body.clone()),
    };
    let confirmed = outcome.is_confirmed();
    let change = ConfigChangeRow {
        device: device.clone(),
        ts_ms: now_ms(),
        username: user.username.clone(),
        old: old.clone(),
        new: new.clone(),
        outcome,
    };
    let detail = json!({ "old": old, "new": new, "confirmed": confirmed });
    let (d, n, u) = (device.to_string(), new.clone(), user.username.clone());
    blocking(&state.ctx.store, move |s| {
        s.add_config_change(&change)?;
        s.audit(&u, AuditAction::SetConfig, &d, &detail)?;
        if confirmed {
            s.set_device_config(&d, &n)?;
        }
        Ok(())
    })
    .await?;
    result?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "device": device, "config": new, "confirmed": true }),
    ))
}

/// The old config with `changes` applied (when the device confirms without echoing it).
fn merged(old: Option<&Value>, changes: &Value) -> Value {
    let mut out = old
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let (Some(o), Some(c)) = (out.as_object_mut(), changes.as_object()) {
        for (k, v) in c {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

async fn config_history(
    _user: Principal,
    q: HistoryParams,
    state: Shared,
) -> Result<Response, ApiError> {
    let device = match &q.device {
        Some(d) => Some(target::device(Some(d), &state).await?.to_string()),
        None => None,
    };
    let limit = params::parse_limit(params::present(&q.limit)).map_err(ApiError::BadRequest)?;
    let rows = blocking(&state.ctx.store, move |s| {
        s.config_history(device.as_deref(), limit)
    })
    .await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "timestamp": format_ts(r.ts_ms), "device": r.device, "user": r.username,
                "old": r.old, "new": r.new, "confirmed": r.outcome.is_confirmed(), "outcome": r.outcome.as_str(),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "history": rows })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overrides_keys() {
        let old = json!({"a": 1, "b": 2});
        assert_eq!(
            merged(Some(&old), &json!({"b": 3})),
            json!({"a": 1, "b": 3})
        );
        assert_eq!(merged(None, &json!({"b": 3})), json!({"b": 3}));
    }
}
