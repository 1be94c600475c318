//! Route tests with `warp::test` against the real route table and handlers, over a real
//! database in a temp dir: API scoping, JSON rejections, API headers, CORS, the frontend
//! fallback, and a walk over every route of the table.

use super::*;
use crate::presence::Presence;
use routes::Access;
use warp::http::{Method, StatusCode};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "admin-password";
/// Small enough to test the 413 cheaply.
const BODY_LIMIT: u64 = 64;

/// A real API state over a temp database with one user, `admin`.
struct Fixture {
    _dir: tempfile::TempDir,
    state: Shared,
    token: String,
}

/// The scraper token of the fixture's `/metrics`.
const METRICS_TOKEN: &str = "scraper-token-0123456789";

fn fixture(origins: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("rzmon.db")).expect("store");
    let hash = crate::auth::hash_password(PASSWORD).expect("hash");
    store.create_user("admin", &hash).expect("user");
    // The link is gone: commands to devices answer "offline" or "unavailable".
    let (out, _) = crate::commands::outbound_queue();
    let (commands, _) = Commands::new("rz".into(), out, Arc::new(Presence::default()));
    let notifier = crate::notify::Notifier::new(
        store.clone(),
        crate::notify::Settings {
            public_url: None,
            time_zone: jiff::tz::TimeZone::UTC,
            retry_base_ms: 5000,
        },
        Arc::default(),
    )
    .expect("notifier");
    let backups = Arc::new(crate::lifecycle::Backups::new(
        store.clone(),
        dir.path(),
        2,
        Arc::default(),
        Health::new(),
        Arc::default(),
    ));
    let ctx = Context {
        notifier,
        backups,
        store,
        hub: Hub::new(16),
        commands,
        jwt_secret: Arc::new(SECRET.to_vec()),
        metrics: Arc::default(),
        health: Health::new(),
        alerts: crate::alerts::Alerts::new(),
        config: ApiConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            trusted_proxies: Vec::new(),
            token_ttl: Duration::from_secs(60),
            remember_ttl: Duration::from_secs(3600),
            body_limit: BODY_LIMIT,
            ws_queue: 16,
            command_timeout: Duration::from_secs(1),
            enrol_timeout: Duration::from_secs(1),
            metrics_token: Some(crate::config::Secret::new(METRICS_TOKEN)),
            device: DeviceSettings {
                mqtt_host: None,
                external_broker: false,
                mqtt_port: Some(1883),
                mqtts_port: None,
                https_port: None,
                ca_url: None,
                topic_prefix: "rz".into(),
                mqtt_max_packet: 4096,
            },
            // A CA to offer, so the route walk finds `/tls/ca.pem` (the real one: tests/tls.rs).
            ca_pem: Some(Arc::new(
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            )),
        },
        shutdown: CancellationToken::new(),
    };
    let state = Arc::new(State::new(ctx).expect("state"));
    let user = state.ctx.store.user("admin").expect("read").expect("admin");
    let (token, _) = state
        .keys
        .issue("admin", user.uid, user.token_gen)
        .expect("token");
    Fixture {
        _dir: dir,
        state,
        token,
    }
}

/// A new token for `admin` under its current generation (logout routes end the old ones).
fn fresh_token(f: &Fixture) -> String {
    token_for(f, "admin")
}

/// A new session token for `name` (created as a viewer if it does not exist yet).
fn token_for(f: &Fixture, name: &str) -> String {
    let store = &f.state.ctx.store;
    if store.user(name).expect("read").is_none() {
        store
            .create_user_as(name, "unused-hash", crate::model::Role::Viewer)
            .expect("viewer");
    }
    let user = store.user(name).expect("read").expect("user");
    let (token, _) = f
        .state
        .keys
        .issue(name, user.uid, user.token_gen)
        .expect("token");
    token
}

fn app(f: &Fixture) -> BoxedFilter<(Response,)> {
    routes(f.state.clone())
}

fn json(res: &warp::http::Response<bytes::Bytes>) -> serde_json::Value {
    serde_json::from_slice(res.body()).expect("JSON body")
}

