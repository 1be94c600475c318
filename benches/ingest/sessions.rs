//! Battery devices: connect, publish one QoS 1 telemetry, wait for its PUBACK, disconnect —
//! many times — and the server's RSS before and after.

use super::server::{Server, add_device, mib, stored};
use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, Publish};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Concurrent sessions; each worker owns two devices, so no session takes over another.
const WORKERS: usize = 8;

async fn read_packet(s: &mut TcpStream, buf: &mut BytesMut) -> Packet {
    loop {
        if let Ok(p) = Packet::read(buf, 1 << 16) {
            return p;
        }
        assert!(s.read_buf(buf).await.expect("read") > 0, "server closed");
    }
}

async fn session(port: u16, id: &str, password: &str, seq: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut out = BytesMut::new();
    let mut c = Connect::new(id);
    c.keep_alive = 30;
    c.login = Some(Login::new(id, password));
    Packet::Connect(c).write(&mut out, 1 << 16).unwrap();
    let payload = format!(r#"{{"tmp":21.5,"lf":40.0,"locked":true,"seq":{seq}}}"#);
    let mut p = Publish::new(format!("rz/{id}/telemetry"), QoS::AtLeastOnce, payload);
    p.pkid = 1;
    Packet::Publish(p).write(&mut out, 1 << 16).unwrap();
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    assert!(matches!(
        read_packet(&mut s, &mut buf).await,
        Packet::ConnAck(_)
    ));
    assert!(matches!(
        read_packet(&mut s, &mut buf).await,
        Packet::PubAck(_)
    ));
    out.clear();
    Packet::Disconnect.write(&mut out, 16).unwrap();
    s.write_all(&out).await.unwrap();
    let _ = s.read(&mut [0u8; 16]).await;
}

async fn run_sessions(port: u16, devices: &[(String, String)], first: usize, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let devices = devices.to_vec();
        tasks.spawn(async move {
            let mut i = worker;
            while i < n {
                let (id, pw) = &devices[i % devices.len()];
                session(port, id, pw, first + i).await;
                i += WORKERS;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("session task");
    }
}

/// `n` sessions after a warm-up of 2,000; prints RSS along the way.
pub async fn run(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices: Vec<(String, String)> = (0..WORKERS * 2)
        .map(|i| {
            let id = format!("sleepy-{i}");
            let pw = add_device(dir.path(), &id);
            (id, pw)
        })
        .collect();
    let server = Server::start(dir.path(), 0);
    let port = server.mqtt_port;
    let idle = server.rss_kib();
    let warm_up = 2_000;
    run_sessions(port, &devices, 0, warm_up).await;
    let before = server.rss_kib();
    println!();
    println!("rzmon sessions benchmark (release; connect, 1 QoS 1 publish, PUBACK, disconnect)");
    println!("| sessions after warm-up | RSS | change |");
    println!("|---|---|---|");
    println!("| 0 (idle, before warm-up) | {:.1} MiB | |", mib(idle));
    println!(
        "| 0 (after {warm_up} warm-up sessions) | {:.1} MiB | |",
        mib(before)
    );
    let t0 = Instant::now();
    let step = (n / 7).max(1);
    let mut done = 0;
    while done < n {
        let k = step.min(n - done);
        run_sessions(port, &devices, warm_up + done, k).await;
        done += k;
        let rss = server.rss_kib();
        println!(
            "| {done} | {:.1} MiB | {:+.2} MiB |",
            mib(rss),
            mib(rss) - mib(before)
        );
    }
    let secs = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(dir.path()) < (warm_up + n) as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{n} sessions in {secs:.1} s ({:.0}/s); {} rows stored",
        n as f64 / secs,
        stored(dir.path())
    );
}
