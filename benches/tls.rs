//! TLS benchmark against the release binary with `RZMON_TLS=auto` and `RZMON_PLAIN=on` (plain
//! and TLS ports in the same run): idle RSS, TLS handshakes per second on the MQTT port, ingest
//! messages per second over plain MQTT and over MQTT/TLS, `/data?limit=100` p50 over HTTP and
//! HTTPS, and the peak RSS during a flood of wrong logins from 100 addresses.
//!
//! Run: `cargo bench --bench tls` (optionally `-- <flood seconds> <messages per device>`;
//! defaults 30 and 5000, 10 devices).

mod common;

use rumqttc::{AsyncClient, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::ServerName;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rzmon");
const PASSWORD: &str = "bench-password-1234";

struct Server {
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
    mqtt: SocketAddr,
    mqtts: SocketAddr,
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
        .env("RZMON_HTTPS_ADDR", "127.0.0.1:0")
        .env("RZMON_MQTTS_ADDR", "127.0.0.1:0")
        .env("RZMON_TLS", "auto")
        .env("RZMON_TLS_NAMES", "127.0.0.1,localhost")
        .env("RZMON_PLAIN", "on")
        .env("RZMON_ADMIN_PASSWORD", PASSWORD)
        .env("RZMON_MQTT_RATE", "0")
        .env("RZMON_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rzmon");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut https, mut mqtt, mut mqtts) = (None, None, None, None);
    let first = |rest: &str| -> Option<SocketAddr> {
        rest.split_whitespace()
            .next()
            .and_then(|a| a.trim_end_matches('/').parse().ok())
    };
    while http.is_none() || https.is_none() || mqtt.is_none() || mqtts.is_none() {
        let line = lines.next().expect("rzmon exited").expect("read stdout");
        let line = line.trim();
        if let Some(r) = line.strip_prefix("Dashboard: https://") {
            https = first(r);
        } else if let Some(r) = line.strip_prefix("Dashboard: http://") {
            http = first(r);
        } else if let Some(r) = line.strip_prefix("MQTT/TLS:") {
            mqtts = first(r);
        } else if let Some(r) = line.strip_prefix("MQTT:") {
            mqtt = first(r);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        http: http.unwrap(),
        https: https.unwrap(),
        mqtt: mqtt.unwrap(),
        mqtts: mqtts.unwrap(),
    }
}

fn add_device(dir: &std::path::Path, id: &str) -> String {
    let out = Command::new(BIN)
        .args(["device", "add", id, "--json"])
        .env("RZMON_DATA_DIR", dir)
        .output()
        .expect("device add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["password"].as_str().expect("password").to_owned()
}

fn stored(db: &std::path::Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    conn.query_row("SELECT count(*) FROM telemetry", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let flood_secs = args.first().copied().unwrap_or(30);
    let per_device = args.get(1).copied().unwrap_or(5000) as usize;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(flood_secs, per_device));
}

async fn run(flood_secs: u64, per_device: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices = 10;
    let server = start(dir.path());
    let creds: Vec<(String, String)> = (1..=devices * 2)
        .map(|i| {
            let id = format!("bench-{i}");
            (id.clone(), add_device(dir.path(), &id))
        })
        .collect();
    let pid = server.child.id();
    let ca = std::fs::read(dir.path().join("tls/ca.pem")).expect("generated CA");
    let tls = rzmon::tls::client_config(&ca).expect("client config");
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle RSS with TLS on: {:.1} MiB",
        common::status_kib(pid, "VmRSS") as f64 / 1024.0
    );

    // TLS handshakes per second on the MQTT port: 4 clients in parallel, each handshake from
    // its own loopback address (the gate allows 4 pending connections per address).
    let n = 2000u64;
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (next, tls, addr) = (next.clone(), tls.clone(), server.mqtts);
        tasks.push(tokio::spawn(async move {
            let connector = tokio_rustls::TlsConnector::from(tls);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let src: IpAddr = format!("127.0.{}.{}", 10 + i / 250, 1 + i % 250)
                    .parse()
                    .unwrap();
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::new(src, 0)).unwrap();
                let tcp = sock.connect(addr).await.expect("connect");
                connector
                    .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                    .await
                    .expect("handshake");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "MQTT/TLS handshakes: {n} in {el:.2} s = {:.0} handshakes/s (4 parallel clients)",
        n as f64 / el
    );

    // Ingest over plain MQTT, then over MQTT/TLS, same server, same sizes.
    let db = dir.path().join("rzmon.db");
    let (plain_creds, tls_creds) = creds.split_at(devices);
    for (label, addr, creds, tls) in [
        ("plain MQTT", server.mqtt, plain_creds, None),
        ("MQTT/TLS", server.mqtts, tls_creds, Some(tls.clone())),
    ] {
        let before = stored(&db);
        let total = (devices * per_device) as u64;
        let mut pubs = Vec::new();
        for (id, pw) in creds.iter().cloned() {
            let tls = tls.clone();
            pubs.push(tokio::spawn(publish(addr, id, pw, per_device, tls)));
            // At most 4 connections per address may wait for their CONNECT (budget).
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        // Timed from the last device's connect on (the connects are staggered).
        let (t0, at_t0) = (Instant::now(), stored(&db));
        for p in pubs {
            p.await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while stored(&db) < before + total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let el = t0.elapsed().as_secs_f64();
        let got = stored(&db) - before;
        println!(
            "ingest over {label}: {got} of {total} stored; {} in the last {el:.2} s = {:.0} msg/s (10 devices, QoS 1)",
            stored(&db) - at_t0,
            (stored(&db) - at_t0) as f64 / el
        );
    }

    // /data?limit=100 p50, HTTP vs HTTPS (keep-alive clients, 300 requests each).
    let http = reqwest::Client::new();
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    for (label, client, base) in [
        ("HTTP", &http, format!("http://{}", server.http)),
        ("HTTPS", &https, format!("https://{}", server.https)),
    ] {
        let login: serde_json::Value = client
            .post(format!("{base}/login"))
            .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("token").to_owned();
        let mut times = Vec::new();
        for i in 0..320 {
            let t = Instant::now();
            let r = client
                .get(format!("{base}/data?limit=100"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.unwrap();
            if i >= 20 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        println!(
            "/data?limit=100 over {label}: p50 {:.2} ms, p90 {:.2} ms ({} requests)",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() * 9 / 10].as_secs_f64() * 1000.0,
            times.len()
        );
    }

    // A flood of wrong logins from 100 addresses for `flood_secs`.
    let rss0 = common::status_kib(pid, "VmRSS");
    let answered = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(flood_secs);
    let mut peak = 0u64;
    let mut flood = Vec::new();
    for i in 0..100u32 {
        let ip: IpAddr = format!("127.0.20.{}", i + 1).parse().unwrap();
        let client = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap();
        let (url, answered, limited) = (
            format!("http://{}/login", server.http),
            answered.clone(),
            limited.clone(),
        );
        flood.push(tokio::spawn(async move {
            while Instant::now() < end {
                let r = client
                    .post(&url)
                    .json(&serde_json::json!({"username": "admin", "password": "wrong-password"}))
                    .send()
                    .await;
                if let Ok(r) = r {
                    answered.fetch_add(1, Ordering::Relaxed);
                    if r.status() == 429 {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    while Instant::now() < end {
        peak = peak.max(common::status_kib(pid, "VmRSS"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in flood {
        f.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "login flood ({flood_secs} s, 100 addresses): RSS before {:.1} MiB, peak {:.1} MiB (VmHWM {:.1} MiB), after {:.1} MiB; {} answers, {} of them 429",
        rss0 as f64 / 1024.0,
        peak as f64 / 1024.0,
        common::status_kib(pid, "VmHWM") as f64 / 1024.0,
        common::status_kib(pid, "VmRSS") as f64 / 1024.0,
        answered.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed)
    );
}

async fn publish(
    addr: SocketAddr,
    id: String,
    pw: String,
    n: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let mut opts = MqttOptions::new(&id, addr.ip().to_string(), addr.port());
    opts.set_credentials(&id, &pw)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(100)
        .set_request_channel_capacity(1000);
    if let Some(t) = tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(t)));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let topic = format!("rz/{id}/telemetry");
    let sender = tokio::spawn(async move {
        for seq in 0..n {
            let payload = format!(
                r#"{{"tmp":{:.1},"seq":{seq}}}"#,
                20.0 + (seq % 100) as f64 / 10.0
            );
            client
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
        client
    });
    common::await_acks(&mut eventloop, &id, n).await;
    let client = sender.await.expect("sender");
    let _ = client.disconnect().await;
}
