//! `GET /backups` (list), `POST /backups` (one now) and `GET /backups/{name}` (download,
//! streamed: memory does not grow with the file's size).

use super::Shared;
use super::auth_filter::Principal;
use super::error::{ApiError, json_response};
use super::export::attachment;
use super::routes::{Endpoints, Table, finish};
use crate::lifecycle::backups::BackupError;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

pub fn routes(t: &Table) -> Endpoints {
    let list = t.get("backups").and(t.state()).then(list);
    let create = t.post("backups").and(t.state()).then(create);
    // A backup is the whole database (password hashes, channel secrets): admins only.
    let download = t
        .admin_param(Method::GET, "backups/{name}")
        .and(t.state())
        .then(download);
    finish(list.or(create).unify().or(download).unify())
}

async fn list(_user: Principal, state: Shared) -> Result<Response, ApiError> {
    let backups = state.ctx.backups.clone();
    let list = tokio::task::spawn_blocking(move || backups.list())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "backups": list }),
    ))
}

async fn create(user: Principal, state: Shared) -> Result<Response, ApiError> {
    tracing::info!(user = %user.username, "backup requested");
    match state.ctx.backups.make().await {
        Ok(info) => Ok(json_response(
            StatusCode::CREATED,
            &serde_json::json!({ "backup": info }),
        )),
        Err(BackupError::Busy) => Err(ApiError::Conflict("A backup is already running.".into())),
        Err(BackupError::Failed(e)) => Err(ApiError::internal(anyhow::anyhow!(e))),
    }
}

/// The backup file `name` (only names of backups; anything else is 404, so no path can
/// reach outside the backups directory).
async fn download(name: String, _user: Principal, state: Shared) -> Result<Response, ApiError> {
    let Some(path) = state.ctx.backups.file(&name) else {
        return Err(ApiError::Missing(
            "There is no backup with this name.".into(),
        ));
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal)?;
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
    Ok(res)
}
