//! Alert-to-notification latency through the real path: a device publishes (QoS 1, over TCP) a
//! reading that crosses a threshold rule with `for_secs` 0; the time until the webhook request
//! reaches a receiver on loopback is measured, per firing, over many fire/resolve cycles.
//! Reports p50/p99/max.
//!
//! Run: `cargo bench --bench notify` (optionally `-- <cycles>`; default 100).

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use warp::Filter;

mod common;
use common::{ADMIN_PASSWORD as PASSWORD, start};

fn main() {
    let cycles = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(cycles));
}

/// Arrival times of webhook requests with their `status`.
#[derive(Default)]
struct Seen {
    arrivals: Mutex<Vec<(Instant, String)>>,
    notify: Notify,
}

async fn wait_for(seen: &Seen, n: usize) -> (Instant, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let notified = seen.notify.notified();
        if let Some(a) = seen.arrivals.lock().unwrap().get(n) {
            return a.clone();
        }
        tokio::time::timeout_at(deadline, notified)
            .await
            .expect("webhook request within 30 s");
    }
}

async fn run(cycles: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path(), &[]);
    let mqtt_port = server.mqtt_port.expect("embedded broker");
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let route = warp::post()
        .and(warp::body::json())
        .map(move |body: Value| {
            let status = body["status"].as_str().unwrap_or("").to_owned();
            s.arrivals.lock().unwrap().push((Instant::now(), status));
            s.notify.notify_waiters();
            "ok"
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/login", server.http))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("login")
        .json()
        .await
        .expect("token");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", server.http))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let ok = |r: reqwest::Result<reqwest::Response>, what: &str| {
        assert!(
            r.as_ref().is_ok_and(|r| r.status().is_success()),
            "{what}: {r:?}"
        );
    };
    ok(post("/channels", json!({"name": "bench", "kind": "webhook", "settings": {"url": hook}, "group_wait_s": 0, "storm_cap": 10000})).await, "channel");
    ok(post("/alert-rules", json!({"name": "Bench hot", "kind": "threshold", "metric": "tmp", "op": "above",
        "value": 30, "hysteresis": 1, "for_secs": 0, "severity": "critical", "reminder_first_secs": 0})).await, "rule");
    let device: Value = post("/devices", json!({"id": "bench-1"}))
        .await
        .expect("device")
        .json()
        .await
        .expect("device json");

    let mut opts = MqttOptions::new("bench-1", "127.0.0.1", mqtt_port);
    opts.set_credentials("bench-1", device["password"].as_str().expect("password"));
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::Disconnect) = ev {
                break;
            }
        }
    });
    let publish = |tmp: f64| {
        let client = client.clone();
        async move {
            let body = json!({"tmp": tmp, "lf": 40}).to_string();
            client
                .publish("rz/bench-1/telemetry", QoS::AtLeastOnce, false, body)
                .await
                .expect("publish");
        }
    };
    let mut latencies = Vec::with_capacity(cycles);
    let mut n = 0;
    for _ in 0..cycles {
        let t0 = Instant::now();
        publish(36.0).await;
        let (at, status) = wait_for(&seen, n).await;
        assert_eq!(status, "firing");
        latencies.push(at - t0);
        publish(20.0).await;
        let (_, status) = wait_for(&seen, n + 1).await;
        assert_eq!(status, "resolved");
        n += 2;
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "reading → webhook request, {cycles} firings: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    );
}
