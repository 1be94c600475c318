//! Ingest benchmark through the real path: devices publish QoS 1 telemetry with rumqttc over
//! TCP, and the release binary stores it (`synchronous=FULL`). Two device sides in one run:
//! `embedded` (gate → rumqttd → ingest → batching writer; the PUBACK waits for the commit) and
//! `external` (`RZMON_BROKER`: devices → Debian's mosquitto → rzmon's one subscriber, which
//! acknowledges to mosquitto after the commit). Reports persisted messages per second, the share
//! stored, and the server's RSS.
//!
//! Run: `cargo bench --bench ingest` (optionally `-- <devices> <messages per device>
//! [no-rules] [embedded|external] [settle]`; `no-rules` disables every alert rule through the API
//! first; without a mode both run, embedded first; `settle` then samples the server's RSS every
//! second for 60 s after the burst). `RZMON_BENCH_INFLIGHT` sets mosquitto's
//! `max_inflight_messages` (default 20, mosquitto's own default).

mod common;
mod smaps;

use common::{Mosquitto, Server};
use rumqttc::QoS;
use std::path::Path;
use std::time::{Duration, Instant};

const SERVICE: &str = "rzmon-bench";
const SERVICE_PASSWORD: &str = "bench-service-password-123";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let devices = numbers.first().copied().unwrap_or(10);
    let per_device = numbers.get(1).copied().unwrap_or(10_000);
    let rules = !args.iter().any(|a| a == "no-rules");
    let settle = args.iter().any(|a| a == "settle");
    let modes: Vec<&str> = ["embedded", "external"]
        .into_iter()
        .filter(|m| {
            args.iter().all(|a| a != "embedded" && a != "external") || args.iter().any(|a| a == m)
        })
        .collect();
    let inflight: u32 = std::env::var("RZMON_BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for mode in modes {
        rt.block_on(run(mode, devices, per_device, rules, inflight, settle));
    }
}

/// Registers `id`; its password and (external mode) its password-file line.
fn add_device(dir: &Path, id: &str, external: bool) -> (String, Option<String>) {
    let mut args = vec!["device", "add", id, "--json"];
    if external {
        args.extend(["--broker-config", "mosquitto"]);
    }
    let v: serde_json::Value =
        serde_json::from_str(&common::cli(dir, &args, None)).expect("device add json");
    let line = v["mosquitto_passwd"].as_str().map(str::to_owned);
    (v["password"].as_str().expect("password").to_owned(), line)
}

