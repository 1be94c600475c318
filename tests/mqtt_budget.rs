//! Connection budgets: 300 connections from one address that never send CONNECT cannot keep
//! a device at another address from connecting.

use crate::util::*;
use std::net::Ipv4Addr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

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
