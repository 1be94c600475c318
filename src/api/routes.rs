//! The route table. Every endpoint is declared through a [`Table`] with its method and path
//! (`"devices/{id}"`), and the table keeps that list: the paths that never fall back to the
//! dashboard, the methods CORS and `Allow` name, and the route-walk test all come from it, so
//! none of them can miss a route. `public` endpoints take no token; `protected` ones check the
//! bearer token once the path and method matched (an unknown path stays a 404 and a wrong
//! method a 405) and before the body is read, and then the caller's role: a protected GET is
//! for every signed-in user (viewers too), every other method needs `admin` unless the route
//! is registered with `signed_in` (the caller's own account: logout, own password, own API
//! tokens). A viewer gets 403 with a sentence naming its role. So a new route gets the right
//! rule without any extra code (see /work/coord/notes/howto-roles.md).

use super::auth_filter::{self, Principal};
use super::error::ApiError;
use super::{Shared, body, with_state};
use crate::model::Role;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::convert::Infallible;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// First path segments kept for the API although no route uses them yet (a versioned
/// `/api/...` later), so they answer JSON 404s rather than the dashboard.
const RESERVED_PREFIXES: &[&str] = &["api"];

/// What a viewer hears when it calls a route that needs `admin`.
pub const VIEWER_FORBIDDEN: &str =
    "Your role is viewer, which may only read; this needs the admin role.";

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Public,
    /// Every signed-in user, whatever the role.
    SignedIn,
    /// Signed-in users with the admin role.
    Admin,
}

impl Access {
    /// The rule of a protected route that does not name one: reading is for every signed-in
    /// user, changing (POST, PUT, PATCH, DELETE) for admins.
    pub fn default_for(method: &Method) -> Self {
        if method == Method::GET {
            Access::SignedIn
        } else {
            Access::Admin
        }
    }

    /// Whether a signed-in user with `role` may call a route with this rule.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::SignedIn => true,
            Access::Admin => role == Role::Admin,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::SignedIn => "signed-in",
            Access::Admin => "admin",
        }
    }
}

/// One endpoint: method, path (`{name}` marks a parameter segment) and access.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

impl Route {
    /// Whether `path` (without leading slash, no query) is this route's path.
    fn matches(&self, path: &str) -> bool {
        let mut want = self.path.split('/');
        let mut got = path.trim_matches('/').split('/');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    }
}

/// The API's endpoints once built: who owns which path, for scoping, CORS and `Allow`.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    #[cfg(test)]
    pub fn all(&self) -> &[Route] {
        &self.0
    }

    /// Whether `path` belongs to the API (its first segment is one a route starts with), so
    /// it is answered in JSON and never with the dashboard's index.html.
    pub fn is_api_path(&self, path: &str) -> bool {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        RESERVED_PREFIXES.contains(&first)
            || self
                .0
                .iter()
                .any(|r| r.path.split('/').next() == Some(first))
    }

    /// The methods `path` accepts, plus `OPTIONS`, as an `Allow` value; every method any
    /// route uses when `path` is not a route.
    pub fn allow(&self, path: &str) -> String {
        let mut methods: Vec<&str> = self
            .0
            .iter()
            .filter(|r| r.matches(path))
            .map(|r| r.method.as_str())
            .collect();
        if methods.is_empty() {
            methods = self.0.iter().map(|r| r.method.as_str()).collect();
        }
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.dedup();
        methods.join(", ")
    }
}

/// The API endpoints of one resource file, answered as responses.
pub type Endpoints = BoxedFilter<(Response,)>;

impl Routes {
    /// The path template of the route `path` belongs to (`devices/{id}`), for labels that
    /// must stay few: a raw path never becomes one.
    pub fn template(&self, path: &str) -> Option<&'static str> {
        self.0.iter().find(|r| r.matches(path)).map(|r| r.path)
    }
}

/// One line per route: `DELETE /devices/{id} (admin)`.
impl std::fmt::Display for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.0 {
            let access = r.access.as_str();
            writeln!(f, "{:<6} /{} ({access})", r.method.as_str(), r.path)?;
        }
        Ok(())
    }
}

/// Builds the endpoints and records each one.
pub struct Table {
    state: Shared,
    routes: RefCell<Vec<Route>>,
}

impl Table {
    pub fn new(state: Shared) -> Self {
        Self {
            state,
            routes: RefCell::default(),
        }
    }

    /// The recorded endpoints.
    pub fn into_routes(self) -> Routes {
        Routes(self.routes.into_inner())
    }

