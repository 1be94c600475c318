//! The live WebSocket: authentication, events, slow clients.

use crate::metrics::metric_sum;
use crate::util::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Telemetry pushed to clients authenticated by header and by first message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_pushed_to_authenticated_clients() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let mut by_header = app.ws(Some(&token)).await;
    assert_eq!(ws_json(&mut by_header).await.unwrap()["type"], "ready");
    let mut by_message = app.ws_ready(&token).await;
    let d = app.device("esp32-1").await;
    d.publish("telemetry", r#"{"tmp":23.5,"lf":41,"locked":true}"#)
        .await;
    for ws in [&mut by_header, &mut by_message] {
        let ev = ws_event(ws, "telemetry").await.expect("telemetry event");
        assert_eq!(ev["device"], "esp32-1");
        assert_eq!(ev["data"], json!({"tmp": 23.5, "lf": 41, "locked": true}));
        assert!(ev["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    d.publish("incident", r#"{"type":"door_open_too_long"}"#)
        .await;
    let ev = ws_event(&mut by_message, "incident")
        .await
        .expect("incident event");
    assert_eq!(ev["data"]["type"], "door_open_too_long");
}

/// A client that never authenticates receives nothing and is closed with 1008; a bad token
/// is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_websocket_gets_nothing_and_is_closed() {
    let app = TestApp::start().await;
    let d = app.device("esp32-1").await;
    let mut silent = app.ws(None).await;
    let mut liar = app.ws(None).await;
    futures_util::SinkExt::send(
        &mut liar,
        WsMessage::text(json!({"type": "auth", "token": "forged"}).to_string()),
    )
    .await
    .unwrap();
    d.publish("telemetry", r#"{"tmp":23.5}"#).await;
    for ws in [&mut silent, &mut liar] {
        let mut closed_with = None;
        while let Ok(Some(msg)) = tokio::time::timeout(SOON, ws.next()).await {
            match msg {
                Ok(WsMessage::Close(frame)) => {
                    closed_with = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(WsMessage::Text(t)) => panic!("received data before auth: {t}"),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(closed_with, Some(1008));
    }
}

/// A client that stops reading is dropped, while another client keeps receiving everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_dropped_and_others_keep_receiving() {
    let app = TestApp::start_with(&[("RZMON_WS_QUEUE", "32")]).await;
    let token = app.login().await;
    let _slow = app.ws_ready(&token).await;
    let mut fast = app.ws_ready(&token).await;
    let d = app.device("esp32-1").await;
    let pad = "x".repeat(8_000);
    // 12 MB: more than the slow client's socket buffers can hold.
    const N: usize = 1500;
    let (progress, mut seen) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < N {
            match ws_event(&mut fast, "telemetry").await {
                Some(_) => got += 1,
                None => break,
            }
            let _ = progress.send(got);
        }
        got
    });
    for i in 0..N {
        d.publish(
            "telemetry",
            json!({"tmp": 20, "i": i, "pad": pad}).to_string(),
        )
        .await;
        if i % 10 == 9 {
            // Keep the reading client within 10 events of the publisher: it keeps up.
            let caught_up = tokio::time::timeout(SOON, seen.wait_for(|n| *n + 10 > i)).await;
            assert!(
                caught_up.is_ok_and(|r| r.is_ok()),
                "the reading client stalled at {}",
                *seen.borrow()
            );
        }
    }
    assert_eq!(
        reader.await.unwrap(),
        N,
        "the reading client got every event"
    );
    assert!(
        wait_until(SOON, || async {
            metric_sum(&app, &token, "rzmon_ws_dropped_total").await == 1.0
        })
        .await
    );
    assert!(
        wait_until(SOON, || async { app.count("telemetry") == N as i64 }).await,
        "ingest stored everything despite the slow client"
    );
}

/// A browser page from a foreign origin cannot open the WebSocket; a configured origin can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_must_be_this_server_or_configured() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::start_with(&[("RZMON_ALLOWED_ORIGINS", "https://dash.example:8443")]).await;
    let token = app.login().await;
    let attempt = |origin: &str| {
        let mut req = format!("ws://{}/ws", app.http)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    let refused = attempt("http://evil.example").await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    let own = format!("http://{}", app.http);
    assert!(attempt(&own).await.is_ok(), "the server's own origin");
    assert!(
        attempt("https://dash.example:8443").await.is_ok(),
        "a configured origin"
    );
}
