//! The dashboard: files of `frontend-dist/` embedded with rust-embed (read from disk in debug
//! builds), served at `/` with their MIME type, an ETag and strict security headers. Unknown
//! page routes get index.html (the dashboard routes in the browser); unknown file names (with
//! an extension) get 404, so a missing script is not answered with HTML. API paths never reach
//! this module (see `routes::Routes::is_api_path`).

use super::error::ApiError;
use rust_embed::RustEmbed;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

#[derive(RustEmbed)]
#[folder = "frontend-dist/"]
struct Assets;

const INDEX: &str = "index.html";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// Every non-API request; never rejects.
pub fn routes() -> BoxedFilter<(Response,)> {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(
            |method: Method, path: warp::path::FullPath, headers: HeaderMap| {
                let mut res = if method == Method::GET || method == Method::HEAD {
                    serve(path.as_str(), &headers)
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

/// Resolves `path` against the embedded files (`exists`), without touching the file system for
/// anything but plain relative names.
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
        return Target::File(rel.to_owned());
    }
    let last = rel.rsplit('/').next().unwrap_or(rel);
    if last.contains('.') {
        Target::Missing
    } else {
        Target::Index
    }
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let name = match resolve(path, |p| Assets::get(p).is_some()) {
        Target::File(name) => name,
        Target::Index => INDEX.to_owned(),
        Target::Missing => return text(StatusCode::NOT_FOUND, "Not found."),
    };
    let Some(file) = Assets::get(&name) else {
        return text(StatusCode::NOT_FOUND, "Not found.");
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

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
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
        assert_eq!(resolve("/devices/esp32-1", exists), Target::Index);
        assert_eq!(resolve("/missing.js", exists), Target::Missing);
        assert_eq!(resolve("/../Cargo.toml", exists), Target::Missing);
        assert_eq!(resolve("/%2e%2e/secret", exists), Target::Index);
        assert_eq!(resolve("/.env", exists), Target::Missing);
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
            .path("/some/page")
            .header("if-none-match", etag)
            .reply(&routes())
            .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }
}
