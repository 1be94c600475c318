//! `GET /metrics` (authenticated): the process counters as one JSON object.

use super::Shared;
use super::auth_filter::Principal;
use super::error::json_response;
use super::routes::{Endpoints, Table, finish};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    finish(t.get("metrics").and(t.state()).then(handle))
}

async fn handle(_user: Principal, state: Shared) -> Response {
    json_response(StatusCode::OK, &*state.ctx.metrics)
}