fn assert_api_error(res: &warp::http::Response<bytes::Bytes>, status: u16) {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        json(res)["error"]
            .as_str()
            .is_some_and(|s| s.ends_with('.'))
    );
}

/// Unknown API paths answer 404 JSON and never the frontend's index.html, with or without a
/// token (the path is matched before the token is checked).
#[tokio::test]
async fn unknown_api_paths_are_json_404() {
    let f = fixture(&[]);
    for path in [
        "/api/v1/x",
        "/getConfig/x",
        "/user/other",
        "/metrics/x",
        "/login/x",
        "/devices/a/b",
    ] {
        let res = warp::test::request().path(path).reply(&app(&f)).await;
        assert_api_error(&res, 404);
        let res = warp::test::request()
            .path(path)
            .header("authorization", format!("Bearer {}", f.token))
            .reply(&app(&f))
            .await;
        assert_api_error(&res, 404);
    }
}

/// `/` (with any hash route, which the browser never sends) and the assets are served; every
/// other non-API path, typos of API paths included, is a 404 HTML page that links to `/`,
/// with the page headers; other methods on `/` get 405.
#[tokio::test]
async fn unknown_pages_are_404_html() {
    let f = fixture(&[]);
    for path in ["/", "/index.html", "/app.js", "/js/api.js", "/css/app.css"] {
        let res = warp::test::request().path(path).reply(&app(&f)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
    for path in [
        "/device",
        "/overview/esp32-1",
        "/Login",
        "/settingsx",
        "/index.htm",
        "/js/nope.js",
        "/js",
        "/.env",
    ] {
        for method in ["GET", "POST"] {
            let res = warp::test::request()
                .method(method)
                .path(path)
                .reply(&app(&f))
                .await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(
                res.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let body = String::from_utf8_lossy(res.body()).into_owned();
            assert!(
                body.contains("<h1>Not found</h1>") && body.contains(r#"href="/""#),
                "{body}"
            );
        }
    }
    let res = warp::test::request()
        .method("POST")
        .path("/")
        .reply(&app(&f))
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
}

/// Wrong method → 405 with the path's methods; too large → 413; malformed JSON → 400;
/// not JSON → 415; all JSON.
#[tokio::test]
async fn body_and_method_errors_are_json() {
    let f = fixture(&[]);
    let res = warp::test::request().path("/login").reply(&app(&f)).await;
    assert_api_error(&res, 405);
    assert_eq!(res.headers()[header::ALLOW], "OPTIONS, POST");

    let big = format!(r#"{{"username":"{}"}}"#, "x".repeat(100));
    let post = |body: &str| {
        warp::test::request()
            .method("POST")
            .path("/login")
            .body(body)
    };
    assert_api_error(&post(&big).reply(&app(&f)).await, 413);
    assert_api_error(&post("{nope").reply(&app(&f)).await, 400);
    let res = post("{}")
        .header("content-type", "text/plain")
        .reply(&app(&f))
        .await;
    assert_api_error(&res, 415);
    let res = post(r#"{"username":"admin","password":"admin-password"}"#)
        .reply(&app(&f))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
}

/// Missing, garbage and foreign tokens are 401 JSON with `WWW-Authenticate: Bearer`; the
/// token is checked before the body is read.
#[tokio::test]
async fn protected_routes_need_a_valid_token() {
    let f = fixture(&[]);
    let other =
        JwtKeys::new(b"another-secret-another-secret-00", Duration::from_secs(60)).expect("keys");
    let (foreign, _) = other.issue("admin", 1, 0).expect("issue");
    for auth in [
        None,
        Some("Bearer garbage".to_owned()),
        Some(format!("Bearer {foreign}")),
    ] {
        let mut req = warp::test::request().path("/data");
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let res = req.reply(&app(&f)).await;
        assert_api_error(&res, 401);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    let res = warp::test::request()
        .method("POST")
        .path("/user/password")
        .body("{not json")
        .reply(&app(&f))
        .await;
    assert_api_error(&res, 401);
    let res = warp::test::request()
        .path("/data")
        .header("authorization", format!("Bearer {}", f.token))
        .reply(&app(&f))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Typed query parameters: a bad value is a 400 that names the parameter.
#[tokio::test]
async fn bad_query_values_name_the_parameter() {
    let f = fixture(&[]);
    for (path, word) in [
        ("/data?limit=0", "limit"),
        ("/data?start_date=yesterday", "start_date"),
        ("/data?device=a%2Fb", "device"),
        ("/data/summary?buckets=9999", "buckets"),
        ("/incidents?type=", ""),
        ("/access?access_id=a%20b", "access_id"),
        ("/audit?limit=x", "limit"),
        ("/data?limit=1&limit=2", "limit"),
    ] {
        let res = warp::test::request()
            .path(path)
            .header("authorization", format!("Bearer {}", f.token))
            .reply(&app(&f))
            .await;
        if word.is_empty() {
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            continue;
        }
        assert_api_error(&res, 400);
        let sentence = json(&res)["error"].as_str().unwrap_or_default().to_owned();
        assert!(sentence.contains(word), "{path}: {sentence}");
    }
}

/// `/ws` without an upgrade is a 400 JSON sentence, not a 404 or index.html.
#[tokio::test]
async fn ws_without_upgrade_is_400() {
    let f = fixture(&[]);
    let res = warp::test::request().path("/ws").reply(&app(&f)).await;
    assert_api_error(&res, 400);
}

/// CORS headers appear only for configured origins; preflights are answered for them only,
/// with the methods the requested path accepts (DELETE included).
#[tokio::test]
async fn cors_only_for_configured_origins() {
    let origin = "https://dash.example";
    let (with, without) = (fixture(&[origin]), fixture(&[]));
    let res = warp::test::request()
        .path("/data")
        .header("origin", origin)
        .reply(&app(&with))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);

    let res = warp::test::request()
        .path("/data")
        .header("origin", "https://evil.example")
        .reply(&app(&with))
        .await;
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let res = warp::test::request()
        .path("/data")
        .header("origin", origin)
        .reply(&app(&without))
        .await;
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let preflight = |o: &'static str, path: &'static str, method: &'static str| {
        warp::test::request()
            .method("OPTIONS")
            .path(path)
            .header("origin", o)
            .header("access-control-request-method", method)
    };
    let res = preflight(origin, "/login", "POST").reply(&app(&with)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
        "OPTIONS, POST"
    );
    let res = preflight(origin, "/devices/esp32-1", "DELETE")
        .reply(&app(&with))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
        "DELETE, OPTIONS"
    );
    let res = preflight("https://evil.example", "/login", "POST")
        .reply(&app(&with))
        .await;
    assert_api_error(&res, 405);
}

/// The route's path with `x` for every parameter.
fn sample_path(route: &routes::Route) -> String {
    let sample: Vec<&str> = route
        .path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect();
    format!("/{}", sample.join("/"))
}

/// Walks every route of the table: without a token a protected route is 401 and a public one
/// is served; with a token every route reaches its handler (never the 404 of an unknown path
/// or a 405); another method on its path is 405 and `Allow` names the route's method; a
/// preflight names it too. Prints the table with what each request answered.
#[tokio::test]
async fn every_route_is_reachable_and_guarded() {
    let origin = "https://dash.example";
    let f = fixture(&[origin]);
    let (api, table) = api_routes(f.state.clone());
    let app = assemble(api, table.clone(), vec![origin.to_owned()]);
    assert!(table.all().len() >= 20, "{table}");
    let mut report = String::new();
    for route in table.all() {
        let path = sample_path(route);
        let call = |token: Option<&str>, method: &Method| {
            let mut req = warp::test::request().method(method.as_str()).path(&path);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            req.reply(&app)
        };
        let anonymous = call(None, &route.method).await;
        let signed_in = call(Some(&fresh_token(&f)), &route.method).await;
        let what = format!("{} {path}", route.method);
        match route.access {
            Access::SignedIn | Access::Admin => assert_api_error(&anonymous, 401),
            Access::Public => assert!(
                ![401, 404, 405].contains(&anonymous.status().as_u16()),
                "{what}: {}",
                anonymous.status()
            ),
        }
        let answer = serde_json::from_slice::<serde_json::Value>(signed_in.body())
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert_ne!(answer, ApiError::NotFound.to_string(), "{what}");
        assert!(
            ![401, 405].contains(&signed_in.status().as_u16()),
            "{what}: {} {answer}",
            signed_in.status()
        );
        let other = if route.method == Method::PATCH {
            Method::PUT
        } else {
            Method::PATCH
        };
        let wrong = call(Some(&fresh_token(&f)), &other).await;
        assert_api_error(&wrong, 405);
        let allow = wrong.headers()[header::ALLOW].to_str().unwrap_or_default();
        assert!(allow.contains(route.method.as_str()), "{what}: {allow}");
        let pre = warp::test::request()
            .method("OPTIONS")
            .path(&path)
            .header("origin", origin)
            .header("access-control-request-method", route.method.as_str())
            .reply(&app)
            .await;
        let methods = pre.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap_or_default();
        assert!(methods.contains(route.method.as_str()), "{what}: {methods}");
        report.push_str(&format!(
            "{:<6} {:<22} {:<9} no token {} | token {} {answer}\n",
            route.method.as_str(),
            format!("/{}", route.path),
            format!("{:?}", route.access).to_lowercase(),
            anonymous.status().as_u16(),
            signed_in.status().as_u16(),
        ));
    }
    println!("{report}");
}

/// Reads a viewer may get something other than 200 for, each with the reason.
const VIEWER_READ_EXCEPTIONS: &[(&str, u16, &str)] = &[(
    "getConfig",
    503,
    "asks the device itself; the fixture's device is registered but not connected",
)];

/// For a read, a path with real ids and the query it needs (the walk's seeded device and
/// channel); changes keep the sample ids, so the admin's calls delete nothing the reads need.
fn real_path(route: &routes::Route, channel: &str) -> String {
    if route.method != Method::GET {
        return sample_path(route);
    }
    let path = sample_path(route)
        .replace("/channels/x", &format!("/channels/{channel}"))
        .replace("/devices/x", "/devices/esp32-1");
    match route.path {
        "getConfig" | "configHistory" => format!("{path}?device=esp32-1"),
        "timeline" => format!("{path}?at=2026-12-01T12:00:00Z"),
        _ => path,
    }
}

/// Walks every route of the table as a viewer, over a seeded device and channel: a route the
/// table marks `admin` (every change unless registered `signed_in`) is 403 with the viewer
/// sentence before its body is read; every read is 200 with real ids and parameters (except
/// the named [`VIEWER_READ_EXCEPTIONS`]); every other route gives the viewer the same status as
/// an admin. Admins are never 403. New routes are covered without touching this test.
#[tokio::test]
async fn viewer_walk_reads_yes_changes_no() {
    let f = fixture(&[]);
    let (api, table) = api_routes(f.state.clone());
    let app = assemble(api, table.clone(), Vec::new());
    let seed = |path: &'static str, body: serde_json::Value| {
        warp::test::request()
            .method("POST")
            .path(path)
            .header("authorization", format!("Bearer {}", fresh_token(&f)))
            .json(&body)
            .reply(&app)
    };
    let device = seed("/devices", serde_json::json!({"id": "esp32-1"})).await;
    assert_eq!(device.status(), 201, "{:?}", device.body());
    // Within the fixture's 64-byte body limit.
    let body =
        serde_json::json!({"name": "h", "kind": "webhook", "settings": {"url": "http://a/x"}});
    let channel = seed("/channels", body).await;
    assert_eq!(channel.status(), 201, "{:?}", channel.body());
    let channel = json(&channel)["id"].to_string();
    let mut report = String::new();
    let (mut refused, mut read) = (0, 0);
    for route in table.all() {
        if route.access == Access::Public {
            continue;
        }
        let path = real_path(route, &channel);
        let what = format!("{} {path}", route.method);
        let call = |token: String| {
            warp::test::request()
                .method(route.method.as_str())
                .path(&path)
                .header("authorization", format!("Bearer {token}"))
                .body("{not json")
                .reply(&app)
        };
        let as_viewer = call(token_for(&f, "viewer")).await;
        let as_admin = call(fresh_token(&f)).await;
        let status = as_viewer.status().as_u16();
        assert_ne!(as_admin.status(), StatusCode::FORBIDDEN, "{what} as admin");
        if route.access == Access::Admin {
            assert_api_error(&as_viewer, 403);
            assert_eq!(
                json(&as_viewer)["error"],
                routes::VIEWER_FORBIDDEN,
                "{what}"
            );
            refused += 1;
        } else {
            assert_eq!(
                status,
                as_admin.status().as_u16(),
                "{what}: {:?}",
                as_viewer.body()
            );
            if route.method == Method::GET {
                let want = VIEWER_READ_EXCEPTIONS
                    .iter()
                    .find(|(p, _, _)| *p == route.path)
                    .map_or(200, |(_, status, _)| *status);
                assert_eq!(status, want, "{what}: {:?}", as_viewer.body());
                read += 1;
            }
        }
        report.push_str(&format!(
            "{:<6} {:<28} {:<9} viewer {status} admin {}\n",
            route.method.as_str(),
            format!("/{}", route.path),
            format!("{:?}", route.access).to_lowercase(),
            as_admin.status().as_u16(),
        ));
    }
    println!("{report}");
    // Today's table: 23 changes refused, 22 reads; fewer means routes were lost.
    assert!(
        refused >= 23 && read >= 22,
        "{refused} refused, {read} read\n{report}"
    );
}

/// Regression: README's auth column said `yes` for 18 admin-only routes. Every route of the
/// table has a README row, and its auth column says `admin` exactly when the table does.
#[test]
fn readme_auth_column_follows_the_route_table() {
    let f = fixture(&[]);
    let (_, table) = api_routes(f.state.clone());
    let readme = include_str!("../../README.md");
    let mut wrong = Vec::new();
    for route in table.all() {
        let head = format!("| `{} /{}", route.method, route.path);
        let row = readme.lines().find(|l| {
            l.strip_prefix(&head)
                .is_some_and(|rest| rest.starts_with('`') || rest.starts_with('?'))
        });
        let Some(row) = row else {
            wrong.push(format!("{head}` has no row in README's HTTP API table"));
            continue;
        };
        let auth = row.split('|').nth(2).unwrap_or_default().trim();
        let admin = route.access == Access::Admin;
        if admin != (auth == "admin") {
            wrong.push(format!(
                "{head}`: README says {auth:?}, the table {:?}",
                route.access
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `rzmon_http_requests_total` labels: ids collapse into the route's template; unknown API
/// paths and page paths get one label each.
#[test]
fn request_labels_are_route_templates() {
    let f = fixture(&[]);
    let (_, routes) = api_routes(f.state.clone());
    let label = |p| super::metrics::route_label(&routes, p);
    assert_eq!(label("/devices/esp32-1"), "/devices/{id}");
    assert_eq!(label("/devices"), "/devices");
    assert_eq!(label("/metrics"), "/metrics");
    assert_eq!(label("/devices/a/b"), "api-other");
    assert_eq!(label("/js/app.js"), "frontend");
    assert_eq!(label("/"), "frontend");
}

/// `/metrics` takes the scraper token or a login token; any other token is 401.
#[tokio::test]
async fn metrics_take_the_scraper_token() {
    let f = fixture(&[]);
    let (api, table) = api_routes(f.state.clone());
    let app = assemble(api, table, Vec::new());
    let get = |token: String| {
        warp::test::request()
            .path("/metrics")
            .header("authorization", format!("Bearer {token}"))
            .reply(&app)
    };
    let ok = get(METRICS_TOKEN.to_owned()).await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4")
    );
    assert_eq!(get(fresh_token(&f)).await.status(), 200);
    assert_api_error(&get(format!("{METRICS_TOKEN}x")).await, 401);
}
