//! `GET /metrics` (authenticated): the process counters as one JSON object.

use super::Shared;
use super::auth_filter::Principal;
use super::error::json_response;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn handle(_user: Principal, state: Shared) -> Response {
    json_response(StatusCode::OK, &*state.ctx.metrics)
}
