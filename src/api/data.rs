//! `GET /data`: telemetry rows, newest first, filtered by time range, device and limit →
//! `{"data":[{"timestamp","device","data"}]}`; `GET /data/summary`: the same range downsampled
//! to min/avg/max per time bucket for charts (from the rollups when a bucket is ≥ 5 minutes;
//! `start`, `end` and `bucket_ms` of the answer are then aligned to the rollup span).

use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::params::{RangeParams, present};
use super::routes::{Endpoints, Table, finish, query};
use super::{Shared, blocking};
use crate::model::{DeviceId, format_ts};
use crate::store::SummarySource;
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Serialize)]
struct Row {
    timestamp: String,
    device: DeviceId,
    data: serde_json::Value,
}

pub fn routes(t: &Table) -> Endpoints {
    let data = t
        .get("data")
        .and(query::<RangeParams>())
        .and(t.state())
        .then(data);
    let summary = t
        .get("data/summary")
        .and(query::<SummaryParams>())
        .and(t.state())
        .then(data_summary);
    finish(data.or(summary))
}

async fn data(_user: Principal, q: RangeParams, state: Shared) -> Result<Response, ApiError> {
    let range = q.parse().map_err(ApiError::BadRequest)?;
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

/// Buckets in a summary when `buckets` is absent, and the most accepted.
const DEFAULT_BUCKETS: i64 = 200;
const MAX_BUCKETS: i64 = 2_000;
/// Range of a summary when `start_date` is absent: the last 24 hours.
const DEFAULT_SPAN_MS: i64 = 24 * 3600 * 1000;

/// `GET /data/summary` parameters: the range filters and `buckets`.
#[derive(Deserialize)]
struct SummaryParams {
    #[serde(flatten)]
    range: RangeParams,
    buckets: Option<String>,
}

/// `GET /data/summary?device&start_date&end_date&buckets=`: min/avg/max per time bucket.
async fn data_summary(
    _user: Principal,
    q: SummaryParams,
    state: Shared,
) -> Result<Response, ApiError> {
    let range = q.range.parse().map_err(ApiError::BadRequest)?;
    let end = range.end_ms.unwrap_or_else(crate::model::now_ms);
    let start = range.start_ms.unwrap_or(end - DEFAULT_SPAN_MS);
    if start > end {
        return Err(ApiError::bad_request(
            "start_date must not be after end_date.",
        ));
    }
    let buckets = match present(&q.buckets) {
        None => DEFAULT_BUCKETS,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_BUCKETS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "buckets must be a whole number from 1 to {MAX_BUCKETS}."
                ))
            })?,
    };
    // `buckets` buckets cover [start, end] (inclusive); a whole hour stays a whole hour.
    let width = ((end - start + buckets) / buckets).max(1);
    let device = range.device.map(|d| d.to_string());
    let dev = device.clone();
    let summary = blocking(&state.ctx.store, move |s| {
        s.telemetry_summary(dev.as_deref(), start, end, width, SummarySource::Auto)
    })
    .await?;
    let rows: Vec<serde_json::Value> = summary.buckets.into_iter().map(bucket_json).collect();
    let (start, end, width) = (summary.start_ms, summary.end_ms, summary.width_ms);
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "device": device, "start": format_ts(start), "end": format_ts(end),
            "bucket_ms": width, "buckets": rows,
        }),
    ))
}

/// One summary bucket as answered by `/data/summary` (and `/timeline`).
pub(super) fn bucket_json(b: crate::store::Bucket) -> serde_json::Value {
    let stats = |t: Option<(f64, f64, f64)>| {
        t.map(|(min, avg, max)| serde_json::json!({"min": min, "avg": avg, "max": max}))
    };
    serde_json::json!({
        "timestamp": format_ts(b.start_ms), "count": b.count,
        "tmp": stats(b.tmp), "lf": stats(b.lf), "locked": b.locked,
    })
}
