//! Route-assembly tests with `warp::test`: API scoping, JSON rejections, API headers, CORS and
//! the frontend fallback. The endpoints here are small stand-ins built from the real filters
//! (body limit, bearer check), because the real handlers need a database.

use super::*;
use crate::auth::jwt::JwtKeys;
use warp::http::StatusCode;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn stub_api() -> BoxedFilter<(Response,)> {
    let keys = Arc::new(JwtKeys::new(SECRET, Duration::from_secs(60)).expect("keys"));
    let ok = || error::json_response(StatusCode::OK, &serde_json::json!({ "ok": true }));
    let login = warp::path!("login")
        .and(warp::post())
        .and(body::json::<serde_json::Value>(32, "Send an object."))
        .map(move |_| ok());
    let data = warp::path!("data")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and_then(move |h: HeaderMap| {
            let checked = auth_filter::bearer_token(&h).and_then(|t| {
                let t = t.ok_or(ApiError::Unauthorized("Log in first."))?;
                auth_filter::check_token(&keys, t)
            });
            async move { checked.map(|_| ok()).map_err(warp::reject::custom) }
        });
    let ws = warp::path!("ws")
        .and(warp::ws())
        .map(|ws: warp::ws::Ws| warp::Reply::into_response(ws.on_upgrade(|_| async {})));
    login.or(data).unify().or(ws).unify().boxed()
}

fn app(origins: &[&str]) -> BoxedFilter<(Response,)> {
    assemble(
        stub_api(),
        origins.iter().map(|o| (*o).to_owned()).collect(),
    )
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

/// Unknown API paths answer 404 JSON and never the frontend's index.html.
#[tokio::test]
async fn unknown_api_paths_are_json_404() {
    for path in [
        "/api/v1/x",
        "/getConfig",
        "/user/other",
        "/metrics/x",
        "/login/x",
    ] {
        let res = warp::test::request().path(path).reply(&app(&[])).await;
        assert_eq!(res.status().as_u16(), 404, "{path}");
        assert_api_error(&res, 404);
    }
}

/// Page routes get index.html with page headers; other methods on pages get 405.
#[tokio::test]
async fn pages_fall_back_to_index_html() {
    for path in ["/", "/overview/esp32-1", "/Login"] {
        let res = warp::test::request().path(path).reply(&app(&[])).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html");
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
    let res = warp::test::request()
        .method("POST")
        .path("/overview")
        .reply(&app(&[]))
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Wrong method → 405; too large → 413; malformed JSON → 400; all JSON.
#[tokio::test]
async fn body_and_method_errors_are_json() {
    let res = warp::test::request().path("/login").reply(&app(&[])).await;
    assert_api_error(&res, 405);

    let big = format!(r#"{{"username":"{}"}}"#, "x".repeat(100));
    let res = warp::test::request()
        .method("POST")
        .path("/login")
        .body(big)
        .reply(&app(&[]))
        .await;
    assert_api_error(&res, 413);

    let res = warp::test::request()
        .method("POST")
        .path("/login")
        .body("{nope")
        .reply(&app(&[]))
        .await;
    assert_api_error(&res, 400);

    let res = warp::test::request()
        .method("POST")
        .path("/login")
        .header("content-type", "text/plain")
        .body("{}")
        .reply(&app(&[]))
        .await;
    assert_api_error(&res, 415);

    let res = warp::test::request()
        .method("POST")
        .path("/login")
        .body("{}")
        .reply(&app(&[]))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
}

/// Missing, garbage and foreign tokens are 401 JSON with `WWW-Authenticate: Bearer`.
#[tokio::test]
async fn protected_routes_need_a_valid_token() {
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
        let res = req.reply(&app(&[])).await;
        assert_api_error(&res, 401);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    let (token, _) = JwtKeys::new(SECRET, Duration::from_secs(60))
        .expect("keys")
        .issue("admin", 1, 0)
        .expect("issue");
    let res = warp::test::request()
        .path("/data")
        .header("authorization", format!("Bearer {token}"))
        .reply(&app(&[]))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// `/ws` without an upgrade is a 400 JSON sentence, not a 404 or index.html.
#[tokio::test]
async fn ws_without_upgrade_is_400() {
    let res = warp::test::request().path("/ws").reply(&app(&[])).await;
    assert_api_error(&res, 400);
}

/// CORS headers appear only for configured origins; preflights are answered for them only.
#[tokio::test]
async fn cors_only_for_configured_origins() {
    let origin = "https://dash.example";
    let res = warp::test::request()
        .path("/data")
        .header("origin", origin)
        .reply(&app(&[origin]))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);

    let res = warp::test::request()
        .path("/data")
        .header("origin", "https://evil.example")
        .reply(&app(&[origin]))
        .await;
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let res = warp::test::request()
        .path("/data")
        .header("origin", origin)
        .reply(&app(&[]))
        .await;
    assert!(
        !res.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let preflight = |o: &'static str| {
        warp::test::request()
            .method("OPTIONS")
            .path("/login")
            .header("origin", o)
            .header("access-control-request-method", "POST")
    };
    let res = preflight(origin).reply(&app(&[origin])).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
    let res = preflight("https://evil.example")
        .reply(&app(&[origin]))
        .await;
    assert_api_error(&res, 405);
}

/// The API scope covers exactly the API's first path segments.
#[test]
fn api_scope_by_first_segment() {
    for p in ["/login", "/user/profile", "/ws", "/api/x", "/addAccessID"] {
        assert!(is_api_path(p), "{p}");
    }
    for p in ["/", "/index.html", "/app.js", "/logins", "/dashboard/data"] {
        assert!(!is_api_path(p), "{p}");
    }
}
