//! HTTP API: first start, login and lockout, tokens, /data and /incidents filters, bad input.

use crate::util::*;
use serde_json::json;

/// First start without RZMON_ADMIN_PASSWORD keeps a random admin password in
/// `<data>/initial_admin_password` (0600) — not on the console, which is no terminal here (it
/// would end up in the journal) — the password works, and the secrets on disk are private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_keeps_a_random_admin_password_in_a_private_file() {
    let app = TestApp::start_bare().await;
    let file = app.dir.path().join("initial_admin_password");
    let password = std::fs::read_to_string(&file).expect("initial_admin_password");
    let password = password.trim();
    assert!(password.len() >= 20, "{password}");
    let out = app.stdout.lock().unwrap().join("\n");
    assert!(out.contains("initial_admin_password"), "{out}");
    // The banner names the data directory, and the password file by its absolute path.
    let dir = app.dir.path().display().to_string();
    assert!(out.contains(&format!("Data:      {dir}")), "{out}");
    assert!(
        out.contains(&format!("password in {dir}/initial_admin_password")),
        "{out}"
    );
    assert!(!out.contains(password), "the password went to stdout");
    assert!(
        !app.stderr().contains(password),
        "the password went to the log"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&app.dir.path().join("jwt_secret")), 0o600);
    assert_eq!(mode(&app.db_path()), 0o600);
    let (status, body) = app
        .post(
            "/login",
            None,
            json!({"username": "admin", "password": password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 43200);
    assert!(
        !file.exists(),
        "the file is deleted at admin's first sign-in"
    );
    let second = app.restart().await;
    let out = second.stdout.lock().unwrap().join("\n");
    assert!(
        !out.contains("Admin login"),
        "nothing about a first start on the second start: {out}"
    );
}

/// Telemetry reaches /data with its fields, newest first, default limit 100, explicit limit and
/// device filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_served_by_data_with_limits_order_and_device_filter() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let a = app.device("esp32-a").await;
    let b = app.device("esp32-b").await;
    for i in 0..105 {
        a.publish(
            "telemetry",
            json!({"tmp": 20.0 + f64::from(i) / 10.0, "lf": 40, "locked": i % 2 == 0, "n": i})
                .to_string(),
        )
        .await;
    }
    b.publish(
        "telemetry",
        json!({"tmp": 30.5, "lf": 55.5, "locked": false}).to_string(),
    )
    .await;
    assert!(app.wait_rows(&token, "esp32-a", 105).await);
    assert!(app.wait_rows(&token, "esp32-b", 1).await);

    let (status, body, headers) = app.get_full("/data", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["data"].as_array().unwrap().len(), 100, "default limit");
    let (_, body) = app.get("/data?device=esp32-a&limit=5", Some(&token)).await;
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["data"]["n"], 104, "newest first");
    assert_eq!(rows[4]["data"]["n"], 100);
    assert_eq!(rows[0]["device"], "esp32-a");
    assert_eq!(rows[0]["data"]["locked"], true);
    let ts = rows[0]["timestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 24 && ts.as_bytes()[19] == b'.',
        "{ts}"
    );
    let (_, body) = app.get("/data?device=esp32-b", Some(&token)).await;
    assert_eq!(
        body["data"][0]["data"],
        json!({"tmp": 30.5, "lf": 55.5, "locked": false})
    );
    let (_, body) = app.get("/data?device=nobody", Some(&token)).await;
    assert_eq!(body["data"], json!([]));
}

/// The chart summary aggregates per bucket in SQL and validates its parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_summary_downsamples() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("esp32-1").await;
    for tmp in [20.0, 22.0, 24.0] {
        d.publish(
            "telemetry",
            json!({"tmp": tmp, "lf": 50, "locked": true}).to_string(),
        )
        .await;
    }
    assert!(app.wait_rows(&token, "esp32-1", 3).await);
    let (status, body) = app
        .get("/data/summary?device=esp32-1&buckets=1", Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    let b = &body["buckets"].as_array().unwrap()[0];
    assert_eq!(b["count"], 3);
    assert_eq!(b["tmp"], json!({"min": 20.0, "avg": 22.0, "max": 24.0}));
    assert_eq!(b["lf"]["avg"], 50.0);
    assert_eq!(b["locked"], 1.0);
    for q in [
        "buckets=0",
        "buckets=5000",
        "start_date=2030-01-01&end_date=2029-01-01",
    ] {
        assert_eq!(
            app.get(&format!("/data/summary?{q}"), Some(&token)).await.0,
            400,
            "{q}"
        );
    }
}

