//! `GET /incidents`: incident rows, newest first, with the `/data` filters plus `type` →
//! `{"incidents":[{"timestamp","device","type","data"}]}`.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::params::{self, RangeParams};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking};
use crate::model::{DeviceId, format_ts};
use serde::Deserialize;
use serde::Serialize;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Serialize)]
struct Row {
    timestamp: String,
    device: DeviceId,
    #[serde(rename = "type")]
    kind: String,
    data: serde_json::Value,
}

/// `GET /incidents` parameters: the range filters and `type`.
#[derive(Deserialize)]
struct Params {
    #[serde(flatten)]
    range: RangeParams,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub fn routes(t: &Table) -> Endpoints {
    finish(
        t.get("incidents")
            .and(query::<Params>())
            .and(t.state())
            .then(incidents),
    )
}

async fn incidents(_user: Principal, q: Params, state: Shared) -> Result<Response, ApiError> {
    let range = q.range.parse().map_err(ApiError::BadRequest)?;
    let kind = params::incident_type(q.kind.as_deref()).map_err(ApiError::BadRequest)?;
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
