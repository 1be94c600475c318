//! `RZMON_TRUSTED_PROXIES`: `X-Forwarded-For` names the client (lockout, audit, logs) only when
//! the peer is a trusted proxy; from anyone else it is ignored.

use crate::util::*;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};

async fn login_via(app: &TestApp, from: Ipv4Addr, xff: &str, password: &str) -> u16 {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .build()
        .unwrap()
        .post(app.url("/login"))
        .header("x-forwarded-for", xff)
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let app = TestApp::start_with(&[("RZMON_TRUSTED_PROXIES", "127.0.0.2/32")]).await;
    let (proxy, stranger) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(
        login_via(&app, stranger, "203.0.113.5", ADMIN_PASSWORD).await,
        200
    );
    assert_eq!(
        login_via(&app, proxy, "198.51.100.7", ADMIN_PASSWORD).await,
        200
    );
    let token = app.login().await;
    let (_, audit) = app.get("/audit?limit=10", Some(&token)).await;
    let text = audit.to_string();
    assert!(
        text.contains("198.51.100.7"),
        "the trusted proxy's client is audited: {text}"
    );
    assert!(
        text.contains("127.0.0.3"),
        "the stranger's own address is audited: {text}"
    );
    assert!(
        !text.contains("203.0.113.5"),
        "the stranger's header is ignored: {text}"
    );

    // Ten failures through the proxy lock the forwarded client, not the proxy. (The client
    // logged in before, so the per-account throttle leaves it alone: only the address lockout
    // is at work here.)
    assert_eq!(
        login_via(&app, proxy, "198.51.100.66", ADMIN_PASSWORD).await,
        200
    );
    for _ in 0..10 {
        assert_eq!(
            login_via(&app, proxy, "198.51.100.66", "wrong-password").await,
            401
        );
    }
    assert_eq!(
        login_via(&app, proxy, "198.51.100.66", ADMIN_PASSWORD).await,
        429
    );
    assert_eq!(
        login_via(&app, proxy, "198.51.100.7", ADMIN_PASSWORD).await,
        200,
        "other clients behind the proxy are not locked out"
    );
    // A stranger rotating the header is locked by its own address (which logged in above).
    for i in 0..10 {
        let xff = format!("192.0.2.{i}");
        assert_eq!(login_via(&app, stranger, &xff, "wrong-password").await, 401);
    }
    assert_eq!(
        login_via(&app, stranger, "192.0.2.99", ADMIN_PASSWORD).await,
        429
    );
}