/// Switches every alert rule off through the API.
async fn disable_rules(http: &str) {
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{http}/login"))
        .json(&serde_json::json!({"username": "admin", "password": common::ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let token = login["access_token"].as_str().expect("token").to_owned();
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

/// The server (and in external mode the broker), the device credentials and the MQTT port
/// devices use.
async fn setup(
    dir: &Path,
    external: bool,
    devices: usize,
    inflight: u32,
) -> (Server, Option<Mosquitto>, Vec<(String, String)>, u16) {
    let port = common::free_port();
    let url = format!("mqtt://{SERVICE}:{SERVICE_PASSWORD}@127.0.0.1:{port}");
    let env: Vec<(&str, &str)> = if external {
        vec![("RZMON_BROKER", &url)]
    } else {
        vec![]
    };
    let server = common::start(dir, &env);
    let mut creds = Vec::new();
    for i in 1..=devices {
        let id = format!("bench-{i}");
        let (pw, _) = add_device(dir, &id, external);
        creds.push((id, pw));
    }
    if !external {
        let port = server.mqtt_port.expect("embedded MQTT port");
        return (server, None, creds, port);
    }
    let files = dir.join("broker");
    std::fs::create_dir_all(&files).expect("broker dir");
    let out = common::cli(
        dir,
        &[
            "broker-config",
            "mosquitto",
            "--out",
            files.to_str().expect("utf-8"),
            "--service-user",
            SERVICE,
            "--service-password-stdin",
        ],
        Some(SERVICE_PASSWORD),
    );
    let conf: String = out
        .split("mosquitto.conf:\n")
        .nth(1)
        .expect("mosquitto.conf lines")
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let broker = Mosquitto::start(port, &format!("max_inflight_messages {inflight}\n{conf}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::health(&server.http).await["checks"]["broker"] != "ok" {
        assert!(Instant::now() < deadline, "rzmon did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (server, Some(broker), creds, port)
}

async fn run(
    mode: &str,
    devices: usize,
    per_device: usize,
    rules: bool,
    inflight: u32,
    settle: bool,
) {
    let external = mode == "external";
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _broker, creds, port) = setup(dir.path(), external, devices, inflight).await;
    let pid = server.child.id();
    if !rules {
        disable_rules(&server.http).await;
    }
    let idle_rss = common::status_kib(pid, "VmRSS");
    let total = (devices * per_device) as u64;
    let db = dir.path().join("rzmon.db");

    let sampler = common::RssSampler::start(pid, Duration::from_millis(100));
    let t0 = Instant::now();
    let mut publishers = Vec::new();
    for (id, pw) in creds {
        // One connection at a time: the gate admits at most 4 pending logins per address.
        let (connected, up) = tokio::sync::oneshot::channel();
        publishers.push(tokio::spawn(publish(port, id, pw, per_device, connected)));
        up.await.expect("device connected");
    }
    let mut acked = 0;
    for p in publishers {
        acked += p.await.expect("publisher");
    }
    let t_acked = t0.elapsed();
    let mut count = 0;
    common::wait(Duration::from_secs(120), || {
        count = common::count(&db, "telemetry");
        count >= total
    });
    let t_stored = t0.elapsed();
    let busy_rss = common::status_kib(pid, "VmRSS");
    let peak_rss = sampler.stop().iter().map(|s| s.1).max().unwrap_or(0);
    println!();
    let rule_mode = if rules {
        "all default alert rules active"
    } else {
        "alert rules disabled"
    };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let side = if external {
        format!("external broker: mosquitto, max_inflight_messages {inflight}")
    } else {
        "embedded broker".to_owned()
    };
    println!(
        "rzmon ingest benchmark ({side}; {profile} bench binary, QoS 1, synchronous=FULL, {devices} devices, {rule_mode})"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| messages published | {total} |");
    println!("| PUBACKs received by the devices | {acked} |");
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
    println!(
        "| peak RSS during the burst | {} MiB |",
        common::mib(peak_rss)
    );
    assert_eq!(count, total, "not every message was stored");
    if settle {
        settle_curve(pid).await;
    }
}

/// What the server's RSS does in the 60 s after the burst: sampled every second.
async fn settle_curve(pid: u32) {
    const SETTLE: Duration = Duration::from_secs(60);
    let sampler = common::RssSampler::start(pid, Duration::from_secs(1));
    tokio::time::sleep(SETTLE + Duration::from_millis(500)).await;
    let samples = sampler.stop();
    let at = |secs: u64| {
        samples
            .iter()
            .find(|s| s.0 >= Duration::from_secs(secs))
            .or(samples.last())
            .map_or(0, |s| s.1)
    };
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let under_16 = samples
        .iter()
        .find(|s| s.1 <= 16 * 1024)
        .map_or("never".to_owned(), |s| format!("{} s", s.0.as_secs()));
    println!();
    println!("RSS after the burst, sampled every second for 60 s (MiB):");
    println!("| start | peak | 10 s | 30 s | 60 s | at or below 16 MiB after |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {under_16} |",
        common::mib(at(0)),
        common::mib(peak),
        common::mib(at(10)),
        common::mib(at(30)),
        common::mib(at(60))
    );
    let curve: Vec<String> = samples.iter().map(|s| common::mib(s.1)).collect();
    println!("per second: {}", curve.join(" "));
    println!(
        "then: VmRSS {} KiB = RssAnon {} + RssFile {}",
        common::status_kib(pid, "VmRSS"),
        common::status_kib(pid, "RssAnon"),
        common::status_kib(pid, "RssFile")
    );
    print!("{}", smaps::table(pid));
}

/// One device: `n` QoS 1 messages, up to 100 in flight; the number of PUBACKs.
async fn publish(
    port: u16,
    id: String,
    pw: String,
    n: usize,
    connected: tokio::sync::oneshot::Sender<()>,
) -> usize {
    let (client, mut eventloop) = common::connect(port, &id, &pw, 100).await;
    let _ = connected.send(());
    let topic = format!("rz/{id}/telemetry");
    let sender = tokio::spawn(async move {
        for seq in 0..n {
            client
                .publish(&topic, QoS::AtLeastOnce, false, common::telemetry(seq))
                .await
                .expect("publish");
        }
        client
    });
    let acked = common::await_acks(&mut eventloop, &id, n).await;
    let client = sender.await.expect("sender");
    let _ = client.disconnect().await;
    acked
}
