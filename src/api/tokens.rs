//! The caller's own long-lived API tokens, for scripts and integrations (Home Assistant, Grafana):
//! `POST /tokens {"name", "role"?}` → the token, shown once; `GET /tokens` lists them without
//! the secret; `DELETE /tokens/{id}` revokes one at once. Every signed-in user manages their own
//! (a viewer's tokens are viewers). A token acts with the weaker of its own role and its owner's
//! current one, and ends with its owner (see `auth_filter`). Stored as SHA-256 only.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::routes::{Endpoints, Table, finish};
use super::{Shared, blocking};
use crate::auth::api_token;
use crate::model::{AuditAction, Role, format_ts};
use crate::store::ApiTokenRow;
use serde::Deserialize;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

/// Tokens one user may hold (each is a row checked per request; nothing grows unbounded).
pub const MAX_PER_USER: usize = 50;
const MAX_NAME_CHARS: usize = 64;
const EXPECTED: &str = r#"Send {"name": "grafana"} (optionally "role": "viewer")."#;
const TOO_STRONG: &str = "A token cannot have more rights than its owner: your role is viewer.";

pub fn routes(t: &Table) -> Endpoints {
    let list = t.get("tokens").and(t.state()).then(list);
    let add = t
        .signed_in(Method::POST, "tokens")
        .and(t.json::<NewToken>(EXPECTED))
        .and(t.state())
        .then(add);
    let remove = t
        .signed_in_param(Method::DELETE, "tokens/{id}")
        .and(t.state())
        .then(remove);
    finish(list.or(add).or(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Option<String>,
}

fn token_json(t: &ApiTokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "created": format_ts(t.created_ms),
        "last_used": t.last_used_ms.map(format_ts),
    })
}

async fn list(user: Principal, state: Shared) -> Result<Response, ApiError> {
    let uid = user.uid;
    let tokens = blocking(&state.ctx.store, move |s| s.api_tokens(uid)).await?;
    let tokens: Vec<_> = tokens.iter().map(token_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "tokens": tokens }),
    ))
}

/// The name as given, trimmed: 1–64 characters without control characters.
fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters without control characters."
        )));
    }
    Ok(name.to_owned())
}

async fn add(user: Principal, req: NewToken, state: Shared) -> Result<Response, ApiError> {
    let name = check_name(&req.name)?;
    let role = match req.role.as_deref() {
        None => user.role,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::bad_request(format!("role must be \"admin\" or \"viewer\", not {r:?}."))
        })?,
    };
    if role > user.role {
        return Err(ApiError::Forbidden(TOO_STRONG));
    }
    let secret = api_token::generate();
    let hash = api_token::hash(&secret);
    let (uid, owner) = (user.uid, user.username.clone());
    let row = blocking(&state.ctx.store, move |s| {
        if s.api_tokens(uid)?.len() >= MAX_PER_USER {
            return Ok(None);
        }
        let row = s.create_api_token(uid, &name, role, &hash)?;
        let detail = serde_json::json!({ "id": row.id, "name": row.name, "role": role });
        s.audit(&owner, AuditAction::TokenAdd, &owner, &detail)?;
        Ok(Some(row))
    })
    .await?
    .ok_or_else(|| {
        ApiError::Conflict(format!(
            "You have {MAX_PER_USER} API tokens already; revoke one first."
        ))
    })?;
    tracing::info!(username = %user.username, id = row.id, "API token created");
    let mut body = token_json(&row);
    body["token"] = secret.into();
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn remove(id: String, user: Principal, state: Shared) -> Result<Response, ApiError> {
    let missing = || ApiError::Missing(format!("You have no API token with id {id}."));
    let n: i64 = id.parse().map_err(|_| missing())?;
    let (uid, owner) = (user.uid, user.username.clone());
    let removed = blocking(&state.ctx.store, move |s| {
        let removed = s.remove_api_token(n, uid)?;
        if removed {
            let detail = serde_json::json!({ "id": n });
            s.audit(&owner, AuditAction::TokenRemove, &owner, &detail)?;
        }
        Ok(removed)
    })
    .await?;
    if !removed {
        return Err(missing());
    }
    tracing::info!(username = %user.username, id = n, "API token revoked");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "deleted": n }),
    ))
}
