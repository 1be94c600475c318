//! `GET /health` (no auth): whether the database answers and the broker is up →
//! `{"status":"ok"|"degraded","timestamp","checks":{"database","broker"}}`, 503 when degraded.
//! Nothing more: no versions, paths or settings.

use super::Shared;
use super::error::json_response;
use super::routes::{Endpoints, Table, finish};
use crate::model::{format_ts, now_ms};
use std::sync::atomic::Ordering;
use std::time::Duration;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

/// A database that does not answer `SELECT 1` within this time counts as down.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(t: &Table) -> Endpoints {
    finish(t.public(Method::GET, "health").and(t.state()).then(handle))
}

async fn handle(state: Shared) -> Response {
    let store = state.ctx.store.clone();
    let ping = tokio::task::spawn_blocking(move || store.ping());
    let database = matches!(tokio::time::timeout(DB_TIMEOUT, ping).await, Ok(Ok(Ok(()))));
    let broker = state.ctx.broker_up.load(Ordering::Acquire);
    let (status, word) = if database && broker {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    let check = |up: bool| if up { "ok" } else { "error" };
    json_response(
        status,
        &serde_json::json!({
            "status": word,
            "timestamp": format_ts(now_ms()),
            "checks": { "database": check(database), "broker": check(broker) },
        }),
    )
}
