//! REST API: login, /data, /incidents, bad input, tokens, lockout.

use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

/// First start without RZMON_ADMIN_PASSWORD prints a one-time random admin password that works; none is printed with it set.
#[tokio::test]
async fn first_start_prints_generated_admin_password_and_it_works() {
    let app = TestApp::start().await;
    assert!(!app.stdout.lock().unwrap().iter().any(|l| l.contains("Admin login")));
    drop(app);
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(&[("RZMON_ADMIN_PASSWORD", "")]).await;
    drop(dir);
    let line = app
        .stdout
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("Admin login:"))
        .cloned()
        .unwrap_or_else(|| panic!("no admin line: {}", app.logs()));
    let pw = line.split("admin /").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(pw.len() >= 12, "weak generated password {pw}");
    let t = app.login_as("admin", &pw).await;
    let p = app.get_json("/user/profile", &t).await;
    assert_eq!(p["username"], "admin");
}

/// Login returns a Bearer token; wrong user and wrong password both give the same 401 sentence.
#[tokio::test]
async fn login_ok_and_failures() {
    let app = TestApp::start().await;
    let r = app.post_json("/login", json!({"username":"admin","password":ADMIN_PASSWORD}), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    let e1 = assert_error(app.post_json("/login", json!({"username":"nobody","password":"x"}), None).await, 401).await;
    let e2 = assert_error(app.post_json("/login", json!({"username":"admin","password":"x"}), None).await, 401).await;
    assert_eq!(e1, "Invalid username or password.");
    assert_eq!(e1, e2);
}

/// Telemetry published over MQTT appears in /data newest first, with fields, limits, device filter and every date format.
#[tokio::test]
async fn telemetry_to_data_with_queries() {
    let app = TestApp::start().await;
    let t = app.login().await;
    let a = app.device("dev-a").await;
    let b = app.device("dev-b").await;
    for i in 0..105 {
        a.publish("rz/dev-a/telemetry", json!({"tmp": 20.5, "lf": 40, "locked": true, "seq": i, "extra": "x"}).to_string()).await;
    }
    b.publish("rz/dev-b/telemetry", json!({"tmp": -3, "lf": 1, "locked": false}).to_string()).await;
    assert!(a.wait_acks(105).await && b.wait_acks(1).await);
    let all = wait_rows(&app, &t, "?limit=1000", 106).await;
    assert_eq!(all.len(), 106);
    // default limit 100
    assert_eq!(data(&app, &t, "").await.len(), 100);
    assert_eq!(data(&app, &t, "?limit=7").await.len(), 7);
    // device filter + order + fields
    let rows = data(&app, &t, "?device=dev-a&limit=1000").await;
    assert_eq!(rows.len(), 105);
    assert_eq!(rows[0]["data"]["seq"], 104, "newest first");
    assert_eq!(rows[0]["device"], "dev-a");
    assert_eq!(rows[0]["data"]["tmp"], 20.5);
    assert_eq!(rows[0]["data"]["locked"], true);
    assert_eq!(rows[0]["data"]["extra"], "x");
    let ts = rows[0]["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24 && &ts[19..20] == ".", "timestamp {ts}");
    let timestamps: Vec<&str> = rows.iter().map(|r| r["timestamp"].as_str().unwrap()).collect();
    assert!(timestamps.windows(2).all(|w| w[0] >= w[1]));
    let bq = data(&app, &t, "?device=dev-b").await;
    assert_eq!(bq.len(), 1);
    assert_eq!(bq[0]["data"]["tmp"], -3);
    // date formats: all rows are "today"
    let now = time::OffsetDateTime::now_utc();
    let day = format!("{:04}-{:02}-{:02}", now.year(), now.month() as u8, now.day());
    let ep = now.unix_timestamp();
    for q in [
        format!("?start_date={day}&end_date={day}&limit=1000"),
        format!("?start_date={day}T00:00:00&limit=1000"),
        format!("?start_date={day}T00:00:00Z&limit=1000"),
        format!("?start_date={day}T00:00:00%2B00:00&limit=1000"),
        format!("?start_date={}&end_date={}&limit=1000", ep - 3600, ep + 3600),
    ] {
        assert_eq!(data(&app, &t, &q).await.len(), 106, "{q}");
    }
    // a range in the past is empty
    assert_eq!(data(&app, &t, "?start_date=2020-01-01&end_date=2020-01-02").await.len(), 0);
}

/// Incidents are listed in /incidents and filtered by type.
#[tokio::test]
async fn incidents_with_type_filter() {
    let app = TestApp::start().await;
    let t = app.login().await;
    let a = app.device("dev-i").await;
    a.publish("rz/dev-i/incident", json!({"type": "door", "note": 1}).to_string()).await;
    a.publish("rz/dev-i/incident", json!({"type": "fire"}).to_string()).await;
    a.publish("rz/dev-i/incident", json!({"type": "door"}).to_string()).await;
    assert!(a.wait_acks(3).await);
    let ok = wait_until(Duration::from_secs(10), || async {
        app.get_json("/incidents", &t).await["incidents"].as_array().unwrap().len() == 3
    })
    .await;
    assert!(ok, "{}", app.logs());
    let v = app.get_json("/incidents?type=door", &t).await;
    let inc = v["incidents"].as_array().unwrap();
    assert_eq!(inc.len(), 2);
    assert!(inc.iter().all(|i| i["type"] == "door" && i["device"] == "dev-i"));
}

/// Each bad input gets the right status and a JSON sentence.
#[tokio::test]
async fn bad_inputs_are_rejected_with_json() {
    let app = TestApp::start_with(&[("RZMON_BODY_LIMIT", "1024")]).await;
    let t = app.login().await;
    for q in [
        "?start_date=yesterday",
        "?end_date=2026-13-45",
        "?start_date=2026-11-28&end_date=2026-11-27",
        "?limit=0",
        "?limit=10001",
        "?limit=abc",
    ] {
        let r = app.get(&format!("/data{q}"), Some(&t)).await;
        assert_error(r, 400).await;
    }
    assert_eq!(data(&app, &t, "?limit=10000").await.len(), 0);
    for p in ["/data/xyz", "/api/nope"] {
        assert_error(app.get(p, Some(&t)).await, 404).await;
    }
    let big = "x".repeat(4096);
    let r = app.post_json("/login", json!({"username": big, "password": "p"}), None).await;
    assert_error(r, 413).await;
    let r = app.client.post(app.url("/login")).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_error(r, 400).await;
    let r = app.get("/data", Some(&t)).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
}

fn b64(s: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in s.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Missing, garbage, alg:none, wrong-key and expired tokens are all 401; a valid self-made token is accepted.
#[tokio::test]
async fn token_cases() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let app = TestApp::start().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64| json!({"sub": "admin", "iat": now - 10, "exp": exp});
    let mk = |secret: &str, exp: i64| {
        encode(&Header::default(), &claims(exp), &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(now + 3600).to_string().as_bytes())
    );
    assert_error(app.get("/data", None).await, 401).await;
    for tok in [
        "garbage".to_string(),
        none,
        mk("another-secret-that-is-also-long-enough-0000", now + 3600),
        mk(JWT_SECRET, now - 3600),
    ] {
        assert_error(app.get("/data", Some(&tok)).await, 401).await;
        assert_error(app.get("/user/profile", Some(&tok)).await, 401).await;
    }
    let real = app.login().await;
    assert_eq!(app.get("/user/profile", Some(&real)).await.status(), 200);
    let h = app.get("/health", None).await;
    assert_eq!(h.status(), 200);
    let v: Value = h.json().await.unwrap();
    assert!(v["checks"]["database"].is_string() || v["checks"]["database"].is_object());
}

/// 10 failed logins → the 11th is 429 with Retry-After even with the right password; another IP is unaffected; success resets.
#[tokio::test]
async fn login_lockout() {
    let app = TestApp::start().await;
    let bad = json!({"username":"admin","password":"wrong"});
    let good = json!({"username":"admin","password":ADMIN_PASSWORD});
    // success resets the count
    for _ in 0..9 {
        assert_eq!(app.post_json("/login", bad.clone(), None).await.status(), 401);
    }
    assert_eq!(app.post_json("/login", good.clone(), None).await.status(), 200);
    for _ in 0..10 {
        assert_eq!(app.post_json("/login", bad.clone(), None).await.status(), 401);
    }
    let r = app.post_json("/login", good.clone(), None).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, 429).await;
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = other.post(app.url("/login")).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 200, "other IP must be unaffected");
}
