//! `GET /data.csv` and `GET /incidents.csv`: the `/data` and `/incidents` filters (`limit`
//! optional: without it, the whole range), oldest first, streamed as RFC 4180 CSV.

use super::Shared;
use super::auth_filter::Principal;
use super::error::ApiError;
use super::params::{self, RangeParams};
use super::routes::{Endpoints, Table, finish, query};
use crate::lifecycle::csv::{Export, export};
use crate::store::RangeQuery;
use bytes::Bytes;
use serde::Deserialize;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

/// Chunks buffered between the database reader and a slow client.
const STREAM_CHUNKS: usize = 4;

/// `GET /incidents.csv` parameters: the range filters and `type`.
#[derive(Deserialize)]
struct IncidentParams {
    #[serde(flatten)]
    range: RangeParams,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub fn routes(t: &Table) -> Endpoints {
    let data = t
        .get("data.csv")
        .and(query::<RangeParams>())
        .and(t.state())
        .then(data_csv);
    let incidents = t
        .get("incidents.csv")
        .and(query::<IncidentParams>())
        .and(t.state())
        .then(incidents_csv);
    finish(data.or(incidents).unify())
}

async fn data_csv(_user: Principal, q: RangeParams, state: Shared) -> Result<Response, ApiError> {
    let range = csv_range(&q)?;
    Ok(stream_csv(state, Export::Telemetry(range), "telemetry.csv"))
}

async fn incidents_csv(
    _user: Principal,
    q: IncidentParams,
    state: Shared,
) -> Result<Response, ApiError> {
    let range = csv_range(&q.range)?;
    let kind = params::incident_type(q.kind.as_deref()).map_err(ApiError::BadRequest)?;
    Ok(stream_csv(
        state,
        Export::Incidents(range, kind),
        "incidents.csv",
    ))
}

/// The range of an export: without `limit`, every row of the range.
fn csv_range(q: &RangeParams) -> Result<RangeQuery, ApiError> {
    let mut range = q.parse().map_err(ApiError::BadRequest)?;
    if params::present(&q.limit).is_none() {
        range.limit = 0;
    }
    Ok(range)
}

/// `Content-Disposition: attachment` with `name`.
pub(super) fn attachment(res: &mut Response, name: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
}

/// Streams an export: a blocking reader fills a small bounded channel page by page, so a
/// slow client slows the reader and memory stays at a few pages.
fn stream_csv(state: Shared, what: Export, filename: &str) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHUNKS);
    let store = state.ctx.store.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = export(&store, &what, |chunk| {
            tx.blocking_send(Bytes::from(chunk)).is_ok()
        }) {
            tracing::error!(error = format!("{e:#}"), "CSV export failed part-way");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut res = warp::reply::stream(body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    attachment(&mut res, filename);
    res
}
