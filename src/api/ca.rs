//! `GET /tls/ca.pem` (public): the generated private CA's certificate, for browsers, phones and
//! device firmware to trust (`GET /settings` names it as `ca_url`). 404 when TLS is off or the
//! certificate is one's own (a public CA is trusted already).

use super::Shared;
use super::error::ApiError;
use super::routes::{Endpoints, Table, finish};
use warp::Filter;
use warp::http::{HeaderValue, Method, header};
use warp::reply::Response;

/// Where the CA is downloaded from.
pub const CA_URL: &str = "/tls/ca.pem";

pub fn routes(t: &Table) -> Endpoints {
    finish(t.public(Method::GET, "tls/ca.pem").and(t.state()).then(ca))
}

async fn ca(state: Shared) -> Result<Response, ApiError> {
    let pem = state.ctx.config.ca_pem.clone().ok_or_else(|| {
        ApiError::Missing(
            "No generated CA: TLS is off or uses certificate files of its own.".into(),
        )
    })?;
    let mut res = Response::new(pem.as_str().to_owned().into());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"rzmon-ca.pem\""),
    );
    Ok(res)
}
