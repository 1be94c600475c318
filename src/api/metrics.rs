//! `GET /metrics`: the Prometheus text format (version 0.0.4). A scraper authenticates with
//! `Authorization: Bearer <RZMON_METRICS_TOKEN>`; a dashboard login token works too, so the
//! endpoint is never open. Per-device gauges and alert counts come from the store and the
//! in-memory presence at scrape time; `record` counts every answered HTTP request.

use super::routes::{Endpoints, Routes, Table, finish};
use super::{Shared, blocking};
use crate::metrics::Metrics;
use crate::metrics::export::{self, DeviceReading, Scrape};
use crate::model::DeviceId;
use std::sync::Arc;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

pub fn routes(t: &Table) -> Endpoints {
    let token = t.config().metrics_token.clone();
    finish(
        t.get_for_service("metrics", token)
            .and(t.state())
            .then(handle),
    )
}

async fn handle(state: Shared) -> Result<Response, super::ApiError> {
    let (rows, alerts) = blocking(&state.ctx.store, |s| {
        Ok((s.latest_readings()?, s.active_alert_summary()?))
    })
    .await?;
    let presence = state.ctx.commands.presence();
    let devices = rows
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
    let alerts = alerts
        .into_iter()
        .map(|a| (a.severity, a.acknowledged, a.count))
        .collect();
    let body = export::render(&state.ctx.metrics, &Scrape { devices, alerts });
    let mut res = Response::new(body.into());
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export::CONTENT_TYPE),
    );
    Ok(res)
}

/// The label of a request path: its route template (`/devices/{id}`), `api-other` for other
/// API paths, `frontend` for the rest. Raw paths never become labels, so scanners cannot grow
/// the number of series.
pub(super) fn route_label(routes: &Routes, path: &str) -> String {
    match routes.template(path) {
        Some(t) => format!("/{t}"),
        None if routes.is_api_path(path) => "api-other".into(),
        None => "frontend".into(),
    }
}

/// Counts every answered request (`warp::log::custom` sees the final status and the time).
pub fn record(
    metrics: Arc<Metrics>,
    routes: Routes,
) -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone + Send> {
    warp::log::custom(move |info: warp::log::Info<'_>| {
        metrics.http_requests.record(
            info.method().as_str(),
            route_label(&routes, info.path()),
            info.status().as_u16(),
            info.elapsed(),
        );
    })
}
