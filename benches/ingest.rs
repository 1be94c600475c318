//! Ingest benchmark through the real path: 10 devices publish QoS 1 telemetry with rumqttc over
//! TCP to the release binary's gate → rumqttd → ingest → batching writer (`synchronous=FULL`).
//! Reports persisted messages per second, the share stored, and the server's RSS.
//!
//! Run: `cargo bench --bench ingest` (optionally `-- <devices> <messages per device> [no-rules]`;
//! `no-rules` disables every alert rule through the API first, to measure the rule engine's cost).

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};

const BIN: &str = env!("CARGO_BIN_EXE_rzmon");

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let devices = args.first().copied().unwrap_or(10);
    let per_device = args.get(1).copied().unwrap_or(10_000);
    let rules = !std::env::args().any(|a| a == "no-rules");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(devices, per_device, rules));
}

struct Server {
    child: Child,
    mqtt_port: u16,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .env("RZMON_DATA_DIR", dir)
        .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
        .env("RZMON_MQTT_ADDR", "127.0.0.1:0")
        .env("RZMON_ADMIN_PASSWORD", "bench-password-1234")
        .env("RZMON_MQTT_RATE", "0")
        // Every bench device connects from 127.0.0.1.
        .env("RZMON_MQTT_PER_ADDRESS", "100000")
        .env("RZMON_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rzmon");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut http = String::new();
    let mqtt_port = loop {
        let line = lines.next().expect("rzmon exited").expect("read stdout");
        if let Some(rest) = line.trim().strip_prefix("Dashboard: ") {
            http = rest.trim_end_matches('/').to_owned();
        }
        if let Some(rest) = line.trim().strip_prefix("MQTT:") {
            let addr = rest.split_whitespace().next().expect("address");
            break addr.rsplit(':').next().unwrap().parse().expect("port");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        mqtt_port,
        http,
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn stored(db: &std::path::Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    conn.query_row("SELECT count(*) FROM telemetry", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

/// Logs in as the bench's admin.
async fn login(http: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{http}/login"))
        .json(&serde_json::json!({"username": "admin", "password": "bench-password-1234"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let token = login["access_token"].as_str().expect("token").to_owned();
    (client, token)
}

/// Registers a device through the API; its password.
async fn add_device(client: &reqwest::Client, token: &str, http: &str, id: &str) -> String {
    let v: serde_json::Value = client
        .post(format!("{http}/devices"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "id": id }))
        .send()
        .await
        .expect("add device")
        .json()
        .await
        .expect("device json");
    v["password"].as_str().expect("password").to_owned()
}

/// Switches every alert rule off through the API.
async fn disable_rules(http: &str) {
    let (client, token) = login(http).await;
    let rules: serde_json::Value = client
        .get(format!("{http}/alert-rules"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("rules json");
    for r in rules["rules"].as_array().expect("rules") {
        let res = client
            .put(format!("{http}/alert-rules/{}", r["id"]))
            .bearer_auth(&token)
            .json(&serde_json::json!({"enabled": false}))
            .send()
            .await
            .expect("disable rule");
        assert!(res.status().is_success(), "cannot disable rule {}", r["id"]);
    }
}

async fn run(devices: usize, per_device: usize, rules: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let (client, token) = login(&server.http).await;
    let mut creds = Vec::new();
    for i in 1..=devices {
        let id = format!("bench-{i}");
        let pw = add_device(&client, &token, &server.http, &id).await;
        creds.push((id, pw));
    }
    let pid = server.child.id();
    if !rules {
        disable_rules(&server.http).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid);
    let total = (devices * per_device) as u64;
    let db = dir.path().join("rzmon.db");

    // Devices log in a few at a time (the gate lets 4 connections per address wait for their
    // CONNACK), then all start publishing together.
    let connecting = Arc::new(Semaphore::new(4));
    let ready = Arc::new(Barrier::new(devices + 1));
    let mut publishers = Vec::new();
    for (id, pw) in creds {
        let port = server.mqtt_port;
        let (connecting, ready) = (connecting.clone(), ready.clone());
        publishers.push(tokio::spawn(async move {
            let mut opts = MqttOptions::new(&id, "127.0.0.1", port);
            opts.set_credentials(&id, &pw)
                .set_keep_alive(Duration::from_secs(30))
                .set_inflight(100)
                .set_request_channel_capacity(1000);
            let (client, mut eventloop) = AsyncClient::new(opts, 1000);
            let permit = connecting.acquire().await.expect("semaphore");
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{id}: MQTT connect error {e}"),
                }
            }
            drop(permit);
            ready.wait().await;
            let topic = format!("rz/{id}/telemetry");
            let sender = tokio::spawn(async move {
                for seq in 0..per_device {
                    let payload = format!(
                        r#"{{"tmp":{:.1},"lf":{:.1},"locked":{},"seq":{seq}}}"#,
                        20.0 + (seq % 100) as f64 / 10.0,
                        40.0 + (seq % 50) as f64 / 10.0,
                        seq % 2 == 0
                    );
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, payload)
                        .await
                        .expect("publish");
                }
                client
            });
            let mut acked = 0;
            while acked < per_device {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => panic!("{id}: MQTT error {e}"),
                }
            }
            let client = sender.await.expect("sender");
            let _ = client.disconnect().await;
            acked
        }));
    }
    ready.wait().await;
    let t0 = Instant::now();
    let mut acked = 0;
    for p in publishers {
        acked += p.await.expect("publisher");
    }
    let t_acked = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = stored(&db);
    while count < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        count = stored(&db);
    }
    let t_stored = t0.elapsed();
    let busy_rss = rss_kib(pid);
    println!();
    let mode = if rules {
        "all default alert rules active"
    } else {
        "alert rules disabled"
    };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "rzmon ingest benchmark ({profile} bench binary, QoS 1, synchronous=FULL, {devices} devices, {mode})"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| messages published | {total} |");
    println!("| PUBACKs received | {acked} |");
    println!(
        "| rows stored | {count} ({:.2} %) |",
        100.0 * count as f64 / total as f64
    );
    println!("| all acked after | {:.2} s |", t_acked.as_secs_f64());
    println!("| all stored after | {:.2} s |", t_stored.as_secs_f64());
    println!(
        "| persisted throughput | {:.0} msg/s |",
        count as f64 / t_stored.as_secs_f64()
    );
    println!("| idle RSS | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!(
        "| RSS after the burst | {:.1} MiB |",
        busy_rss as f64 / 1024.0
    );
    assert_eq!(count, total, "not every message was stored");
}
