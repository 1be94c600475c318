//! `GET /backups` (list), `POST /backups` (one now), `GET /backups/{name}` (download), and
//! the CSV exports `GET /data.csv` and `GET /incidents.csv` — every answer that is a file
//! rather than JSON. Files are streamed: memory does not grow with their size.

use super::auth_filter::Principal;
use super::error::{ApiError, json_response, respond};
use super::{Shared, params};
use crate::lifecycle::backups::BackupError;
use crate::lifecycle::csv::{Export, export};
use bytes::Bytes;
use std::collections::HashMap;
use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Chunks buffered between the database reader and a slow client.
const STREAM_CHUNKS: usize = 4;

pub async fn list(_user: Principal, state: Shared) -> Response {
    let backups = state.ctx.backups.clone();
    respond(
        async move {
            let list = tokio::task::spawn_blocking(move || backups.list())
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "backups": list }),
            ))
        }
        .await,
    )
}

pub async fn create(user: Principal, state: Shared) -> Response {
    tracing::info!(user = %user.username, "backup requested");
    respond(match state.ctx.backups.make().await {
        Ok(info) => Ok(json_response(
            StatusCode::CREATED,
            &serde_json::json!({ "backup": info }),
        )),
        Err(BackupError::Busy) => Err(ApiError::Conflict("A backup is already running.".into())),
        Err(BackupError::Failed(e)) => Err(ApiError::internal(anyhow::anyhow!(e))),
    })
}

/// The backup file `name` (only names of backups; anything else is 404, so no path can
/// reach outside the backups directory).
pub async fn download(name: String, _user: Principal, state: Shared) -> Response {
    let Some(path) = state.ctx.backups.file(&name) else {
        return ApiError::Missing("There is no backup with this name.".into()).to_response();
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return ApiError::internal(e).to_response(),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = tokio_util::io::ReaderStream::new(file);
    let mut res = warp::reply::stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    attachment(&mut res, &name);
    res
}

fn attachment(res: &mut Response, name: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
}

/// `GET /data.csv`: the `/data` filters (`limit` optional: without it, the whole range).
pub async fn data_csv(_user: Principal, q: HashMap<String, String>, state: Shared) -> Response {
    let range = match csv_range(&q) {
        Ok(r) => r,
        Err(e) => return e.to_response(),
    };
    stream_csv(state, Export::Telemetry(range), "telemetry.csv")
}

/// `GET /incidents.csv`: the `/incidents` filters, `limit` optional.
pub async fn incidents_csv(
    _user: Principal,
    q: HashMap<String, String>,
    state: Shared,
) -> Response {
    let range = match csv_range(&q) {
        Ok(r) => r,
        Err(e) => return e.to_response(),
    };
    match params::incident_type(&q) {
        Ok(kind) => stream_csv(state, Export::Incidents(range, kind), "incidents.csv"),
        Err(e) => ApiError::BadRequest(e).to_response(),
    }
}

fn csv_range(q: &HashMap<String, String>) -> Result<crate::store::RangeQuery, ApiError> {
    let mut range = params::range_query(q).map_err(ApiError::BadRequest)?;
    if q.get("limit").is_none_or(|v| v.trim().is_empty()) {
        range.limit = 0;
    }
    Ok(range)
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
