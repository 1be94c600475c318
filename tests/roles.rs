//! Roles through the real server and the real CLI: `rzmon user add --role viewer` makes a user
//! who reads everything and changes nothing (403 naming the role), `rzmon user role` takes
//! effect on the next request, and the last admin can be neither demoted nor removed.

use crate::util::*;
use serde_json::{Value, json};

/// Runs `rzmon user add NAME [--role ROLE] --json`; the generated password.
pub fn add_user(app: &TestApp, name: &str, role: Option<&str>) -> String {
    let mut args = vec!["user", "add", name, "--json"];
    if let Some(r) = role {
        args.extend(["--role", r]);
    }
    let out = app.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("user add --json");
    v["password"].as_str().expect("password").to_owned()
}

pub async fn login_as(app: &TestApp, user: &str, password: &str) -> Value {
    let (status, body) = app
        .post(
            "/login",
            None,
            json!({"username": user, "password": password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A viewer reads devices and its profile (which names the role) but cannot add a device;
/// the sentence names the role. Promoting it with the CLI lets the same token add one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_reads_but_cannot_change() {
    let app = TestApp::start().await;
    let pw = add_user(&app, "wall", Some("viewer"));
    let login = login_as(&app, "wall", &pw).await;
    assert_eq!(login["role"], "viewer", "{login}");
    let token = login["access_token"].as_str().expect("token").to_owned();
    let (status, profile) = app.get("/user/profile", Some(&token)).await;
    assert_eq!((status, profile["role"].as_str()), (200, Some("viewer")));
    assert_eq!(app.get("/devices", Some(&token)).await.0, 200);
    let (status, body) = app
        .post("/devices", Some(&token), json!({"id": "esp32-9"}))
        .await;
    assert_eq!(status, 403, "{body}");
    let sentence = body["error"].as_str().unwrap_or_default();
    assert!(
        sentence.contains("viewer") && sentence.contains("admin"),
        "{sentence}"
    );
    assert_eq!(app.count("devices"), 0);

    let out = app.cli(&["user", "role", "wall", "admin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = app
        .post("/devices", Some(&token), json!({"id": "esp32-9"}))
        .await;
    assert_eq!(status, 201, "the same token now adds: {body}");

    let out = app.cli(&["user", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("list --json");
    let roles: Vec<_> = v["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| (u["username"].clone(), u["role"].clone()))
        .collect();
    assert_eq!(
        roles,
        [
            (json!("admin"), json!("admin")),
            (json!("wall"), json!("admin"))
        ]
    );
}

/// The CLI defaults to admin, refuses unknown roles, and never demotes or removes the last
/// admin (the message says what to do instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_roles_and_the_last_admin() {
    let app = TestApp::start().await;
    let out = app.cli(&["user", "add", "carol", "--role", "owner"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("viewer"), "{}", stderr(&out));

    add_user(&app, "dave", Some("viewer"));
    for args in [
        &["user", "role", "admin", "viewer"][..],
        &["user", "remove", "admin"][..],
    ] {
        let out = app.cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains("last admin"), "{}", stderr(&out));
    }
    assert!(app.cli(&["user", "remove", "dave"]).status.success());

    add_user(&app, "erin", None);
    let out = app.cli(&["user", "role", "admin", "viewer"]);
    assert!(
        out.status.success(),
        "another admin exists: {}",
        stderr(&out)
    );
    let out = app.cli(&["user", "remove", "erin"]);
    assert!(!out.status.success(), "erin is the last admin now");
}
