//! User management and API tokens over real HTTP against the real server: admins add, demote,
//! reset and remove users (never the last admin); removal ends the user's sessions, WebSockets
//! and API tokens at once; API tokens work as `Authorization: Bearer`, are stored hashed, carry
//! at most their owner's role and end when revoked; "keep me signed in" issues a longer session
//! that still ends with logout.

use crate::roles::login_as;
use crate::sessions::close_code;
use crate::util::*;
use serde_json::{Value, json};

fn token_of(login: &Value) -> String {
    login["access_token"].as_str().expect("token").to_owned()
}

/// An admin adds a viewer (password generated, shown once), the viewer reads the user list but
/// cannot add users; the admin promotes and demotes it, resets its password (its sessions end),
/// cannot remove or demote the last admin, and removing the viewer ends its session, its
/// WebSocket and its API token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users() {
    let app = TestApp::start().await;
    let admin = app.login().await;
    let (status, body) = app
        .post(
            "/users",
            Some(&admin),
            json!({"username": "wall", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["username"].as_str(), body["role"].as_str()),
        (Some("wall"), Some("viewer"))
    );
    let pw = body["password"]
        .as_str()
        .expect("generated password")
        .to_owned();
    for (bad, word) in [
        (json!({"username": "a b"}), "username"),
        (json!({"username": "x", "role": "root"}), "role"),
        (json!({"username": "x", "password": "short"}), "password"),
        (json!({"username": "wall"}), "exists"),
    ] {
        let (status, body) = app.post("/users", Some(&admin), bad.clone()).await;
        assert!([400, 409].contains(&status), "{bad}: {status}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(word),
            "{bad}: {body}"
        );
    }

    let viewer = token_of(&login_as(&app, "wall", &pw).await);
    let (status, list) = app.get("/users", Some(&viewer)).await;
    assert_eq!(status, 200);
    assert_eq!(list["users"].as_array().map(Vec::len), Some(2), "{list}");
    let (status, _) = app
        .post("/users", Some(&viewer), json!({"username": "sneaky"}))
        .await;
    assert_eq!(status, 403);

    let (status, body) = app
        .call(
            "PUT",
            "/users/admin/role",
            &admin,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 409, "the last admin: {body}");
    let (status, body) = app.call("DELETE", "/users/admin", &admin, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("last admin")
    );
    let (status, body) = app
        .call(
            "PUT",
            "/users/wall/role",
            &admin,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (200, Some("admin")),
        "{body}"
    );
    assert_eq!(
        app.post("/users", Some(&viewer), json!({"username": "now-ok"}))
            .await
            .0,
        201
    );
    let (status, _) = app
        .call(
            "PUT",
            "/users/wall/role",
            &admin,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.call("DELETE", "/users/ghost", &admin, None).await.0,
        404
    );

    let (status, body) = app
        .post("/users/wall/password", Some(&admin), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let pw = body["password"].as_str().expect("new password").to_owned();
    assert_eq!(
        app.get("/user/profile", Some(&viewer)).await.0,
        401,
        "reset ends sessions"
    );
    let viewer = token_of(&login_as(&app, "wall", &pw).await);

    let (status, api) = app
        .post("/tokens", Some(&viewer), json!({"name": "kiosk"}))
        .await;
    assert_eq!(
        (status, api["role"].as_str()),
        (201, Some("viewer")),
        "{api}"
    );
    let api = api["token"].as_str().expect("token").to_owned();
    let mut ws = app.ws_ready(&viewer).await;
    let (status, body) = app.call("DELETE", "/users/wall", &admin, None).await;
    assert_eq!(
        (status, body["deleted"].as_str()),
        (200, Some("wall")),
        "{body}"
    );
    assert_eq!(app.get("/user/profile", Some(&viewer)).await.0, 401);
    assert_eq!(
        app.get("/devices", Some(&api)).await.0,
        401,
        "its API token ended"
    );
    assert_eq!(close_code(&mut ws).await, Some(1008));
    let left: i64 = app
        .db()
        .query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0);
    let (_, audit) = app.get("/audit?limit=50", Some(&admin)).await;
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for a in [
        "userAdd",
        "userRole",
        "userPasswordReset",
        "userRemove",
        "tokenAdd",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

/// An API token is shown once, listed without its secret, stored only as a hash, works as a
/// bearer token (also for the WebSocket), acts as its owner's role at most, follows a demotion
/// of its owner, and ends at once when revoked (its WebSocket closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_create_use_revoke() {
    let app = TestApp::start().await;
    let admin = app.login().await;
    let (status, made) = app
        .post("/tokens", Some(&admin), json!({"name": "grafana"}))
        .await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().expect("token shown once").to_owned();
    assert!(token.starts_with("rzm_"), "{token}");
    assert_eq!(made["role"], "admin");
    let (_, list) = app.get("/tokens", Some(&admin)).await;
    assert_eq!(list["tokens"][0]["name"], "grafana", "{list}");
    assert!(
        !list.to_string().contains(&token[4..]),
        "the secret is never listed"
    );
    let stored: String = app
        .db()
        .query_row("SELECT hash FROM api_tokens", [], |r| r.get(0))
        .expect("row");
    assert!(!stored.contains(&token[4..]), "stored hashed");

    assert_eq!(app.get("/devices", Some(&token)).await.0, 200);
    let (status, body) = app
        .post("/devices", Some(&token), json!({"id": "esp32-5"}))
        .await;
    assert_eq!(status, 201, "an admin's token can change: {body}");
    let (_, list) = app.get("/tokens", Some(&admin)).await;
    assert!(list["tokens"][0]["last_used"].is_string(), "{list}");

    let (status, ro) = app
        .post(
            "/tokens",
            Some(&admin),
            json!({"name": "ha", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201);
    let ro = ro["token"].as_str().expect("token").to_owned();
    assert_eq!(app.get("/devices", Some(&ro)).await.0, 200);
    assert_eq!(
        app.post("/devices", Some(&ro), json!({"id": "esp32-6"}))
            .await
            .0,
        403
    );
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "role": "root"}),
        json!({}),
    ] {
        assert_eq!(
            app.post("/tokens", Some(&admin), bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
    assert_eq!(app.get("/devices", Some("rzm_0000")).await.0, 401);

    // The owner is demoted: the admin token now acts as a viewer; a viewer cannot mint an admin token.
    let pw = crate::roles::add_user(&app, "ops", None);
    let ops = token_of(&login_as(&app, "ops", &pw).await);
    let (_, t) = app
        .post("/tokens", Some(&ops), json!({"name": "script"}))
        .await;
    let ops_token = t["token"].as_str().expect("token").to_owned();
    let ops_id = t["id"].as_i64().expect("id");
    assert!(app.cli(&["user", "role", "ops", "viewer"]).status.success());
    assert_eq!(
        app.post("/devices", Some(&ops_token), json!({"id": "esp32-7"}))
            .await
            .0,
        403
    );
    let (status, body) = app
        .post("/tokens", Some(&ops), json!({"name": "x", "role": "admin"}))
        .await;
    assert_eq!(status, 403, "{body}");

    // Revoking: only the owner's own ids; the token and its WebSocket end at once.
    let mut ws = app.ws_ready(&ops_token).await;
    let path = format!("/tokens/{ops_id}");
    assert_eq!(
        app.call("DELETE", &path, &admin, None).await.0,
        404,
        "not admin's token"
    );
    let (status, body) = app.call("DELETE", &path, &ops, None).await;
    assert_eq!(
        (status, body["deleted"].as_i64()),
        (200, Some(ops_id)),
        "{body}"
    );
    assert_eq!(app.get("/devices", Some(&ops_token)).await.0, 401);
    assert_eq!(close_code(&mut ws).await, Some(1008));
    assert_eq!(app.call("DELETE", &path, &ops, None).await.0, 404);
    assert_eq!(app.call("DELETE", "/tokens/abc", &ops, None).await.0, 404);
}

/// "Keep me signed in": the token lives for RZMON_REMEMBER_TTL instead of RZMON_TOKEN_TTL,
/// stays that long across a password change, and still ends with logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_me_signed_in_is_longer_and_revocable() {
    let app = TestApp::start_with(&[("RZMON_REMEMBER_TTL", "86400")]).await;
    let (status, normal) = app
        .post(
            "/login",
            None,
            json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, kept) = app
        .post(
            "/login",
            None,
            json!({"username": "admin", "password": ADMIN_PASSWORD, "remember": true}),
        )
        .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["expires_in"], 86400, "{kept}");
    assert_eq!(kept["remember"], true);
    assert_ne!(normal["expires_in"], 86400);
    let kept = token_of(&kept);
    assert_eq!(app.get("/user/profile", Some(&kept)).await.0, 200);
    // A password change from the kept session keeps it a kept session.
    let (status, changed) = app
        .post(
            "/user/password",
            Some(&kept),
            json!({"current_password": ADMIN_PASSWORD, "new_password": "wall-display-pw"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let secs = changed["expires_in"].as_u64().unwrap_or_default();
    assert!((86_390..=86_400).contains(&secs), "{changed}");
    let kept = token_of(&changed);
    assert_eq!(app.post("/logout", Some(&kept), json!({})).await.0, 200);
    assert_eq!(app.get("/user/profile", Some(&kept)).await.0, 401);
}
