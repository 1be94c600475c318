//! `/metrics` scrape benchmark: 1,000 registered devices with stored telemetry, the release
//! binary serving, N scrapes with the metrics token. Reports the latency distribution and the
//! body size.
//!
//! Run: `cargo bench --bench scrape` (optionally `-- <devices> <scrapes>`).

mod common;

use std::time::{Duration, Instant};

const TOKEN: &str = "bench-metrics-token-0123456789";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let devices = args.first().copied().unwrap_or(1000);
    let scrapes = args.get(1).copied().unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    common::seed(&dir.path().join("rzmon.db"), devices, 10);
    let server = common::start(dir.path(), &[("RZMON_METRICS_TOKEN", TOKEN)]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (times, bytes) = rt.block_on(scrape(&server.http, scrapes, devices));
    drop(server);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!();
    println!(
        "rzmon /metrics scrape benchmark ({}, {devices} devices, {scrapes} scrapes)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| body | {bytes} bytes |");
    println!("| median | {:.2} ms |", pct(0.5));
    println!("| p95 | {:.2} ms |", pct(0.95));
    println!("| max | {:.2} ms |", pct(1.0));
}

async fn scrape(http: &str, n: usize, devices: usize) -> (Vec<Duration>, usize) {
    let last = format!(
        "rzmon_temperature_celsius{{device=\"rack-{:04}\"}}",
        devices - 1
    );
    let client = reqwest::Client::new();
    let url = format!("{http}/metrics");
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let res = client
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200);
        let body = res.text().await.expect("body");
        times.push(t.elapsed());
        bytes = body.len();
        assert!(body.contains(&last), "the last device has a gauge");
    }
    times.sort();
    (times, bytes)
}
