//! Benchmarks through the real path, against the release binary over TCP:
//!
//! - `burst [devices] [messages per device]` (the default; 10 × 10,000): devices publish QoS 1
//!   telemetry with rumqttc as fast as their 100-message window allows; PUBACK comes only after
//!   the commit (`synchronous=FULL`). Reports persisted msg/s, the share stored, and the
//!   server's RSS idle, right after the burst and for 60 s after it.
//! - `sessions [n]` (28,000): battery devices' connect-publish-disconnect sessions and the RSS.
//!
//! Run: `cargo bench --bench ingest -- burst` or `cargo bench --bench ingest -- sessions 28000`.
//! `RZMON_BENCH_WRAP=heaptrack` runs the server under a profiler.

#[path = "ingest/server.rs"]
mod server;
#[path = "ingest/sessions.rs"]
mod sessions;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use server::{Server, add_device, mib, stored};
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` adds `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match args.first().map(String::as_str) {
        Some("sessions") => rt.block_on(sessions::run(num(1, 28_000))),
        Some("burst") => rt.block_on(burst(num(1, 10), num(2, 10_000))),
        _ => rt.block_on(burst(num(0, 10), num(1, 10_000))),
    }
}

/// One device's share of the burst; returns the PUBACKs it received.
async fn publisher(port: u16, id: String, pw: String, per_device: usize) -> usize {
    let mut opts = MqttOptions::new(&id, "127.0.0.1", port);
    opts.set_credentials(&id, &pw)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(100)
        .set_request_channel_capacity(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
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
}

async fn burst(devices: usize, per_device: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds: Vec<(String, String)> = (1..=devices)
        .map(|i| {
            let id = format!("bench-{i}");
            let pw = add_device(dir.path(), &id);
            (id, pw)
        })
        .collect();
    let server = Server::start(dir.path(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = server.rss_kib();
    let total = (devices * per_device) as u64;

    let t0 = Instant::now();
    let publishers: Vec<_> = creds
        .into_iter()
        .map(|(id, pw)| tokio::spawn(publisher(server.mqtt_port, id, pw, per_device)))
        .collect();
    let mut acked = 0;
    for p in publishers {
        acked += p.await.expect("publisher");
    }
    let t_acked = t0.elapsed();
    // Every PUBACK means committed, so this only confirms it.
    let count = stored(dir.path());
    let busy_rss = server.rss_kib();
    println!();
    println!(
        "rzmon ingest benchmark (release, QoS 1, PUBACK after commit, synchronous=FULL, {devices} devices)"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| messages published | {total} |");
    println!("| PUBACKs received | {acked} |");
    println!(
        "| rows stored | {count} ({:.2} %) |",
        100.0 * count as f64 / total as f64
    );
    println!(
        "| all acknowledged (= committed) after | {:.2} s |",
        t_acked.as_secs_f64()
    );
    println!(
        "| persisted throughput | {:.0} msg/s |",
        acked as f64 / t_acked.as_secs_f64()
    );
    println!("| idle RSS | {:.1} MiB |", mib(idle_rss));
    println!("| RSS right after the burst | {:.1} MiB |", mib(busy_rss));
    for s in [10, 20, 30, 40, 50, 60] {
        tokio::time::sleep_until((Instant::now() + Duration::from_secs(10)).into()).await;
        println!(
            "| RSS {s} s after the burst | {:.1} MiB |",
            mib(server.rss_kib())
        );
    }
    assert_eq!(count, total, "not every message was stored");
    assert!(count >= acked as u64, "acknowledged but not stored");
}
