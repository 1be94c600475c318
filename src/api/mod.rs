//! The warp server: REST API, `/ws` and the embedded frontend.
//!
//! Each resource file owns its routes (see `routes.rs` for the table they are declared in).
//! Paths whose first segment belongs to a route are answered by the API, which answers every
//! outcome itself — JSON errors included — through a `.recover()` scoped to it; every other
//! path goes to the frontend, so a page route never swallows an API 401 or 404.

mod access;
mod alert_rules;
mod alerts;
mod assets;
mod auth_filter;
mod backups;
mod body;
mod ca;
mod channels;
mod client_ip;
mod config;
mod cors;
mod data;
mod devices;
mod error;
mod export;
mod health;
mod incidents;
mod login;
mod metrics;
pub mod params;
mod profile;
mod routes;
pub mod server;
mod session;
mod settings;
mod target;
mod timeline;
mod tokens;
mod users;
mod ws;

use crate::alerts::Alerts;
use crate::auth::hasher::{self, Hasher};
use crate::auth::jwt::JwtKeys;
use crate::auth::policy;
use crate::auth::throttle::Throttle;
use crate::commands::Commands;
use crate::health::Health;
use crate::hub::Hub;
use crate::lockout::Lockout;
use crate::metrics::Metrics;
use crate::store::Store;
use anyhow::Context as _;
pub use ca::CA_URL;
use error::ApiError;
use routes::{Endpoints, Routes, Table};
pub use settings::DeviceSettings;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::filters::path::FullPath;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// How long `serve` waits for WebSocket tasks to send their close frames at shutdown.
const WS_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings the API needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Extra origins allowed for CORS and the WebSocket `Origin` check (never `*`).
    pub allowed_origins: Vec<String>,
    /// Peers whose forwarding headers name the client (`client_ip`).
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// Lifetime of an issued JWT.
    pub token_ttl: Duration,
    /// Lifetime of a login with `"remember": true` ("keep me signed in on this device").
    pub remember_ttl: Duration,
    /// Largest accepted request body in bytes.
    pub body_limit: u64,
    /// Events a WebSocket client may fall behind before it is dropped.
    pub ws_queue: usize,
    /// How long a command waits for the device's reply.
    pub command_timeout: Duration,
    /// How long an enrolment waits for a card to be presented.
    pub enrol_timeout: Duration,
    /// Bearer token a Prometheus scraper sends for `/metrics` (besides login tokens).
    pub metrics_token: Option<crate::config::Secret>,
    /// How devices reach the broker (served by `GET /settings`).
    pub device: DeviceSettings,
    /// The generated CA certificate (PEM) served at `/tls/ca.pem`.
    pub ca_pem: Option<Arc<String>>,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct Context {
    /// Notification delivery: channel tests and wake-ups after channel changes.
    pub notifier: crate::notify::Notifier,
    pub store: Store,
    pub hub: Hub,
    /// The running rule engine, told when rules or acknowledgements change.
    pub alerts: Alerts,
    /// Requests to devices (getConfig, setConfig, access ids) and their presence.
    pub commands: Commands,
    /// HS256 secret (≥ 32 bytes).
    pub jwt_secret: Arc<Vec<u8>>,
    pub metrics: Arc<Metrics>,
    /// The process's health checks, shown by `/health`.
    pub health: Health,
    pub config: ApiConfig,
    /// The backups of the data directory (list, take one now, download).
    pub backups: Arc<crate::lifecycle::Backups>,
    /// Cancelled on SIGINT/SIGTERM: stop accepting, close WebSockets.
    pub shutdown: CancellationToken,
}

/// `Context` plus what the API itself owns: token keys, login lockouts, the password-check
/// gate and the WebSocket tasks.
pub(crate) struct State {
    ctx: Context,
    keys: JwtKeys,
    ip_lockout: Lockout<IpAddr>,
    /// Wrong current passwords in `POST /user/password`, per user.
    account_lockout: Lockout<String>,
    /// Failed logins per account name: a growing delay, never for known addresses.
    account_throttle: Throttle,
    /// The argon2 threads: a login flood queues (bounded) here instead of exhausting memory.
    hasher: Hasher,
    ws_tasks: TaskTracker,
}

pub(crate) type Shared = Arc<State>;

impl State {
    fn new(ctx: Context) -> anyhow::Result<Self> {
        let keys = JwtKeys::new(&ctx.jwt_secret, ctx.config.token_ttl)
            .context("the JWT secret cannot be used")?;
        Ok(Self {
            ctx,
            keys,
            ip_lockout: Lockout::new(policy::IP_MAX_FAILURES, policy::IP_LOCK),
            account_lockout: Lockout::new(policy::ACCOUNT_MAX_FAILURES, policy::ACCOUNT_LOCK),
            account_throttle: Throttle::default(),
            hasher: Hasher::start(hasher::THREADS, hasher::QUEUE)
                .context("cannot start the password-hashing threads")?,
            ws_tasks: TaskTracker::new(),
        })
    }
}

