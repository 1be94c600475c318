//! The warp server: REST API, `/ws` and the embedded frontend.
//!
//! API paths (first segment in [`API_SEGMENTS`]) are routed to the API, which answers every
//! outcome itself — JSON errors included — through a `.recover()` scoped to it; every other
//! path goes to the frontend, so a page route never swallows an API 401 or 404.

mod access;
mod alert_rules;
mod alerts;
mod assets;
mod auth_filter;
mod backups;
mod body;
mod client_ip;
mod config;
mod cors;
mod data;
mod devices;
mod error;
mod health;
mod incidents;
mod login;
mod metrics;
pub mod params;
mod profile;
mod session;
mod target;
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
use error::ApiError;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// First path segments that belong to the API: they get JSON answers (404 included) and never
/// the frontend's index.html. Includes the seed's device-command paths served by a later issue.
pub const API_SEGMENTS: &[&str] = &[
    "login",
    "logout",
    "data",
    "incidents",
    "user",
    "health",
    "ws",
    "metrics",
    "getConfig",
    "setConfig",
    "addAccessID",
    "accessIDs",
    "access",
    "devices",
    "configHistory",
    "audit",
    "alerts",
    "alert-rules",
    "api",
    "backups",
    "data.csv",
    "incidents.csv",
];

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
    /// Largest accepted request body in bytes.
    pub body_limit: u64,
    /// Events a WebSocket client may fall behind before it is dropped.
    pub ws_queue: usize,
    /// How long a command waits for the device's reply.
    pub command_timeout: Duration,
    /// How long an enrolment waits for a card to be presented.
    pub enrol_timeout: Duration,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct Context {
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

/// Serves HTTP on `listener` until `ctx.shutdown` is cancelled; WebSockets are closed then too.
pub async fn serve(listener: tokio::net::TcpListener, ctx: Context) -> anyhow::Result<()> {
    let shutdown = ctx.shutdown.clone();
    let state = Arc::new(State::new(ctx)?);
    warp::serve(routes(state.clone()))
        .incoming(listener)
        .graceful(shutdown.cancelled_owned())
        .run()
        .await;
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

/// Every route of the server.
fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let origins = state.ctx.config.allowed_origins.clone();
    assemble(api_routes(state), origins)
}

/// The API endpoints; each rejects only with "not mine" (404), 405, or an `ApiError`.
fn api_routes(state: Shared) -> BoxedFilter<(Response,)> {
    use std::collections::HashMap;
    let limit = state.ctx.config.body_limit;
    let st = || with_state(state.clone());
    let auth = || auth_filter::authenticated(state.clone());
    let query = warp::query::<HashMap<String, String>>;

    let login = warp::path!("login")
        .and(warp::post())
        .and(warp::addr::remote())
        .and(warp::header::headers_cloned())
        .and(body::json::<login::LoginRequest>(
            limit,
            login::EXPECTED_BODY,
        ))
        .and(st())
        .then(login::handle);
    let data = warp::path!("data")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(data::handle);
    let incidents = warp::path!("incidents")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(incidents::handle);
    let profile = warp::path!("user" / "profile")
        .and(warp::get())
        .and(auth())
        .then(profile::handle);
    let logout = warp::path!("logout")
        .and(warp::post())
        .and(auth())
        .and(st())
        .then(session::logout);
    let logout_all = warp::path!("logout" / "all")
        .and(warp::post())
        .and(auth())
        .and(st())
        .then(session::logout_all);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(metrics::handle);
    let health = warp::path!("health")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(st())
        .then(health::handle);
    let ws = warp::path!("ws")
        .and(warp::ws())
        .and(warp::header::headers_cloned())
        .and(st())
        .then(ws::upgrade);

    let password = warp::path!("user" / "password")
        .and(warp::post())
        .and(auth())
        .and(body::json::<profile::PasswordChange>(
            limit,
            profile::EXPECTED_PASSWORD_BODY,
        ))
        .and(st())
        .then(profile::change_password);
    let summary = warp::path!("data" / "summary")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(data::summary);
    let get_config = warp::path!("getConfig")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(config::get);
    let set_config = warp::path!("setConfig")
        .and(warp::post())
        .and(auth())
        .and(query())
        .and(body::json::<serde_json::Value>(
            limit,
            "Send the config changes as a JSON object.",
        ))
        .and(st())
        .then(config::set);
    let config_history = warp::path!("configHistory")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(config::history);
    let add_access = warp::path!("addAccessID")
        .and(warp::post())
        .and(auth())
        .and(body::json::<access::AddRequest>(
            limit,
            access::EXPECTED_BODY,
        ))
        .and(st())
        .then(access::add);
    let list_access = warp::path!("accessIDs")
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(access::list);
    let revoke_access = warp::path!("accessIDs" / String)
        .and(warp::delete())
        .and(auth())
        .and(st())
        .then(access::revoke);
    let access_log = warp::path!("access")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(access::log);
    let devices = warp::path!("devices")
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(devices::list);
    let add_device = warp::path!("devices")
        .and(warp::post())
        .and(auth())
        .and(body::json::<devices::AddDevice>(
            limit,
            devices::EXPECTED_ADD_BODY,
        ))
        .and(st())
        .then(devices::add);
    let remove_device = warp::path!("devices" / String)
        .and(warp::delete())
        .and(auth())
        .and(st())
        .then(devices::remove);
    let audit = warp::path!("audit")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(devices::audit);

    let alerts = alert_routes(state.clone());
    let list_backups = warp::path!("backups")
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(backups::list);
    let create_backup = warp::path!("backups")
        .and(warp::post())
        .and(auth())
        .and(st())
        .then(backups::create);
    let download_backup = warp::path!("backups" / String)
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(backups::download);
    let data_csv = warp::path!("data.csv")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(backups::data_csv);
    let incidents_csv = warp::path!("incidents.csv")
        .and(warp::get())
        .and(auth())
        .and(query())
        .and(st())
        .then(backups::incidents_csv);
    let files = list_backups
        .or(create_backup)
        .unify()
        .or(download_backup)
        .unify()
        .or(data_csv)
        .unify()
        .or(incidents_csv)
        .unify();

    let commands = summary
        .or(files)
        .unify()
        .or(password)
        .unify()
        .or(get_config)
        .unify()
        .or(set_config)
        .unify()
        .or(config_history)
        .unify()
        .or(add_access)
        .unify()
        .or(list_access)
        .unify()
        .or(revoke_access)
        .unify()
        .or(access_log)
        .unify()
        .or(devices)
        .unify()
        .or(add_device)
        .unify()
        .or(remove_device)
        .unify()
        .or(audit)
        .unify();

    login
        .or(commands)
        .unify()
        .or(alerts)
        .unify()
        .or(data)
        .unify()
        .or(incidents)
        .unify()
        .or(profile)
        .unify()
        .or(logout)
        .unify()
        .or(logout_all)
        .unify()
        .or(metrics)
        .unify()
        .or(health)
        .unify()
        .or(ws)
        .unify()
        .boxed()
}

/// `/alerts` and `/alert-rules`.
fn alert_routes(state: Shared) -> BoxedFilter<(Response,)> {
    use std::collections::HashMap;
    let limit = state.ctx.config.body_limit;
    let st = || with_state(state.clone());
    let auth = || auth_filter::authenticated(state.clone());
    let rule_body = || {
        body::json::<serde_json::Map<String, serde_json::Value>>(limit, alert_rules::EXPECTED_RULE)
    };
    let list = warp::path!("alerts")
        .and(warp::get())
        .and(auth())
        .and(warp::query::<HashMap<String, String>>())
        .and(st())
        .then(alerts::list);
    let ack = warp::path!("alerts" / String / "ack")
        .and(warp::post())
        .and(auth())
        .and(st())
        .then(alerts::ack);
    let rules = warp::path!("alert-rules")
        .and(warp::get())
        .and(auth())
        .and(st())
        .then(alert_rules::list);
    let create = warp::path!("alert-rules")
        .and(warp::post())
        .and(auth())
        .and(rule_body())
        .and(st())
        .then(alert_rules::create);
    let update = warp::path!("alert-rules" / String)
        .and(warp::put())
        .and(auth())
        .and(rule_body())
        .and(st())
        .then(alert_rules::update);
    let delete = warp::path!("alert-rules" / String)
        .and(warp::delete())
        .and(auth())
        .and(st())
        .then(alert_rules::delete);
    let snooze = warp::path!("alert-rules" / String / "snooze")
        .and(warp::post())
        .and(auth())
        .and(body::json::<serde_json::Map<String, serde_json::Value>>(
            limit,
            alert_rules::EXPECTED_SNOOZE,
        ))
        .and(st())
        .then(alert_rules::snooze);
    list.or(ack)
        .unify()
        .or(rules)
        .unify()
        .or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(snooze)
        .unify()
        .boxed()
}

/// Wraps the API endpoints: scope check, CORS preflight, JSON rejections, API headers; then
/// the frontend for every other path.
fn assemble(api: BoxedFilter<(Response,)>, origins: Vec<String>) -> BoxedFilter<(Response,)> {
    let origins = Arc::new(origins);
    let preflight = {
        let origins = origins.clone();
        warp::method().and(warp::header::headers_cloned()).and_then(
            move |method, headers: HeaderMap| {
                let res = cors::preflight(&method, &headers, &origins);
                async move { res.ok_or_else(warp::reject::not_found) }
            },
        )
    };
    let api = api_scope()
        .and(warp::header::headers_cloned())
        .and(preflight.or(api).unify().recover(recover).unify())
        .map(move |request: HeaderMap, mut res: Response| {
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            cors::decorate(&mut res, &request, &origins);
            res
        });
    api.or(assets::routes()).unify().boxed()
}

/// Passes requests whose first path segment belongs to the API; rejects (404) the others.
fn api_scope() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::peek()
        .and_then(|peek: warp::path::Peek| {
            let api = is_api_path(peek.as_str());
            async move {
                if api {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
        .untuple_one()
}

/// Whether `path` (without leading slash) is an API path.
pub fn is_api_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    API_SEGMENTS.contains(&first)
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
