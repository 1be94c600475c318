//! `/channels`: notification channels — list, create, change (partial; secrets write-only),
//! delete, send a test now, mute/unmute, and each channel's delivery record. Channels from
//! `RZMON_NOTIFY_URLS` are read-only here (409) but can be tested and muted.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking, params};
use crate::model::AuditAction;
use crate::model::{format_ts, now_ms};
use crate::notify::edit;
use crate::store::ChannelRow;
use serde_json::{Value, json};
use std::collections::HashMap;
use warp::Filter;
use warp::http::Method;
use warp::http::StatusCode;
use warp::reply::Response;

/// What `POST /channels` expects.
pub const EXPECTED_BODY: &str =
    r#"Send {"name": "...", "kind": "ntfy", "settings": {...}} (see README, Notifications)."#;
/// What `POST /channels/{id}/mute` expects.
pub const EXPECTED_MUTE: &str = r#"Send {"minutes": 60}."#;
/// Longest mute: a week; longer is "disable the channel".
const MAX_MUTE_MINUTES: u64 = 7 * 24 * 60;

/// `/channels` and below.
pub fn routes(t: &Table) -> Endpoints {
    let with_id = |m: Method, path: &'static str| {
        t.protected_param(m, path)
            .map(|id: String, p: Principal| (id.parse::<i64>().unwrap_or(0), p))
            .untuple_one()
    };
    let list = t.get("channels").and(t.state()).then(list);
    let create = t
        .post("channels")
        .and(t.json::<Value>(EXPECTED_BODY))
        .and(t.state())
        .then(create);
    let one = with_id(Method::GET, "channels/{id}")
        .and(t.state())
        .then(get);
    let update = with_id(Method::PUT, "channels/{id}")
        .and(t.json::<Value>(EXPECTED_BODY))
        .and(t.state())
        .then(update);
    let delete = with_id(Method::DELETE, "channels/{id}")
        .and(t.state())
        .then(delete);
    let test = with_id(Method::POST, "channels/{id}/test")
        .and(t.state())
        .then(test);
    let mute = with_id(Method::POST, "channels/{id}/mute")
        .and(t.json::<Mute>(EXPECTED_MUTE))
        .and(t.state())
        .then(mute);
    let unmute = with_id(Method::POST, "channels/{id}/unmute")
        .and(t.state())
        .then(unmute);
    let deliveries = with_id(Method::GET, "channels/{id}/deliveries")
        .and(query::<HashMap<String, String>>())
        .and(t.state())
        .then(deliveries);
    finish(
        list.or(create)
            .unify()
            .or(one)
            .unify()
            .or(update)
            .unify()
            .or(delete)
            .unify()
            .or(test)
            .unify()
            .or(mute)
            .unify()
            .or(unmute)
            .unify()
            .or(deliveries)
            .unify(),
    )
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| e.to_response())
}

fn sentence(s: String) -> ApiError {
    if s.ends_with('.') {
        ApiError::BadRequest(s)
    } else {
        ApiError::BadRequest(format!("{s}."))
    }
}

async fn load(state: &Shared, id: i64) -> Result<ChannelRow, ApiError> {
    blocking(&state.ctx.store, move |s| s.channel(id))
        .await?
        .ok_or_else(|| ApiError::Missing(format!("No channel with id {id}.")))
}

fn writable(row: &ChannelRow) -> Result<(), ApiError> {
    if row.env_key.is_some() {
        return Err(ApiError::Conflict(
            "This channel comes from RZMON_NOTIFY_URLS and is read-only; change the variable instead.".into(),
        ));
    }
    Ok(())
}

async fn audit(
    state: &Shared,
    user: &Principal,
    action: AuditAction,
    id: i64,
    name: String,
) -> Result<(), ApiError> {
    let u = user.username.clone();
    blocking(&state.ctx.store, move |s| {
        s.audit(
            &u,
            action,
            &format!("channel:{id}"),
            &json!({ "name": name }),
        )
    })
    .await
}

pub async fn list(_user: Principal, state: Shared) -> Response {
    respond(
        async {
            let rows = blocking(&state.ctx.store, |s| s.channels()).await?;
            let list: Vec<Value> = rows.iter().map(edit::view).collect();
            Ok::<_, ApiError>(json_response(StatusCode::OK, &json!({ "channels": list })))
        }
        .await,
    )
}

pub async fn get(id: i64, _user: Principal, state: Shared) -> Response {
    respond(
        load(&state, id)
            .await
            .map(|row| json_response(StatusCode::OK, &edit::view(&row))),
    )
}

