//! `GET /incidents`: incident rows, newest first, with the `/data` filters plus `type` →
//! `{"incidents":[{"timestamp","device","type","data"}]}`.

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
    #[serde(rename = "type")]
    kind: String,
    data: serde_json::Value,
}

pub async fn handle(_user: Principal, q: HashMap<String, String>, state: Shared) -> Response {
    respond(incidents(q, &state).await)
}

async fn incidents(q: HashMap<String, String>, state: &Shared) -> Result<Response, ApiError> {
    let range = params::range_query(&q).map_err(ApiError::BadRequest)?;
    let kind = params::incident_type(&q).map_err(ApiError::BadRequest)?;
    let rows = blocking(&state.ctx.store, move |s| {
        s.incidents(&range, kind.as_deref())
    })
    .await?;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| Row {
            timestamp: format_ts(r.ts_ms),
            device: r.device,
            kind: r.kind,
            data: r.data,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "incidents": rows }),
    ))
}
