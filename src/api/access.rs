//! Access ids: `POST /addAccessID` (direct or by enrolment at a device), `GET /accessIDs`,
//! `DELETE /accessIDs/{id}` (revoke), and the access log `GET /access` (filters, keyset paging)
//! joined with the names.
//! Every change bumps the list version and re-syncs the online devices.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::params::{self, RangeParams};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking, target};
use crate::commands::{CommandError, access_sync};
use crate::model::{ACCESS_ID_RULE, AccessId, AuditAction, Command, DeviceId, format_ts};
use crate::store::{AccessFilter, RangeQuery, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

/// Longest display name of an access id.
const MAX_NAME: usize = 100;

pub fn routes(t: &Table) -> Endpoints {
    let add = t
        .post("addAccessID")
        .and(t.json::<AddRequest>(EXPECTED_BODY))
        .and(t.state())
        .then(add_access_id);
    let list = t.get("accessIDs").and(t.state()).then(list_ids);
    let revoke = t
        .protected_param(Method::DELETE, "accessIDs/{id}")
        .and(t.state())
        .then(revoke_id);
    let log = t
        .get("access")
        .and(query::<LogParams>())
        .and(t.state())
        .then(access_log);
    finish(add.or(list).or(revoke).or(log))
}

/// What `POST /addAccessID` expects.
const EXPECTED_BODY: &str =
    r#"Send {"access_id": "04A1B2C3", "name": "...", "device": "..."}; every field is optional."#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    access_id: Option<String>,
    name: Option<String>,
    device: Option<String>,
}

async fn add_access_id(
    user: Principal,
    req: AddRequest,
    state: Shared,
) -> Result<Response, ApiError> {
    let state = &state;
    let name = req.name.unwrap_or_default().trim().to_owned();
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "`name` must be at most {MAX_NAME} printable characters."
        )));
    }
    let given = match &req.access_id {
        Some(id) => Some(parse_access_id(id)?),
        None => None,
    };
    let named = match &req.device {
        Some(d) => Some(target::device(Some(d), state).await?),
        None => None,
    };
    let (access_id, enrolled_at) = match given {
        Some(id) => (id, None),
        None => {
            let device = match named.clone() {
                Some(d) => d,
                None => target::device(None, state).await?,
            };
            (enrol(&device, state).await?, Some(device))
        }
    };
    let (id, n, u) = (access_id.clone(), name.clone(), user.username.clone());
    let version = blocking(&state.ctx.store, move |s| {
        match s.add_access_id(id.as_str(), &n, &u) {
            Err(StoreError::Exists(_)) => Ok(None),
            r => r.map(Some),
        }
    })
    .await?
    .ok_or_else(|| ApiError::Conflict(format!("The access id {access_id} is already known.")))?;
    // Enrolment already put the card on the enrolling device; the others learn it now.
    let targets: Vec<DeviceId> = match (&named, &enrolled_at) {
        (_, Some(_)) => Vec::new(),
        (Some(d), None) => vec![d.clone()],
        (None, None) => state.ctx.commands.presence().online(),
    };
    let value = json!({ "access_id": access_id });
    let devices = push(state, &targets, Command::AddAccessId, &value).await;
    access_sync::sync_all(&state.ctx.commands);
    let detail = json!({ "name": name, "version": version, "enrolled_at": enrolled_at });
    audit(
        state,
        &user.username,
        AuditAction::AddAccessId,
        access_id.as_str(),
        detail,
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "access_id": access_id, "name": name, "added_by": user.username,
            "version": version, "enrolled_at": enrolled_at, "devices": devices,
        }),
    ))
}

/// An `access_id` from a request, or a 400 with the rule.
fn parse_access_id(id: &str) -> Result<AccessId, ApiError> {
    AccessId::parse(id)
        .ok_or_else(|| ApiError::bad_request(format!("`access_id` must be {ACCESS_ID_RULE}.")))
}

/// Asks `device` to read the next card; its reply carries the access id.
async fn enrol(device: &DeviceId, state: &Shared) -> Result<AccessId, ApiError> {
    let reply = state
        .ctx
        .commands
        .request(
            device,
            Command::AddAccessId,
            None,
            state.ctx.config.enrol_timeout,
        )
        .await
        .map_err(|e| match e {
            CommandError::Timeout(d, s) => {
                ApiError::Timeout(format!("No card was presented at {d} within {s} s."))
            }
            other => other.into(),
        })?;
    match reply.get("access_id").and_then(Value::as_str) {
        Some(id) if let Some(id) = AccessId::parse(id) => Ok(id),
        _ => Err(ApiError::Refused(format!(
            "Device {device} answered the enrolment without a valid `access_id`."
        ))),
    }
}

