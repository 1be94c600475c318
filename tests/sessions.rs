//! Sessions that end: a password change (API or CLI), removing a user and logout end the
//! tokens at once (401) and close their open WebSockets with 1008 within 1.5 s (README: within a
//! second); a re-created user name does not revive an old token.

use crate::util::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The README promises a close "within a second" of the session's end (re-checked every
/// 0.5 s); the slack is for a loaded test machine.
const CLOSE_WITHIN: Duration = Duration::from_millis(1500);

/// The close code the server sends within `CLOSE_WITHIN` from now, skipping other frames.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    close_code_since(ws, Instant::now()).await
}

/// The close code the server sends within `CLOSE_WITHIN` of `ended` (when the session ended),
/// skipping other frames; `None` if none comes by then.
pub async fn close_code_since(ws: &mut Ws, ended: Instant) -> Option<u16> {
    let deadline = ended + CLOSE_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(WsMessage::Close(frame)))) => return frame.map(|f| f.code.into()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn login_as(app: &TestApp, user: &str, password: &str) -> String {
    let body = crate::roles::login_as(app, user, password).await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn status_of(app: &TestApp, token: &str) -> u16 {
    app.get("/user/profile", Some(token)).await.0
}

fn add_user(app: &TestApp, name: &str) -> String {
    crate::roles::add_user(app, name, None)
}

/// `POST /user/password` ends every token of the user (also the one that asked) and closes
/// their WebSockets; the answer's new token works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_all_sessions() {
    let app = TestApp::start().await;
    let (a, b) = (app.login().await, app.login().await);
    let mut ws = app.ws_ready(&a).await;
    let (status, body) = app
        .post(
            "/user/password",
            Some(&a),
            json!({"current_password": ADMIN_PASSWORD, "new_password": "a-brand-new-password"}),
        )
        .await;
    let ended = Instant::now();
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().expect("new token").to_owned();
    assert_eq!(status_of(&app, &a).await, 401);
    assert_eq!(status_of(&app, &b).await, 401);
    assert_eq!(status_of(&app, &fresh).await, 200);
    assert_eq!(
        close_code_since(&mut ws, ended).await,
        Some(1008),
        "the old session's socket closes within 1.5 s"
    );
    let mut ws = app.ws_ready(&fresh).await;
    assert_eq!(app.post("/logout", Some(&fresh), json!({})).await.0, 200);
    assert_eq!(close_code(&mut ws).await, Some(1008));
}

/// `rzmon user passwd` and `rzmon user remove`, run in another process, end the user's
/// sessions; a new user with the removed name does not inherit the old tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_password_change_and_removal_end_sessions() {
    let app = TestApp::start().await;
    let pw = add_user(&app, "bob");
    let token = login_as(&app, "bob", &pw).await;
    let mut ws = app.ws_ready(&token).await;
    let out = app.cli(&["user", "passwd", "bob", "--json"]);
    let ended = Instant::now();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pw = v["password"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&app, &token).await, 401);
    assert_eq!(close_code_since(&mut ws, ended).await, Some(1008));

    let token = login_as(&app, "bob", &pw).await;
    let mut ws = app.ws_ready(&token).await;
    assert!(app.cli(&["user", "remove", "bob"]).status.success());
    let ended = Instant::now();
    assert_eq!(status_of(&app, &token).await, 401);
    assert_eq!(
        close_code_since(&mut ws, ended).await,
        Some(1008),
        "removed user's socket closes"
    );

    let pw2 = add_user(&app, "bob");
    assert_eq!(
        status_of(&app, &token).await,
        401,
        "a re-created name does not revive the old token"
    );
    let new = login_as(&app, "bob", &pw2).await;
    assert_eq!(status_of(&app, &new).await, 200);
}

/// `POST /logout` ends only its own token; `POST /logout/all` ends all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_sign_out_everywhere() {
    let app = TestApp::start().await;
    let (a, b, c) = (app.login().await, app.login().await, app.login().await);
    let mut ws_a = app.ws_ready(&a).await;
    let mut ws_b = app.ws_ready(&b).await;
    assert_eq!(app.post("/logout", Some(&a), json!({})).await.0, 200);
    let ended = Instant::now();
    assert_eq!(status_of(&app, &a).await, 401);
    assert_eq!(status_of(&app, &b).await, 200, "other sessions stay");
    assert_eq!(close_code_since(&mut ws_a, ended).await, Some(1008));
    assert_eq!(app.post("/logout", Some(&a), json!({})).await.0, 401);

    assert_eq!(app.post("/logout/all", Some(&b), json!({})).await.0, 200);
    let ended = Instant::now();
    assert_eq!(status_of(&app, &b).await, 401);
    assert_eq!(status_of(&app, &c).await, 401);
    assert_eq!(close_code_since(&mut ws_b, ended).await, Some(1008));
    let d = app.login().await;
    assert_eq!(status_of(&app, &d).await, 200, "a new login works");
}