/// Serves HTTP and HTTPS on `listeners` until `ctx.shutdown` is cancelled; WebSockets are
/// closed then too.
pub async fn serve(listeners: server::HttpListeners, ctx: Context) -> anyhow::Result<()> {
    let shutdown = ctx.shutdown.clone();
    let (trusted, metrics) = (ctx.config.trusted_proxies.clone(), ctx.metrics.clone());
    let state = Arc::new(State::new(ctx)?);
    server::run(listeners, routes(state.clone()), trusted, metrics, shutdown).await;
    state.ws_tasks.close();
    if tokio::time::timeout(WS_SHUTDOWN_GRACE, state.ws_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some WebSocket clients did not close in time");
    }
    Ok(())
}

fn with_state(state: Shared) -> impl Filter<Extract = (Shared,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Runs a blocking store call off the async threads; store errors and panics become 500s.
async fn blocking<T, F>(store: &Store, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("database task failed: {e}")))?
        .map_err(ApiError::internal)
}

/// Every resource's routes, in the order they are tried. A new resource is one file under
/// `api/` with a `routes` function, and one line here.
const RESOURCES: &[fn(&Table) -> Endpoints] = &[
    login::routes,
    health::routes,
    ws::routes,
    settings::routes,
    profile::routes,
    data::routes,
    incidents::routes,
    metrics::routes,
    config::routes,
    access::routes,
    devices::routes,
    alerts::routes,
    alert_rules::routes,
    channels::routes,
    session::routes,
    ca::routes,
    backups::routes,
    export::routes,
    timeline::routes,
    users::routes,
    tokens::routes,
];

/// Every route of the server.
fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let origins = state.ctx.config.allowed_origins.clone();
    let metrics = state.ctx.metrics.clone();
    let (api, table) = api_routes(state);
    tracing::debug!("API routes:\n{table}");
    let record = metrics::record(metrics, table.clone());
    assemble(api, table, origins)
        .with(record)
        .map(warp::Reply::into_response)
        .boxed()
}

/// The API endpoints and their table; each rejects only with "not mine" (404), 405, or an
/// `ApiError`.
fn api_routes(state: Shared) -> (BoxedFilter<(Response,)>, Routes) {
    let table = Table::new(state);
    let none = warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed();
    let api = RESOURCES.iter().fold(none, |all, resource| {
        all.or(resource(&table)).unify().boxed()
    });
    (api, table.into_routes())
}

/// Wraps the API endpoints: scope check, CORS preflight, JSON rejections, API headers; then
/// the frontend for every other path.
fn assemble(
    api: BoxedFilter<(Response,)>,
    table: Routes,
    origins: Vec<String>,
) -> BoxedFilter<(Response,)> {
    let origins = Arc::new(origins);
    let table = Arc::new(table);
    let preflight = {
        let (origins, table) = (origins.clone(), table.clone());
        warp::method()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and_then(move |method, path: FullPath, headers: HeaderMap| {
                let allow = table.allow(path.as_str());
                let res = cors::preflight(&method, &headers, &origins, &allow);
                async move { res.ok_or_else(warp::reject::not_found) }
            })
    };
    let scope = {
        let table = table.clone();
        warp::path::full().and_then(move |path: FullPath| {
            let api = table.is_api_path(path.as_str());
            async move {
                if api {
                    Ok(path)
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
    };
    let api = scope
        .and(warp::header::headers_cloned())
        .and(preflight.or(api).unify().recover(recover).unify())
        .map(
            move |path: FullPath, request: HeaderMap, mut res: Response| {
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                if res.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Ok(allow) = HeaderValue::from_str(&table.allow(path.as_str()))
                {
                    res.headers_mut().insert(header::ALLOW, allow);
                }
                cors::decorate(&mut res, &request, &origins);
                res
            },
        );
    api.or(assets::routes()).unify().boxed()
}

/// Turns every rejection inside the API into a JSON answer.
async fn recover(r: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{InvalidHeader, InvalidQuery, MethodNotAllowed, MissingHeader};
    let err = if let Some(e) = r.find::<ApiError>() {
        return Ok(e.to_response());
    } else if r.find::<MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if r.find::<InvalidQuery>().is_some() {
        ApiError::bad_request("The query string is malformed.")
    } else if r.find::<warp::ws::MissingConnectionUpgrade>().is_some()
        || r.find::<MissingHeader>().is_some()
        || r.find::<InvalidHeader>().is_some()
    {
        ApiError::bad_request("This endpoint expects a WebSocket upgrade request.")
    } else {
        if !r.is_not_found() {
            tracing::debug!(rejection = ?r, "unexpected rejection answered as 404");
        }
        ApiError::NotFound
    };
    Ok(err.to_response())
}

#[cfg(test)]
mod tests;
