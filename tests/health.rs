//! `/health`: the registry's checks for everyone, the reasons only for a logged-in user.

use crate::util::*;
use serde_json::json;

/// Anonymous callers and bad tokens see status and checks only; a logged-in user also gets
/// `details` (empty while everything is ok).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_reasons_only_to_logged_in_users() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["checks"],
        json!({"database": "ok", "broker": "ok", "integrity": "ok"})
    );
    assert!(body.get("details").is_none(), "{body}");
    let (status, body) = app.get("/health", Some("not-a-token")).await;
    assert_eq!(status, 200, "a bad token is just anonymous here: {body}");
    assert!(body.get("details").is_none(), "{body}");
    let token = app.login().await;
    let (status, body) = app.get("/health", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["details"], json!({}), "{body}");
}
