//! `GET /data`: telemetry rows, newest first, filtered by time range, device and limit →
//! `{"data":[{"timestamp","device","data"}]}`.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, blocking, params};
use crate::model::format_ts;
use serde::Serialize;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Serialize)]
struct Row {
    timestamp: String,
    device: String,
    data: serde_json::Value,
}

pub async fn handle(_user: Principal, q: HashMap<String, String>, state: Shared) -> Response {
    respond(data(q, &state).await)
}

async fn data(q: HashMap<String, String>, state: &Shared) -> Result<Response, ApiError> {
    let range = params::range_query(&q).map_err(ApiError::BadRequest)?;
    let rows = blocking(&state.ctx.store, move |s| s.telemetry(&range)).await?;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| Row {
            timestamp: format_ts(r.ts_ms),
            device: r.device,
            data: r.data,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "data": rows }),
    ))
}