    /// An endpoint anyone may call.
    pub fn public(&self, method: Method, path: &'static str) -> BoxedFilter<()> {
        self.record(method.clone(), path, Access::Public);
        segments(path)
            .and(method_filter(&method))
            .map(|_: Vec<String>| ())
            .untuple_one()
            .boxed()
    }

    /// An endpoint for logged-in users under the default rule (`Access::default_for`):
    /// extracts the caller.
    pub fn protected(&self, method: Method, path: &'static str) -> BoxedFilter<(Principal,)> {
        let access = Access::default_for(&method);
        self.with_access(method, path, access)
    }

    /// A protected endpoint with one `{param}` segment under the default rule: extracts the
    /// parameter and the caller.
    pub fn protected_param(
        &self,
        method: Method,
        path: &'static str,
    ) -> BoxedFilter<(String, Principal)> {
        let access = Access::default_for(&method);
        self.with_access_param(method, path, access)
    }

    /// An endpoint with one `{param}` segment for admins only, also for reading: for what
    /// holds secrets (a backup is the whole database: password hashes, channel secrets).
    pub fn admin_param(
        &self,
        method: Method,
        path: &'static str,
    ) -> BoxedFilter<(String, Principal)> {
        self.with_access_param(method, path, Access::Admin)
    }

    /// A change every signed-in user may make, viewers too: only for what concerns the
    /// caller's own account (logout, own password, own API tokens).
    pub fn signed_in(&self, method: Method, path: &'static str) -> BoxedFilter<(Principal,)> {
        self.with_access(method, path, Access::SignedIn)
    }

    /// `signed_in` with one `{param}` segment.
    pub fn signed_in_param(
        &self,
        method: Method,
        path: &'static str,
    ) -> BoxedFilter<(String, Principal)> {
        self.with_access_param(method, path, Access::SignedIn)
    }

    fn with_access(
        &self,
        method: Method,
        path: &'static str,
        access: Access,
    ) -> BoxedFilter<(Principal,)> {
        self.protected_with(method, path, access)
            .map(|_: Vec<String>, p: Principal| p)
            .boxed()
    }

    fn with_access_param(
        &self,
        method: Method,
        path: &'static str,
        access: Access,
    ) -> BoxedFilter<(String, Principal)> {
        self.protected_with(method, path, access)
            .and_then(|mut params: Vec<String>, p: Principal| async move {
                params
                    .pop()
                    .map(|param| (param, p))
                    .ok_or_else(warp::reject::not_found)
            })
            .untuple_one()
            .boxed()
    }

    pub fn get(&self, path: &'static str) -> BoxedFilter<(Principal,)> {
        self.protected(Method::GET, path)
    }

    pub fn post(&self, path: &'static str) -> BoxedFilter<(Principal,)> {
        self.protected(Method::POST, path)
    }

    /// A protected GET endpoint for a machine (a Prometheus scraper): besides a login token it
    /// accepts the fixed `service` token, if one is configured.
    pub fn get_for_service(
        &self,
        path: &'static str,
        service: Option<crate::config::Secret>,
    ) -> BoxedFilter<()> {
        self.record(Method::GET, path, Access::SignedIn);
        segments(path)
            .and(method_filter(&Method::GET))
            .and(auth_filter::service_or_session(self.state.clone(), service))
            .map(|_: Vec<String>| ())
            .untuple_one()
            .boxed()
    }

    /// The API settings, for building routes.
    pub fn config(&self) -> &super::ApiConfig {
        &self.state.ctx.config
    }

    /// The shared state, for handlers.
    pub fn state(&self) -> impl Filter<Extract = (Shared,), Error = Infallible> + Clone + use<> {
        with_state(self.state.clone())
    }

    /// The JSON body as `T` within the configured size limit; `expected` is the sentence a
    /// client gets when the body has the wrong shape.
    pub fn json<T: DeserializeOwned + Send + 'static>(
        &self,
        expected: &'static str,
    ) -> impl Filter<Extract = (T,), Error = Rejection> + Clone + use<T> {
        body::json(self.state.ctx.config.body_limit, expected)
    }

    /// Path, method, token, then the caller's role against `access`.
    fn protected_with(
        &self,
        method: Method,
        path: &'static str,
        access: Access,
    ) -> BoxedFilter<(Vec<String>, Principal)> {
        self.record(method.clone(), path, access);
        segments(path)
            .and(method_filter(&method))
            .and(auth_filter::authenticated(self.state.clone()))
            .and_then(move |params: Vec<String>, p: Principal| async move {
                if access.allows(p.role) {
                    Ok((params, p))
                } else {
                    Err(warp::reject::custom(ApiError::Forbidden(VIEWER_FORBIDDEN)))
                }
            })
            .untuple_one()
            .boxed()
    }

    fn record(&self, method: Method, path: &'static str, access: Access) {
        self.routes.borrow_mut().push(Route {
            method,
            path,
            access,
        });
    }
}

