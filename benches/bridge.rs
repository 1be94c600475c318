//! Upstream bridge catch-up benchmark: 100,000 stored telemetry rows while the upstream broker
//! is down (the outage), then Debian's mosquitto comes up with a collector subscribed; measures
//! how fast the bridge forwards the backlog (QoS 1, acknowledged by mosquitto) until the
//! collector has every row.
//!
//! Run: `cargo bench --bench bridge` (optionally `-- <rows> <RZMON_BRIDGE_RATE>`; the default
//! rate here is the maximum, 100000, to show what the path achieves; rzmon's default of 1000
//! messages/s is a deliberate cap).

mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(100_000);
    let rate = args.get(1).copied().unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 devices × rows/100 readings, written through the store's writer.
    common::seed(&dir.path().join("rzmon.db"), 100, rows / 100);
    let rows = (rows / 100) * 100;
    let port = common::free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let rate_s = rate.to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The collector's persistent session exists before the outage, so nothing forwarded after
    // the broker comes back is missed.
    let mut broker = common::Mosquitto::start(port, "max_inflight_messages 100");
    rt.block_on(async {
        let (client, mut eventloop) = AsyncClient::new(collector_options(port), 100);
        client
            .subscribe("site-a/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = eventloop.poll().await {
                break;
            }
        }
    });
    broker.stop();
    let server = common::start(
        dir.path(),
        &[
            ("RZMON_BRIDGE_URL", &url),
            ("RZMON_BRIDGE_PREFIX", "site-a"),
            ("RZMON_BRIDGE_RATE", &rate_s),
            // The seeded readings carry fixed 2025 times: keep them from retention.
            ("RZMON_RETENTION_DAYS", "0"),
        ],
    );
    rt.block_on(async {
        // The outage: the bridge finds nothing listening and reports it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while common::health(&server.http).await["checks"]["bridge"] != "error" {
            assert!(Instant::now() < deadline, "bridge never reported the outage");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        broker.launch();
        let up = Instant::now();
        let (ids, first, last) = collect(port, rows).await;
        drop(broker);
        let span = last.duration_since(first).as_secs_f64();
        println!();
        println!(
            "rzmon bridge catch-up benchmark ({}, {rows} rows stored during the outage, RZMON_BRIDGE_RATE={rate})",
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        println!("| measure | value |");
        println!("|---|---|");
        println!("| rows received by the collector | {ids} |");
        println!(
            "| upstream back → first row | {:.2} s |",
            first.duration_since(up).as_secs_f64()
        );
        println!(
            "| upstream back → last row | {:.2} s |",
            last.duration_since(up).as_secs_f64()
        );
        println!("| catch-up rate (first → last row) | {:.0} rows/s |", ids as f64 / span);
        assert_eq!(ids, rows, "every row forwarded");
    });
}

/// A persistent session: mosquitto queues for it while it is away.
fn collector_options(port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new("collector", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    opts
}

/// Subscribes to everything and counts distinct (source, id) until `rows` arrived; the count,
/// first and last arrival.
async fn collect(port: u16, rows: usize) -> (usize, Instant, Instant) {
    let (client, mut eventloop) = AsyncClient::new(collector_options(port), 100);
    let mut seen = HashSet::new();
    let (mut first, mut last) = (None, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < rows {
        assert!(
            Instant::now() < deadline,
            "only {} rows arrived",
            seen.len()
        );
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client
                    .subscribe("site-a/#", QoS::AtLeastOnce)
                    .await
                    .expect("subscribe");
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let v: serde_json::Value = serde_json::from_slice(&p.payload).expect("json");
                seen.insert((
                    v["source"].as_str().unwrap_or("").to_owned(),
                    v["id"].as_i64(),
                ));
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => panic!("nothing arrived for 30 s ({} rows so far)", seen.len()),
        }
    }
    (seen.len(), first.unwrap_or(last), last)
}