/// Every date format filters by the server's receive time; bad dates and limits are 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_date_filters_and_bad_parameters() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("esp32-1").await;
    d.publish("telemetry", r#"{"tmp":21.0}"#).await;
    assert!(app.wait_rows(&token, "esp32-1", 1).await);
    let now = time::OffsetDateTime::now_utc();
    let today = format!(
        "{}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let epoch = now.unix_timestamp();
    let count = |v: &serde_json::Value| v["data"].as_array().map_or(usize::MAX, Vec::len);
    let cases = [
        (format!("start_date={today}"), 1),
        (format!("end_date={today}"), 1),
        (format!("start_date={}", epoch - 60), 1),
        (format!("start_date={}", epoch + 60), 0),
        (format!("end_date={}", epoch - 3600), 0),
        (format!("start_date={today}T00:00:00"), 1),
        (
            format!("start_date={today}T00:00:00Z&end_date={}", epoch + 60),
            1,
        ),
        ("start_date=2999-01-01T00:00:00%2B01:00".to_owned(), 0),
        ("end_date=2000-01-01".to_owned(), 0),
    ];
    for (q, want) in cases {
        let (status, body) = app.get(&format!("/data?{q}"), Some(&token)).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(count(&body), want, "{q}");
    }
    for q in [
        "start_date=yesterday",
        "start_date=2026-13-01",
        "start_date=2026-02-30",
        "start_date=2026-11-28&end_date=2026-11-01",
        "limit=0",
        "limit=10001",
        "limit=ten",
        "device=a/b",
    ] {
        let (status, body) = app.get(&format!("/data?{q}"), Some(&token)).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|s| s.len() > 10),
            "{q}: {body}"
        );
    }
}

/// Incidents are stored and filtered by type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_with_type_filter() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("esp32-1").await;
    d.publish(
        "incident",
        r#"{"type":"door_open_too_long","message":"60 s"}"#,
    )
    .await;
    d.publish(
        "incident",
        r#"{"type":"unauthorized_access","message":"forced"}"#,
    )
    .await;
    d.publish("incident", r#"{"message":"no type"}"#).await;
    // The default "Security incident" rule also writes an `alert:security_incident` incident.
    let device_rows = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["incidents"].as_array().map_or(vec![], |rows| {
            rows.iter()
                .filter(|r| !r["type"].as_str().unwrap_or("").starts_with("alert:"))
                .cloned()
                .collect()
        })
    };
    assert!(
        wait_until(SOON, || async {
            device_rows(&app.get("/incidents", Some(&token)).await.1).len() == 2
        })
        .await
    );
    let (status, body) = app
        .get("/incidents?type=unauthorized_access", Some(&token))
        .await;
    assert_eq!(status, 200);
    let rows = body["incidents"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["type"], "unauthorized_access");
    assert_eq!(rows[0]["device"], "esp32-1");
    assert_eq!(rows[0]["data"]["message"], "forced");
    let (_, body) = app.get("/incidents?limit=10", Some(&token)).await;
    assert_eq!(
        device_rows(&body)[0]["type"],
        "unauthorized_access",
        "newest first"
    );
    assert!(
        wait_until(SOON, || async {
            app.get("/incidents?type=alert:security_incident", Some(&token))
                .await
                .1["incidents"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        })
        .await,
        "the security incident raised an alert"
    );
}

