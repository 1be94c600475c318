//! Connection budgets: 300 connections from one address that never send CONNECT, or 4 from each
//! of 19 addresses (more than the pending budget holds, renewed as soon as they are closed),
//! cannot keep a device at another address from connecting; the same on MQTT/TLS and HTTPS for
//! connections that never start their handshake.

use crate::util::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Attacking addresses 127.0.0.2 ..= 127.0.0.20 (Linux routes all of 127/8 to lo).
const ATTACKERS: std::ops::RangeInclusive<u8> = 2..=20;
/// A device must connect within this, well below the 5 s CONNECT timeout that frees slots.
const AT_ONCE: Duration = Duration::from_secs(2);

async fn silent_from(a: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind((Ipv4Addr::new(127, 0, 0, a), 0).into())?;
    s.connect(to).await
}

/// Whether the server closed `s` (EOF or reset) within 100 ms.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_one_address_do_not_block_devices() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let mut silent = Vec::new();
    for _ in 0..300 {
        let s = TcpSocket::new_v4().unwrap();
        s.bind((Ipv4Addr::new(127, 0, 0, 5), 0).into()).unwrap();
        silent.push(s.connect(app.mqtt).await.expect("TCP connect"));
    }
    // Those over the address's budget are closed at once; the few pending ones stay open.
    let mut closed = 0;
    for s in &mut silent {
        let mut b = [0u8; 1];
        if matches!(
            tokio::time::timeout(std::time::Duration::from_millis(200), s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        ) {
            closed += 1;
        }
    }
    assert!(closed >= 290, "{closed} of 300 closed at once");
    let d = app.device("esp32-1").await; // from 127.0.0.1; waits for its CONNACK
    d.publish("telemetry", r#"{"tmp":21}"#).await;
    assert!(app.wait_rows(&token, "esp32-1", 1).await);
    let over = crate::metrics::metric_sum(&app, &token, "rzmon_mqtt_over_budget_total").await;
    assert!(over > 0.0, "{over}");
    assert!(
        app.stderr().matches("over budget").count() <= 1,
        "logged once per address, not per connection"
    );
}

/// 4 silent connections from each of 19 addresses (76, the pending budget holds 64), each
/// reopened as soon as the server closes it: a device from 127.0.0.1 still connects at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_many_addresses_do_not_block_devices() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let (stop, opened) = (CancellationToken::new(), Arc::new(AtomicUsize::new(0)));
    let mut attackers = tokio::task::JoinSet::new();
    for a in ATTACKERS {
        for _ in 0..4 {
            let (stop, opened, to) = (stop.clone(), opened.clone(), app.mqtt);
            attackers.spawn(async move {
                while !stop.is_cancelled() {
                    if let Ok(mut s) = silent_from(a, to).await {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let mut b = [0u8; 1];
                        tokio::select! {
                            () = stop.cancelled() => return,
                            _ = s.read(&mut b) => {}
                        }
                    }
                    // Renewed at once (paced a little, to spare the test machine).
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
    }
    let all = ATTACKERS.count() * 4;
    assert!(
        wait_until(SOON, || async { opened.load(Ordering::Relaxed) > all }).await,
        "the attackers filled the pending budget and were evicted"
    );
    for i in 1..=3 {
        let t0 = Instant::now();
        let id = format!("esp32-{i}");
        let d = app.device(&id).await; // from 127.0.0.1; waits for its CONNACK
        let took = t0.elapsed();
        assert!(took < AT_ONCE, "device {i} connected after {took:?}");
        d.publish("telemetry", r#"{"tmp":21}"#).await;
        assert!(app.wait_rows(&token, &id, 1).await);
    }
    stop.cancel();
    while attackers.join_next().await.is_some() {}
    let over = crate::metrics::metric_sum(&app, &token, "rzmon_mqtt_over_budget_total").await;
    assert!(over >= (all - 64) as f64, "evictions are counted: {over}");
}

/// MQTT/TLS and HTTPS: silent connections from 19 addresses, more than each port's pending
/// budget (64 and 256), do not keep a client at another address from its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_from_many_addresses_do_not_block_clients() {
    let app = TestApp::start_with(&[("RZMON_TLS", "auto")]).await;
    let ca = crate::tls::ca_of(&app);
    for (to, per, budget) in [(app.mqtts.unwrap(), 4, 64), (app.https.unwrap(), 16, 256)] {
        let mut silent = Vec::new();
        for a in ATTACKERS {
            for _ in 0..per {
                silent.push(silent_from(a, to).await.expect("TCP connect"));
            }
        }
        let t0 = Instant::now();
        crate::tls::handshake(&ca, to)
            .await
            .unwrap_or_else(|e| panic!("handshake on {to}: {e}"));
        let took = t0.elapsed();
        assert!(took < AT_ONCE, "handshake on {to} took {took:?}");
        let gone = futures_util::future::join_all(silent.iter_mut().map(closed)).await;
        let n = gone.into_iter().filter(|c| *c).count();
        let over = silent.len() - budget;
        assert!(
            n > over,
            "on {to}: {n} of {} silent connections closed, {over} at least plus the one the handshake took",
            silent.len()
        );
    }
}
