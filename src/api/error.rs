//! The one API error type: each variant maps to a status and a `{"error": "<sentence>"}` body.
//! Internal errors are logged with their full chain and answered with a generic sentence, so a
//! 500 never leaks paths, SQL or library messages.

use std::time::Duration;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Everything a handler or filter can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the sentence says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: understood, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 for an unknown API path.
    #[error("No such API endpoint.")]
    NotFound,
    /// 404 for a named thing (device, access id) that does not exist.
    #[error("{0}")]
    Missing(String),
    /// 409: it exists already.
    #[error("{0}")]
    Conflict(String),
    /// 422: the device refused the command; the sentence is the device's.
    #[error("{0}")]
    Refused(String),
    /// 503: the device is offline (or the broker link is gone).
    #[error("{0}")]
    Unavailable(String),
    /// 502: a service rzmon talks to (a notification channel) failed; the sentence says how.
    #[error("{0}")]
    BadGateway(String),
    /// 504: the device did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// 405 for a known path with the wrong method (the API adds `Allow` from the route table).
    #[error("This method is not allowed for this endpoint.")]
    MethodNotAllowed,
    /// 413: the body is larger than the configured limit.
    #[error("The request body is too large (at most {0} bytes).")]
    PayloadTooLarge(u64),
    /// 415: the body is not JSON.
    #[error("The request body must be JSON (Content-Type: application/json).")]
    UnsupportedMediaType,
    /// 429 with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// 500: logged in full, answered generically.
    #[error("Internal server error.")]
    Internal(#[source] anyhow::Error),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn bad_request(sentence: impl Into<String>) -> Self {
        Self::BadRequest(sentence.into())
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: status, JSON sentence and the headers the status calls for.
    pub fn to_response(&self) -> Response {
        if let Self::Internal(e) = self {
            tracing::error!(
                error = format!("{e:#}"),
                "internal error while serving a request"
            );
        }
        let mut res = json_response(
            self.status(),
            &serde_json::json!({ "error": self.to_string() }),
        );
        let headers = res.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_secs(*retry_after)),
                );
            }
            // The unread body is still on the wire: close the connection so that no client
            // reuses it for its next request.
            Self::PayloadTooLarge(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        res
    }
}

impl From<crate::commands::CommandError> for ApiError {
    fn from(e: crate::commands::CommandError) -> Self {
        use crate::commands::CommandError as C;
        match e {
            C::Offline(d) => Self::Unavailable(format!("Device {d} is offline.")),
            C::Timeout(d, s) => Self::Timeout(format!("Device {d} did not answer within {s} s.")),
            C::Rejected(sentence) => Self::Refused(sentence),
            C::Unavailable => Self::Unavailable(
                "The MQTT broker link is not available; try again shortly.".into(),
            ),
        }
    }
}

impl warp::Reply for ApiError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

/// Whole seconds to wait, rounded up so a client never retries a moment too early.
pub fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `value` as a JSON response with `status`.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;

    /// Renders the error made by `make` through warp and returns status, headers and JSON body.
    async fn render(
        make: impl Fn() -> ApiError + Clone + Send + Sync + 'static,
    ) -> (StatusCode, warp::http::HeaderMap, serde_json::Value) {
        let filter = warp::any().map(move || make().to_response());
        let res = warp::test::request().reply(&filter).await;
        let body = serde_json::from_slice(res.body()).expect("json body");
        (res.status(), res.headers().clone(), body)
    }

    /// Each variant answers its status with a JSON sentence.
    #[tokio::test]
    async fn variants_map_to_status_and_json_sentence() {
        type Case = (fn() -> ApiError, u16, &'static str);
        let cases: [Case; 7] = [
            (|| ApiError::bad_request("Bad limit."), 400, "Bad limit."),
            (
                || ApiError::Unauthorized("Log in first."),
                401,
                "Log in first.",
            ),
            (|| ApiError::Forbidden("No."), 403, "No."),
            (|| ApiError::NotFound, 404, "No such API endpoint."),
            (
                || ApiError::MethodNotAllowed,
                405,
                "This method is not allowed for this endpoint.",
            ),
            (
                || ApiError::PayloadTooLarge(10),
                413,
                "The request body is too large (at most 10 bytes).",
            ),
            (
                || ApiError::UnsupportedMediaType,
                415,
                "The request body must be JSON (Content-Type: application/json).",
            ),
        ];
        for (make, status, sentence) in cases {
            let (got, headers, body) = render(make).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            assert_eq!(body, serde_json::json!({ "error": sentence }));
        }
    }

    /// 401 carries `WWW-Authenticate: Bearer`; 429 carries `Retry-After` rounded up.
    #[tokio::test]
    async fn auth_and_rate_limit_headers() {
        let (_, headers, _) = render(|| ApiError::Unauthorized("x")).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        let (status, headers, body) = render(|| ApiError::TooManyRequests {
            message: "Wait.".into(),
            retry_after: Duration::from_millis(299_001),
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "300");
        assert_eq!(body, serde_json::json!({ "error": "Wait." }));
    }

    /// A 500 never shows the internal message.
    #[tokio::test]
    async fn internal_error_hides_details() {
        let (status, _, body) =
            render(|| ApiError::internal(anyhow::anyhow!("/secret/path: disk I/O error"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({ "error": "Internal server error." })
        );
    }
}
