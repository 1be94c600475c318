//! `GET /metrics`: the Prometheus text format (version 0.0.4). A scraper authenticates with
//! `Authorization: Bearer <RZMON_METRICS_TOKEN>`; a dashboard login token works too, so the
//! endpoint is never open. Per-device gauges come from the store's newest readings and the
//! in-memory presence at scrape time.

use super::auth_filter::{authenticate, bearer_token};
use super::error::{ApiError, respond};
use super::{Shared, blocking};
use crate::metrics::Metrics;
use crate::metrics::export::{self, DeviceReading};
use crate::model::DeviceId;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

const MISSING: &str =
    "Send the header Authorization: Bearer <RZMON_METRICS_TOKEN> (or a login token).";

pub async fn handle(headers: HeaderMap, state: Shared) -> Response {
    respond(scrape(&headers, &state).await)
}

async fn scrape(headers: &HeaderMap, state: &Shared) -> Result<Response, ApiError> {
    authorize(headers, state).await?;
    let rows = blocking(&state.ctx.store, |s| s.latest_readings()).await?;
    let presence = state.ctx.commands.presence();
    let readings: Vec<DeviceReading> = rows
        .into_iter()
        .map(|r| DeviceReading {
            online: DeviceId::parse(&r.device).is_some_and(|id| presence.is_online(&id)),
            device: r.device,
            tmp: r.tmp,
            lf: r.lf,
            locked: r.locked,
            last_seen_ms: r.last_seen_ms,
        })
        .collect();
    let body = export::render(&state.ctx.metrics, &readings);
    let mut res = Response::new(body.into());
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export::CONTENT_TYPE),
    );
    Ok(res)
}

/// The metrics token (compared as SHA-256 digests, so the comparison time says nothing about
/// the token), else a valid login token.
async fn authorize(headers: &HeaderMap, state: &Shared) -> Result<(), ApiError> {
    let token = bearer_token(headers)?.ok_or(ApiError::Unauthorized(MISSING))?;
    if let Some(expected) = &state.ctx.config.metrics_token
        && Sha256::digest(token.as_bytes()) == Sha256::digest(expected.expose().as_bytes())
    {
        return Ok(());
    }
    authenticate(state, token).await.map(drop)
}

/// Route templates for the `route` label of `rzmon_http_requests_total`; `{id}` matches one
/// path segment. Raw paths never become labels, so scanners cannot grow the series count.
const ROUTES: &[&str] = &[
    "/login",
    "/data",
    "/data/summary",
    "/incidents",
    "/user/profile",
    "/user/password",
    "/health",
    "/ws",
    "/metrics",
    "/getConfig",
    "/setConfig",
    "/addAccessID",
    "/accessIDs",
    "/accessIDs/{id}",
    "/access",
    "/devices",
    "/devices/{id}",
    "/configHistory",
    "/audit",
];

/// The template `path` belongs to: one of `ROUTES`, `api-other` for other API paths,
/// `frontend` for the rest.
pub fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let matches = |template: &str| {
        let t: Vec<&str> = template.trim_matches('/').split('/').collect();
        t.len() == segments.len() && t.iter().zip(&segments).all(|(t, s)| *t == "{id}" || t == s)
    };
    if let Some(t) = ROUTES.iter().find(|t| matches(t)) {
        t
    } else if super::is_api_path(path) {
        "api-other"
    } else {
        "frontend"
    }
}

/// Counts every answered request (`warp::log::custom` sees the final status and the time).
pub fn record(
    metrics: Arc<Metrics>,
) -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone + Send> {
    warp::log::custom(move |info: warp::log::Info<'_>| {
        metrics.http_requests.record(
            info.method().as_str(),
            route_template(info.path()),
            info.status().as_u16(),
            info.elapsed(),
        );
    })
}

#[cfg(test)]
mod tests {
    use super::route_template;

    /// Ids collapse into `{id}`; unknown API paths and page paths get one label each.
    #[test]
    fn routes_are_templates() {
        assert_eq!(route_template("/devices/esp32-1"), "/devices/{id}");
        assert_eq!(route_template("/devices"), "/devices");
        assert_eq!(route_template("/data/summary"), "/data/summary");
        assert_eq!(route_template("/devices/a/b"), "api-other");
        assert_eq!(route_template("/js/app.js"), "frontend");
        assert_eq!(route_template("/"), "frontend");
    }
}
