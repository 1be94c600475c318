//! The dashboard: files of `frontend-dist/` embedded with rust-embed (read from disk in debug
//! builds), served at `/` with their MIME type, an ETag and strict security headers. The
//! dashboard routes with URL fragments (`/#/devices`), so `/` is its only page: every other
//! path that is not an embedded file answers 404 with a small HTML page that links to `/`
//! (a typo such as `/device` is not answered with the dashboard). API paths never reach this
//! module (see `routes::Routes::is_api_path`).

use super::error::ApiError;
use rust_embed::RustEmbed;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

#[derive(RustEmbed)]
#[folder = "frontend-dist/"]
struct Assets;

const INDEX: &str = "index.html";
/// The answer for unknown paths, in both dashboard languages (no script or style: the CSP
/// applies, and it has to work when the assets do not).
const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
<title>Not found · rzmon</title></head><body>\
<h1>Not found</h1><p>There is no page at this address. <a href=\"/\">Open the rzmon dashboard</a>.</p>\
<p lang=\"de\">Unter dieser Adresse gibt es keine Seite. <a href=\"/\">Zum rzmon-Dashboard</a>.</p>\
</body></html>\n";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// Every non-API request; never rejects.
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(
            |method: Method, path: warp::path::FullPath, headers: HeaderMap| {
                let target = resolve(path.as_str(), |p| Assets::get(p).is_some());
                let mut res = if target == Target::Missing {
                    not_found()
                } else if method == Method::GET || method == Method::HEAD {
                    serve(target, &headers)
                } else {
                    let mut res = ApiError::MethodNotAllowed.to_response();
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    res
                };
                page_headers(res.headers_mut());
                res
            },
        )
        .boxed()
}

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    File(String),
    Index,
    Missing,
}

/// Resolves `path` against the embedded files (`exists`): `/` is the dashboard, a plain
/// relative name of an embedded file is that file, anything else is missing.
pub fn resolve(path: &str, exists: impl Fn(&str) -> bool) -> Target {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Target::Index;
    }
    let plain = rel.split('/').all(|seg| {
        !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    });
    if plain && exists(rel) {
        Target::File(rel.to_owned())
    } else {
        Target::Missing
    }
}

fn serve(target: Target, request: &HeaderMap) -> Response {
    let name = match target {
        Target::File(name) => name,
        Target::Index => INDEX.to_owned(),
        Target::Missing => return not_found(),
    };
    let Some(file) = Assets::get(&name) else {
        return not_found();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(file.data.into_owned().into())
    };
    let mime = mime_guess::from_path(&name).first_or_octet_stream();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // No hashed file names yet: always revalidate (cheap with the ETag).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn not_found() -> Response {
    let mut res = Response::new(NOT_FOUND_PAGE.into());
    *res.status_mut() = StatusCode::NOT_FOUND;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn page_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/` and page routes are index.html; files are files; odd or missing names are not.
    #[test]
    fn resolution() {
        let exists = |p: &str| matches!(p, "index.html" | "app.js" | "css/site.css");
        assert_eq!(resolve("/", exists), Target::Index);
        assert_eq!(resolve("/app.js", exists), Target::File("app.js".into()));
        assert_eq!(
            resolve("/css/site.css", exists),
            Target::File("css/site.css".into())
        );
        assert_eq!(
            resolve("/index.html", exists),
            Target::File("index.html".into())
        );
        for missing in [
            "/devices/esp32-1",
            "/device",
            "/missing.js",
            "/../Cargo.toml",
            "/%2e%2e/secret",
            "/.env",
            "/css",
        ] {
            assert_eq!(resolve(missing, exists), Target::Missing, "{missing}");
        }
    }

    /// The placeholder page is embedded, served as HTML with the security headers, and an
    /// ETag revalidation answers 304.
    #[tokio::test]
    async fn index_is_served_with_security_headers() {
        let res = warp::test::request().path("/").reply(&routes()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(res.headers()[header::REFERRER_POLICY], "no-referrer");
        assert!(String::from_utf8_lossy(res.body()).contains(r#"id="login-form""#));

        let etag = res.headers()[header::ETAG].clone();
        let res = warp::test::request()
            .path("/")
            .header("if-none-match", etag)
            .reply(&routes())
            .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }
}
