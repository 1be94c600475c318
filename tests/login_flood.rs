//! A login flood cannot exhaust memory or lock out the owner: 50 concurrent wrong logins from
//! 50 addresses keep the server's peak RSS under a documented bound (argon2 runs on two
//! threads), the memory is given back after it (RSS after the flood is at most the RSS after
//! the first login plus the second thread's argon2 buffer plus 8 MiB), and the admin still logs
//! in from an address that logged in before.

use crate::util::*;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};

/// Peak RSS allowed during the flood (README, "Security"): idle ~25 MiB + 2 × 19 MiB argon2
/// memory (kept by the two hashing threads) + slack; measured 80 MiB (debug build).
const PEAK_BOUND_MIB: u64 = 100;
/// After the flood the memory is given back: RSS is at most the RSS after the first login (one
/// argon2 buffer in use) plus the second hashing thread's buffer (19 MiB) plus this slack.
const AFTER_SLACK_MIB: u64 = 8;
const ARGON2_MIB: u64 = 19;

fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .timeout(SOON)
        .build()
        .unwrap()
}

async fn try_login(app: &TestApp, from: Ipv4Addr, password: &str) -> u16 {
    client_from(from)
        .post(app.url("/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("POST /login")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_is_bounded_and_cannot_lock_out_the_owner() {
    // A process app: its /proc/<pid>/status is the server's alone.
    let app = TestApp::process().await;
    let home = Ipv4Addr::new(127, 0, 0, 1);
    let idle = app.mem_kib("VmRSS") / 1024;
    assert_eq!(
        try_login(&app, home, ADMIN_PASSWORD).await,
        200,
        "the owner's address"
    );
    let after_login = app.mem_kib("VmRSS") / 1024;
    let flood = (0..50u8).map(|i| {
        let app = &app;
        async move { try_login(app, Ipv4Addr::new(127, 0, 2, 10 + i), "wrong-password").await }
    });
    let statuses = futures_util::future::join_all(flood).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&401) && statuses.contains(&429),
        "{statuses:?}"
    );
    let peak = app.mem_kib("VmHWM") / 1024;
    let now = app.mem_kib("VmRSS") / 1024;
    eprintln!(
        "login flood: idle {idle} MiB, after the first login {after_login} MiB, peak RSS {peak} MiB, after {now} MiB"
    );
    assert!(peak < PEAK_BOUND_MIB, "peak RSS {peak} MiB");
    assert!(
        now <= after_login + ARGON2_MIB + AFTER_SLACK_MIB,
        "after the flood {now} MiB, after the first login {after_login} MiB: the flood's memory is given back"
    );

    assert_eq!(
        try_login(&app, Ipv4Addr::new(127, 0, 3, 1), ADMIN_PASSWORD).await,
        429,
        "a new address is throttled on this account, even with the right password"
    );
    assert_eq!(
        try_login(&app, home, ADMIN_PASSWORD).await,
        200,
        "the owner's address is not locked out by the flood"
    );
}
