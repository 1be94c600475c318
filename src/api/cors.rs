//! CORS for a separately hosted frontend, only for origins listed in `allowed_origins` (never
//! `*`). Requests from other origins are still served (tokens, not cookies, authorize them) but
//! get no CORS headers, so browsers keep their answers from foreign pages. warp's own `cors()`
//! is not used because it answers 403 to same-origin POSTs, which browsers send with `Origin`.

use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: u64 = 600;

/// The request's `Origin` if it is one of `allowed` (compared without a trailing slash).
pub fn allowed_origin<'a>(headers: &'a HeaderMap, allowed: &[String]) -> Option<&'a HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(text))
        .then_some(origin)
}

/// Adds `Access-Control-Allow-Origin` (and `Vary: Origin`) to an API answer.
pub fn decorate(res: &mut Response, request: &HeaderMap, allowed: &[String]) {
    if allowed.is_empty() {
        return;
    }
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed_origin(request, allowed) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After, WWW-Authenticate"),
        );
    }
}

/// The answer to an `OPTIONS` request: a 204 preflight for an allowed origin, else `None`.
/// `methods` are the ones the requested path accepts (from the route table).
pub fn preflight(
    method: &Method,
    request: &HeaderMap,
    allowed: &[String],
    methods: &str,
) -> Option<Response> {
    if method != Method::OPTIONS || !request.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    allowed_origin(request, allowed)?;
    let mut res = Response::new(Vec::new().into());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_str(methods).ok()?,
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE),
    );
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, origin.parse().expect("origin"));
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        h
    }

    /// Only configured origins get CORS headers; without configuration nothing is added.
    #[test]
    fn only_configured_origins() {
        let allowed = vec!["https://dash.example".to_owned()];
        let mut res = Response::new(Vec::new().into());
        decorate(&mut res, &req("https://dash.example"), &allowed);
        assert_eq!(
            res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example"
        );

        let mut res = Response::new(Vec::new().into());
        decorate(&mut res, &req("https://evil.example"), &allowed);
        assert!(
            !res.headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );

        let mut res = Response::new(Vec::new().into());
        decorate(&mut res, &req("https://dash.example"), &[]);
        assert!(res.headers().is_empty());
    }

    /// A preflight is answered only for an allowed origin that names a method.
    #[test]
    fn preflight_only_for_allowed_origins() {
        let allowed = vec!["https://dash.example/".to_owned()];
        let m = "DELETE, OPTIONS";
        let res =
            preflight(&Method::OPTIONS, &req("https://dash.example"), &allowed, m).expect("204");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], m);
        assert!(preflight(&Method::OPTIONS, &req("https://evil.example"), &allowed, m).is_none());
        assert!(preflight(&Method::GET, &req("https://dash.example"), &allowed, m).is_none());
        assert!(preflight(&Method::OPTIONS, &req("https://dash.example"), &[], m).is_none());
    }
}