/// The one adapter from handlers to responses: a handler's `Result<impl Reply, ApiError>` is
/// itself a reply (the error renders as its status and JSON sentence).
pub fn finish<R: Reply + 'static>(
    f: impl Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> Endpoints {
    f.map(Reply::into_response).boxed()
}

/// The query string as `T`, a struct naming the parameters a route reads (unknown ones are
/// ignored). A query that does not fit is a 400 whose sentence names the parameter.
pub fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            serde_urlencoded::from_str::<T>(&raw).map_err(|e| {
                warp::reject::custom(ApiError::bad_request(format!(
                    "The query string is malformed: {e}."
                )))
            })
        })
}

/// Matches `path` exactly; extracts the `{param}` segments in order.
fn segments(path: &'static str) -> BoxedFilter<(Vec<String>,)> {
    let mut f = warp::any().map(Vec::new).boxed();
    for seg in path.split('/') {
        f = if seg.starts_with('{') {
            f.and(warp::path::param::<String>())
                .map(|mut v: Vec<String>, p: String| {
                    v.push(p);
                    v
                })
                .boxed()
        } else {
            f.and(warp::path(seg)).boxed()
        };
    }
    f.and(warp::path::end()).boxed()
}

/// warp's method filters (they reject with 405, which the API turns into JSON).
fn method_filter(m: &Method) -> BoxedFilter<()> {
    match m.as_str() {
        "GET" => warp::get().boxed(),
        "POST" => warp::post().boxed(),
        "PUT" => warp::put().boxed(),
        "DELETE" => warp::delete().boxed(),
        "PATCH" => warp::patch().boxed(),
        other => panic!("the route table has no filter for method {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let r = |method, path| Route {
            access: Access::default_for(&method),
            method,
            path,
        };
        Routes(vec![
            r(Method::GET, "devices"),
            r(Method::POST, "devices"),
            r(Method::DELETE, "devices/{id}"),
            r(Method::GET, "user/profile"),
        ])
    }

    /// Paths match segment by segment; a parameter matches one non-empty segment.
    #[test]
    fn route_paths_match_by_segment() {
        let routes = routes();
        let del = &routes.all()[2];
        assert!(del.matches("devices/esp32-1"));
        assert!(del.matches("/devices/esp32-1"));
        assert!(!del.matches("devices"));
        assert!(!del.matches("devices/a/b"));
        assert!(!del.matches("devices/"));
    }

    /// The API scope is the set of first segments; `Allow` names the path's own methods.
    #[test]
    fn scope_and_allow_come_from_the_routes() {
        let routes = routes();
        for p in ["/devices", "/user/x", "/api/v2", "devices/1/2"] {
            assert!(routes.is_api_path(p), "{p}");
        }
        for p in ["/", "/index.html", "/deviceslist", "/users"] {
            assert!(!routes.is_api_path(p), "{p}");
        }
        assert_eq!(routes.allow("/devices"), "GET, OPTIONS, POST");
        assert_eq!(routes.allow("/devices/x"), "DELETE, OPTIONS");
        assert_eq!(routes.allow("/user/nope"), "DELETE, GET, OPTIONS, POST");
    }

    /// Reads are for everyone signed in, changes for admins; `signed_in` opens a change.
    #[test]
    fn default_rules_by_method() {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(Access::default_for(&m), Access::Admin, "{m}");
        }
        assert_eq!(Access::default_for(&Method::GET), Access::SignedIn);
        assert!(!Access::Admin.allows(Role::Viewer));
        assert!(Access::Admin.allows(Role::Admin));
        assert!(Access::SignedIn.allows(Role::Viewer));
    }

    /// A path's template is its route's path; other paths have none.
    #[test]
    fn templates_come_from_the_routes() {
        let routes = routes();
        assert_eq!(routes.template("/devices/esp32-1"), Some("devices/{id}"));
        assert_eq!(routes.template("/devices"), Some("devices"));
        assert_eq!(routes.template("/devices/a/b"), None);
        assert_eq!(routes.template("/"), None);
    }
}
