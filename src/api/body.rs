//! JSON request bodies with a size limit: `Content-Length` over the limit is refused before
//! reading, and chunked bodies are counted while they stream, so no body larger than the
//! limit is ever buffered. Errors are `ApiError` rejections (413, 415, 400).

use super::error::ApiError;
use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, header};
use warp::{Filter, Rejection};

/// The body parsed as `T`; `expected` is the sentence a client gets when the JSON has the
/// wrong shape (e.g. `Send {"username": "...", "password": "..."}.`).
pub fn json<T: DeserializeOwned + Send + 'static>(
    limit: u64,
    expected: &'static str,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .and_then(move |headers: HeaderMap, body| async move {
            read_json(&headers, body, limit, expected)
                .await
                .map_err(warp::reject::custom)
        })
}

async fn read_json<T, S, B>(
    headers: &HeaderMap,
    body: S,
    limit: u64,
    expected: &'static str,
) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("The request body could not be read."))?;
        if (buf.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let mut chunk = chunk;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    parse(&buf, expected)
}

/// `Content-Type` may be absent (curl without `-H`); if present it must be JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Syntax errors and shape errors get different sentences; neither echoes the body.
fn parse<T: DeserializeOwned>(bytes: &[u8], expected: &'static str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(expected),
        _ => ApiError::bad_request(format!("The request body is not valid JSON. {expected}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Login {
        username: String,
    }

    fn filter() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
        json::<Login>(32, "Send {\"username\": \"...\"}.")
            .map(|l: Login| l.username)
            .recover(|r: Rejection| async move {
                let e = r
                    .find::<ApiError>()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                Ok::<_, std::convert::Infallible>(e)
            })
            .unify()
    }

    async fn post(body: &[u8], content_type: Option<&str>) -> String {
        let mut req = warp::test::request().method("POST").body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.filter(&filter()).await.expect("infallible")
    }

    /// A good body parses, with or without a JSON content type.
    #[tokio::test]
    async fn good_body_parses() {
        assert_eq!(post(br#"{"username":"a"}"#, None).await, "a");
        assert_eq!(
            post(
                br#"{"username":"a","x":1}"#,
                Some("application/json; charset=utf-8")
            )
            .await,
            "a"
        );
    }

    /// Too large, wrong type, malformed and wrong shape each get their own sentence.
    #[tokio::test]
    async fn bad_bodies_are_refused() {
        let big = format!(r#"{{"username":"{}"}}"#, "x".repeat(64));
        assert!(post(big.as_bytes(), None).await.contains("too large"));
        assert!(
            post(b"username=a", Some("application/x-www-form-urlencoded"))
                .await
                .contains("must be JSON")
        );
        assert!(post(b"{not json", None).await.contains("not valid JSON"));
        assert_eq!(
            post(br#"{"user":"a"}"#, None).await,
            "Send {\"username\": \"...\"}."
        );
        assert!(post(b"", None).await.contains("not valid JSON"));
    }
}
