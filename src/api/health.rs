//! `GET /health` (no auth): the health registry →
//! `{"status":"ok"|"degraded","timestamp","checks":{"database":"ok"|"error",...}}`, 503 when
//! degraded. Nothing more for anonymous callers (no versions, paths, settings or reasons); a
//! request with a valid Bearer token also gets `details`: the reason of every failed check and
//! the detail of an ok check that has one (e.g. the bridge's backlog).

use super::Shared;
use super::auth_filter::{authenticate, bearer_token};
use super::error::json_response;
use super::routes::{Endpoints, Table, finish};
use crate::health::Check;
use crate::model::{format_ts, now_ms};
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    finish(
        t.public(Method::GET, "health")
            .and(warp::header::headers_cloned())
            .and(t.state())
            .then(handle),
    )
}

async fn handle(headers: HeaderMap, state: Shared) -> Response {
    let snapshot = state.ctx.health.snapshot();
    let healthy = snapshot.values().all(Check::is_ok);
    let (status, word) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    let mut checks = Map::new();
    let mut details = Map::new();
    for (name, check) in snapshot {
        let word = if check.is_ok() { "ok" } else { "error" };
        checks.insert(name.clone(), word.into());
        let detail = match check {
            Check::Failed(reason) => Some(reason),
            Check::Ok => state.ctx.health.detail(&name),
        };
        if let Some(d) = detail {
            details.insert(name, d.into());
        }
    }
    let mut body = json!({
        "status": word,
        "timestamp": format_ts(now_ms()),
        "checks": checks,
    });
    if logged_in(&headers, &state).await {
        body["details"] = Value::Object(details);
    }
    json_response(status, &body)
}

/// A valid token of an existing user; a bad or missing one just means "anonymous" here.
async fn logged_in(headers: &HeaderMap, state: &Shared) -> bool {
    match bearer_token(headers) {
        Ok(Some(token)) => authenticate(state, token).await.is_ok(),
        _ => false,
    }
}