fn b64(s: &str) -> String {
    use std::fmt::Write;
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let _ = write!(out, "{}", T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Missing, garbage, alg:none, wrong-key and expired tokens are all 401 with a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let app = TestApp::start().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // uid 1 / tgen 0: the first user under its first token generation (sessions that end).
    let claims = |exp: i64| json!({"sub": "admin", "uid": 1, "tgen": 0, "jti": "forged", "iat": now - 100, "exp": exp});
    let forge = |secret: &[u8], exp: i64| {
        encode(
            &Header::default(),
            &claims(exp),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    };
    let valid = forge(JWT_SECRET.as_bytes(), now + 600);
    let (status, _) = app.get("/user/profile", Some(&valid)).await;
    assert_eq!(status, 200, "a correctly signed token works");
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims(now + 600).to_string())
    );
    for (what, token) in [
        ("garbage", Some("not.a.token".to_owned())),
        ("alg none", Some(none)),
        (
            "wrong key",
            Some(forge(
                b"another-secret-another-secret-0123456789",
                now + 600,
            )),
        ),
        ("expired", Some(forge(JWT_SECRET.as_bytes(), now - 5))),
        ("missing", None),
    ] {
        let (status, body) = app.get("/user/profile", token.as_deref()).await;
        assert_eq!(status, 401, "{what}");
        assert!(body["error"].is_string(), "{what}: {body}");
    }
}

/// 10 failed logins lock the IP (429 + Retry-After, even with the right password); another IP
/// is unaffected; a success resets the count; unknown user and wrong password answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_per_ip() {
    let app = TestApp::start().await;
    // Both addresses used here logged in before, so the per-account throttle (auth::throttle)
    // leaves them alone and only the per-address lockout is at work.
    app.login().await;
    let known = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(known.status(), 200);
    let wrong = json!({"username": "admin", "password": "wrong-password"});
    let (s1, unknown) = app
        .post(
            "/login",
            None,
            json!({"username": "ghost", "password": "x"}),
        )
        .await;
    let (s2, bad) = app.post("/login", None, wrong.clone()).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(unknown, bad, "unknown user and wrong password answer alike");
    for _ in 0..8 {
        assert_eq!(app.post("/login", None, wrong.clone()).await.0, 401);
    }
    let res = app
        .client
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((250..=300).contains(&retry), "{retry}");
    assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let post = |c: &reqwest::Client, pw: &str| {
        c.post(app.url("/login"))
            .json(&json!({"username": "admin", "password": pw}))
            .send()
    };
    assert_eq!(
        post(&other, ADMIN_PASSWORD).await.unwrap().status(),
        200,
        "another IP is unaffected"
    );
    for _ in 0..9 {
        assert_eq!(post(&other, "nope-nope").await.unwrap().status(), 401);
    }
    assert_eq!(post(&other, ADMIN_PASSWORD).await.unwrap().status(), 200);
    for _ in 0..9 {
        assert_eq!(
            post(&other, "nope-nope").await.unwrap().status(),
            401,
            "the success reset the count"
        );
    }
}

/// Malformed or oversized bodies, unknown paths and wrong methods get a status and a sentence;
/// the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let app = TestApp::start().await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "{not json",
        r#"{"username":"admin"}"#,
        r#"{"username":1,"password":2}"#,
        "[]",
    ] {
        let res = raw(body).await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    }
    let huge = "x".repeat(100_000);
    let res = app
        .client
        .post(app.url("/login"))
        .json(&json!({"username": huge, "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let token = app.login().await;
    for path in ["/nope/x", "/data/extra", "/api/v2"] {
        let (status, body) = app.get(path, Some(&token)).await;
        assert_eq!(status, 404, "{path}");
        if path == "/nope/x" {
            assert!(
                body.is_null(),
                "a page path gets the HTML 404, not JSON: {body}"
            );
        } else {
            assert!(body["error"].is_string(), "{path}");
        }
    }
    let res = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["checks"],
        json!({"database": "ok", "broker": "ok", "integrity": "ok"})
    );
    assert_eq!(body["status"], "ok");
}

/// A user changes the own password: the current one is required, the new one works, the old
/// one no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_change_their_own_password() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, body) = app
        .post(
            "/user/password",
            Some(&token),
            change("wrong", "new-password-1"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .post(
            "/user/password",
            Some(&token),
            change(ADMIN_PASSWORD, "short"),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post(
            "/user/password",
            None,
            change(ADMIN_PASSWORD, "new-password-1"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .post(
            "/user/password",
            Some(&token),
            change(ADMIN_PASSWORD, "new-password-1"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let login = |pw: &str| json!({"username": "admin", "password": pw});
    assert_eq!(app.post("/login", None, login(ADMIN_PASSWORD)).await.0, 401);
    assert_eq!(
        app.post("/login", None, login("new-password-1")).await.0,
        200
    );
}
