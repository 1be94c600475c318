//! `/metrics` scrape benchmark: 1,000 registered devices with stored telemetry, the release
//! binary serving, N scrapes with the metrics token. Reports the latency distribution and the
//! body size.
//!
//! Run: `cargo bench --bench scrape` (optionally `-- <devices> <scrapes>`).

use rzmon::model::{Body, DeviceId, Message, Telemetry};
use rzmon::store::Store;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rzmon");
const TOKEN: &str = "bench-metrics-token-0123456789";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let devices = args.first().copied().unwrap_or(1000);
    let scrapes = args.get(1).copied().unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    seed(&dir.path().join("rzmon.db"), devices);
    let mut child = Command::new(BIN)
        .env("RZMON_DATA_DIR", dir.path())
        .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
        .env("RZMON_MQTT_ADDR", "127.0.0.1:0")
        .env("RZMON_ADMIN_PASSWORD", "bench-password-1234")
        .env("RZMON_METRICS_TOKEN", TOKEN)
        .env("RZMON_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start rzmon");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let http = loop {
        let line = lines.next().expect("rzmon exited").expect("stdout");
        if let Some(rest) = line.trim().strip_prefix("Dashboard: http://") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (times, bytes) = rt.block_on(scrape(&http, scrapes, devices));
    let _ = child.kill();
    let _ = child.wait();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!();
    println!("rzmon /metrics scrape benchmark (release, {devices} devices, {scrapes} scrapes)");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| body | {bytes} bytes |");
    println!("| median | {:.2} ms |", pct(0.5));
    println!("| p95 | {:.2} ms |", pct(0.95));
    println!("| max | {:.2} ms |", pct(1.0));
}

/// `devices` registered devices, each with 10 telemetry rows, written through the store's
/// own writer.
fn seed(db: &std::path::Path, devices: usize) {
    let store = Store::open(db).expect("open store");
    let metrics = Arc::new(rzmon::metrics::Metrics::default());
    let writer = store
        .spawn_writer(metrics, rzmon::health::Health::new())
        .expect("writer");
    let tx = writer.sender();
    for i in 0..devices {
        let id = DeviceId::parse(&format!("rack-{i:04}")).expect("id");
        store.create_device(&id, "not-a-login").expect("device");
        for n in 0..10 {
            let tmp = 20.0 + (i % 10) as f64 + n as f64 / 10.0;
            let payload = serde_json::json!({"tmp": tmp, "lf": 40.0, "locked": n % 2 == 0});
            let serde_json::Value::Object(payload) = payload else {
                unreachable!()
            };
            tx.blocking_send(
                Message {
                    device: id.clone(),
                    ts_ms: 1_764_000_000_000 + n * 1000,
                    body: Body::Telemetry(Telemetry {
                        tmp: Some(tmp),
                        lf: Some(40.0),
                        locked: Some(n % 2 == 0),
                        seq: None,
                        payload,
                    }),
                },
                None,
            )
            .expect("send");
        }
    }
    drop(tx);
    writer.close().expect("commit");
}

async fn scrape(http: &str, n: usize, devices: usize) -> (Vec<Duration>, usize) {
    let last = format!(
        "rzmon_temperature_celsius{{device=\"rack-{:04}\"}}",
        devices - 1
    );
    let client = reqwest::Client::new();
    let url = format!("http://{http}/metrics");
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
