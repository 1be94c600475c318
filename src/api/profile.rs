//! `GET /user/profile`: the logged-in user → `{"username","created"}`.

use super::auth_filter::Principal;
use super::error::json_response;
use crate::model::format_ts;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn handle(user: Principal) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "username": user.username,
            "created": format_ts(user.created_ms),
        }),
    )
}