/// Sends `command` to each device and reports per device: `ok`, `offline`, `timeout` or the
/// device's error sentence.
async fn push(
    state: &Shared,
    devices: &[DeviceId],
    command: Command,
    value: &Value,
) -> Map<String, Value> {
    let timeout = state.ctx.config.command_timeout;
    let calls = devices.iter().map(|d| {
        let commands = state.ctx.commands.clone();
        let (d, value) = (d.clone(), value.clone());
        async move {
            let outcome = match commands.request(&d, command, Some(value), timeout).await {
                Ok(_) => "ok".to_owned(),
                Err(CommandError::Offline(_)) => "offline".to_owned(),
                Err(CommandError::Timeout(..)) => "timeout".to_owned(),
                Err(e) => e.to_string(),
            };
            (d.to_string(), Value::String(outcome))
        }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect()
}

async fn audit(
    state: &Shared,
    user: &str,
    action: AuditAction,
    target: &str,
    detail: Value,
) -> Result<(), ApiError> {
    let (u, t) = (user.to_owned(), target.to_owned());
    blocking(&state.ctx.store, move |s| s.audit(&u, action, &t, &detail)).await
}

async fn list_ids(_user: Principal, state: Shared) -> Result<Response, ApiError> {
    let (rows, (version, _)) = blocking(&state.ctx.store, |s| {
        Ok((s.access_ids()?, s.access_list()?))
    })
    .await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"access_id": r.access_id, "name": r.name, "added_by": r.added_by, "added": format_ts(r.added_ms)}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "access_ids": rows, "version": version }),
    ))
}

async fn revoke_id(
    access_id: String,
    user: Principal,
    state: Shared,
) -> Result<Response, ApiError> {
    let state = &state;
    let access_id = parse_access_id(&access_id)?;
    let id = access_id.clone();
    let version = blocking(&state.ctx.store, move |s| s.remove_access_id(id.as_str()))
        .await?
        .ok_or_else(|| ApiError::Missing(format!("The access id {access_id} is not known.")))?;
    let online = state.ctx.commands.presence().online();
    let devices = push(
        state,
        &online,
        Command::RemoveAccessId,
        &json!({ "access_id": access_id }),
    )
    .await;
    access_sync::sync_all(&state.ctx.commands);
    audit(
        state,
        &user.username,
        AuditAction::RevokeAccessId,
        access_id.as_str(),
        json!({ "version": version }),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "access_id": access_id, "revoked": true, "version": version, "devices": devices }),
    ))
}

/// `GET /access` parameters: the range filters, `access_id`, `granted` and the `before` cursor.
#[derive(Deserialize)]
struct LogParams {
    #[serde(flatten)]
    range: RangeParams,
    access_id: Option<String>,
    granted: Option<String>,
    before: Option<String>,
}

/// `granted`: `true` or `false` (absent: both).
fn parse_granted(v: Option<&str>) -> Result<Option<bool>, ApiError> {
    match v {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::bad_request("granted must be true or false.")),
    }
}

/// `before`: the `next_before` of the previous page, `<ts_ms>-<row id>`.
fn parse_cursor(v: Option<&str>) -> Result<Option<(i64, i64)>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    v.split_once('-')
        .and_then(|(ts, id)| Some((ts.parse().ok()?, id.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("before must be the next_before value of the previous page.")
        })
}

async fn access_log(_user: Principal, q: LogParams, state: Shared) -> Result<Response, ApiError> {
    let range = q.range.parse().map_err(ApiError::BadRequest)?;
    let limit = range.limit;
    let filter = AccessFilter {
        access_id: params::present(&q.access_id)
            .map(parse_access_id)
            .transpose()?
            .map(|id| id.as_str().to_owned()),
        granted: parse_granted(params::present(&q.granted))?,
        before: parse_cursor(params::present(&q.before))?,
        // One row more than asked tells whether another page follows.
        range: RangeQuery {
            limit: limit + 1,
            ..range
        },
    };
    let (page, known) = blocking(&state.ctx.store, move |s| {
        Ok((s.access_page(&filter)?, s.access_ids()?))
    })
    .await?;
    let names: HashMap<String, String> = known.into_iter().map(|k| (k.access_id, k.name)).collect();
    let more = page.rows.len() > limit as usize;
    let shown = &page.rows[..page.rows.len().min(limit as usize)];
    let next = more
        .then(|| shown.last().map(|(id, r)| format!("{}-{id}", r.ts_ms)))
        .flatten();
    let rows: Vec<Value> = shown
        .iter()
        .map(|(_, r)| {
            let name = names.get(&r.access_id);
            json!({
                "timestamp": format_ts(r.ts_ms), "device": r.device, "access_id": r.access_id,
                "granted": r.granted, "known": name.is_some(), "name": name, "data": r.data,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "access": rows, "total": page.total, "next_before": next }),
    ))
}