pub async fn create(user: Principal, body: Value, state: Shared) -> Response {
    respond(
        async {
            let spec = edit::create(&body).map_err(sentence)?;
            let name = spec.name.clone();
            let row = blocking(&state.ctx.store, move |s| {
                let id = s.insert_channel(&spec)?;
                s.channel(id)
            })
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the new channel vanished")))?;
            audit(&state, &user, AuditAction::ChannelAdd, row.id, name).await?;
            state.ctx.notifier.channels_changed(Some(row.id));
            Ok::<_, ApiError>(json_response(StatusCode::CREATED, &edit::view(&row)))
        }
        .await,
    )
}

pub async fn update(id: i64, user: Principal, body: Value, state: Shared) -> Response {
    respond(
        async {
            let old = load(&state, id).await?;
            writable(&old)?;
            let spec = edit::update(&old, &body).map_err(sentence)?;
            let name = spec.name.clone();
            let row = blocking(&state.ctx.store, move |s| {
                s.update_channel(id, &spec)?;
                s.channel(id)
            })
            .await?
            .ok_or_else(|| ApiError::Missing(format!("No channel with id {id}.")))?;
            audit(&state, &user, AuditAction::ChannelUpdate, id, name).await?;
            state.ctx.notifier.channels_changed(Some(id));
            Ok::<_, ApiError>(json_response(StatusCode::OK, &edit::view(&row)))
        }
        .await,
    )
}

pub async fn delete(id: i64, user: Principal, state: Shared) -> Response {
    respond(
        async {
            let old = load(&state, id).await?;
            writable(&old)?;
            blocking(&state.ctx.store, move |s| s.delete_channel(id)).await?;
            audit(&state, &user, AuditAction::ChannelDelete, id, old.name).await?;
            state.ctx.notifier.channels_changed(Some(id));
            Ok::<_, ApiError>(json_response(StatusCode::OK, &json!({ "deleted": id })))
        }
        .await,
    )
}

/// Sends a test message now: 200 with the result, or 502 naming what failed.
pub async fn test(id: i64, user: Principal, state: Shared) -> Response {
    respond(
        async {
            let row = load(&state, id).await?;
            audit(
                &state,
                &user,
                AuditAction::ChannelTest,
                id,
                row.name.clone(),
            )
            .await?;
            let spec = crate::store::ChannelSpec {
                name: row.name,
                kind: row.kind,
                settings: row.settings,
                policy: row.policy,
                enabled: row.enabled,
            };
            match state.ctx.notifier.test(id, &spec).await {
                Ok(result) => Ok(json_response(
                    StatusCode::OK,
                    &json!({ "ok": true, "result": format!("Delivered ({result}).") }),
                )),
                Err(reason) => Err(ApiError::BadGateway(format!("The test failed: {reason}."))),
            }
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    minutes: u64,
}

pub async fn mute(id: i64, user: Principal, req: Mute, state: Shared) -> Response {
    respond(
        async {
            if !(1..=MAX_MUTE_MINUTES).contains(&req.minutes) {
                return Err(ApiError::bad_request(format!(
                    "minutes must be 1-{MAX_MUTE_MINUTES}."
                )));
            }
            let until = now_ms() + i64::try_from(req.minutes).unwrap_or(0) * 60_000;
            set_mute(&state, &user, id, Some(until)).await
        }
        .await,
    )
}

pub async fn unmute(id: i64, user: Principal, state: Shared) -> Response {
    respond(set_mute(&state, &user, id, None).await)
}

async fn set_mute(
    state: &Shared,
    user: &Principal,
    id: i64,
    until: Option<i64>,
) -> Result<Response, ApiError> {
    let row = load(state, id).await?;
    blocking(&state.ctx.store, move |s| s.set_channel_mute(id, until)).await?;
    let action = if until.is_some() {
        AuditAction::ChannelMute
    } else {
        AuditAction::ChannelUnmute
    };
    audit(state, user, action, id, row.name).await?;
    state.ctx.notifier.channels_changed(Some(id));
    let row = load(state, id).await?;
    Ok(json_response(StatusCode::OK, &edit::view(&row)))
}

/// A channel's delivery record, newest first.
pub async fn deliveries(
    id: i64,
    _user: Principal,
    q: HashMap<String, String>,
    state: Shared,
) -> Response {
    respond(
        async {
            let limit = params::parse_limit(q.get("limit").map(String::as_str))
                .map_err(ApiError::BadRequest)?;
            load(&state, id).await?;
            let rows = blocking(&state.ctx.store, move |s| s.channel_deliveries(id, limit)).await?;
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "alert_id": r.alert_id, "channel_id": r.channel_id, "channel": r.channel,
                        "notice": r.notice, "state": r.state, "detail": r.detail,
                        "attempts": r.attempts, "updated": format_ts(r.updated_ms),
                        "next": r.next_ms.map(format_ts),
                    })
                })
                .collect();
            Ok::<_, ApiError>(json_response(
                StatusCode::OK,
                &json!({ "deliveries": rows }),
            ))
        }
        .await,
    )
}
