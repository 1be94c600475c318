//! Battery-device wake-ups over raw MQTT (CONNECT, one QoS 1 telemetry, its PUBACK,
//! DISCONNECT), for the memory test.

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, Publish};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one packet.
async fn read_packet(s: &mut TcpStream, buf: &mut BytesMut) -> Packet {
    loop {
        if let Ok(p) = Packet::read(buf, 1 << 16) {
            return p;
        }
        assert!(s.read_buf(buf).await.expect("read") > 0, "server closed");
    }
}

/// One battery-device wake-up: CONNECT, one QoS 1 telemetry, its PUBACK, DISCONNECT.
pub async fn session(mqtt: SocketAddr, id: &str, password: &str, seq: u64) {
    let mut s = TcpStream::connect(mqtt).await.expect("connect");
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

/// Runs `n` sessions of `devices` devices, 4 at a time (the gate lets one address have at
/// most 4 connections before their CONNECT); seqs start at `first`.
pub async fn sessions(mqtt: SocketAddr, devices: &[(String, String)], first: u64, n: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..4u64 {
        let devices = devices.to_vec();
        tasks.spawn(async move {
            let mut i = worker;
            while i < n {
                let (id, pw) = &devices[(i as usize) % devices.len()];
                session(mqtt, id, pw, first + i).await;
                i += 4;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("session task");
    }
}
