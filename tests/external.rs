//! External-broker mode (`RZMON_BROKER`) against Debian's mosquitto configured with the files
//! `rzmon broker-config mosquitto` wrote: telemetry is stored, getConfig round-trips through
//! the broker, mosquitto's ACL refuses a device that publishes or subscribes as another device
//! (nothing stored), and messages published while rzmon is stopped are stored after it comes
//! back (its persistent session keeps what it did not acknowledge). The same helpers as in
//! embedded mode (`device`, `simulator`, `wait_rows`). Also over `mqtts://` with a private CA.

use crate::util::*;
use serde_json::json;

/// Telemetry through mosquitto is stored; the simulator's config round-trips (getConfig and
/// setConfig go out through the broker, the replies come back through it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_stored_and_config_round_trips() {
    let app = TestApp::start_external(&[]).await;
    let token = app.login().await;
    let d = app.device("ext-1").await;
    d.publish("telemetry", json!({"tmp": 21.5, "seq": 1}).to_string())
        .await;
    assert!(app.wait_rows(&token, "ext-1", 1).await, "telemetry stored");
    let (_, v) = app.get("/data?device=ext-1", Some(&token)).await;
    assert_eq!(v["data"][0]["data"]["tmp"], 21.5, "{v}");

    let _sim = app.simulator("sim-ext", 0.2);
    assert!(
        wait_until(SOON, || async {
            let (status, _) = app.get("/getConfig?device=sim-ext", Some(&token)).await;
            status == 200
        })
        .await,
        "getConfig answered through the external broker"
    );
    let (status, body) = app
        .post(
            "/setConfig?device=sim-ext",
            Some(&token),
            json!({"tmp_max": 27.5}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["confirmed"], true, "{body}");
    let (_, body) = app.get("/getConfig?device=sim-ext", Some(&token)).await;
    assert_eq!(body["config"]["tmp_max"], 27.5, "{body}");
    let (_, health) = app.get("/health", None).await;
    assert_eq!(health["checks"]["broker"], "ok", "{health}");
    // The Devices page's instructions name the external broker, not rzmon's own host.
    let (_, s) = app.get("/settings", Some(&token)).await;
    assert_eq!(
        (&s["mqtt_host"], &s["mqtt_port"], &s["external_broker"]),
        (
            &json!(app.mqtt.ip().to_string()),
            &json!(app.mqtt.port()),
            &json!(true)
        ),
        "{s}"
    );
    assert_eq!(s["mqtts_port"], serde_json::Value::Null, "{s}");
}

/// The generated ACL: a device cannot publish on another device's topic (mosquitto denies it
/// — Debian's 2.0.11 then closes the connection — and nothing is stored) nor receive another
/// device's commands; its own topics work, and a wrong password is refused at CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_refuses_foreign_topics() {
    let app = TestApp::start_external(&[("RZMON_COMMAND_TIMEOUT", "1")]).await;
    let token = app.login().await;
    let victim = app.device("ext-b").await;
    victim.subscribe_commands().await;
    victim.publish("status", "online").await;
    assert!(
        wait_until(SOON, || async {
            let (_, v) = app.get("/devices", Some(&token)).await;
            v["devices"][0]["online"] == true
        })
        .await,
        "ext-b online"
    );
    let d = app.device("ext-a").await;
    d.publish_to(
        "rz/ext-b/telemetry",
        json!({"tmp": 99.0, "seq": 1}).to_string(),
    )
    .await;
    // Acknowledged or closed: either way mosquitto has judged it.
    let _ = d.wait_pubacks(1).await;
    let d = Device::connect(app.mqtt, "ext-a", Some(("ext-a", &d.password))).await;
    d.wait_connack().await.expect("ext-a connects again");
    d.client
        .subscribe("rz/ext-b/command", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("queue subscribe");
    // Published after the foreign message: once this is stored, that one would have been too.
    d.publish("telemetry", json!({"tmp": 20.0, "seq": 2}).to_string())
        .await;
    assert!(
        app.wait_rows(&token, "ext-a", 1).await,
        "own telemetry stored"
    );
    let (_, v) = app.get("/data?device=ext-b", Some(&token)).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(app.count("telemetry"), 1);
    // A command for ext-b reaches ext-b, never ext-a.
    let (status, _) = app.get("/getConfig?device=ext-b", Some(&token)).await;
    assert_eq!(status, 504, "ext-b does not answer");
    let got = victim
        .next_publish(SOON)
        .await
        .expect("ext-b got its command");
    assert_eq!(got.topic, "rz/ext-b/command");
    assert!(
        d.next_publish(std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "ext-a received ext-b's command"
    );
    let stranger = Device::connect(app.mqtt, "ext-a", Some(("ext-a", "wrong-password"))).await;
    assert!(stranger.wait_connack().await.is_err());
}

/// rzmon acknowledges only what it committed and keeps a persistent session: what devices
/// publish while it is stopped is stored once it is back, each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_rzmon_is_down_are_stored_after_restart() {
    let app = TestApp::start_external(&[]).await;
    let d = app.device("ext-r").await;
    let token = app.login().await;
    d.publish("telemetry", json!({"tmp": 20.0, "seq": 1}).to_string())
        .await;
    assert!(app.wait_rows(&token, "ext-r", 1).await);
    let mut app = app;
    app.shutdown().await.expect("clean stop");
    for seq in 2..=50 {
        d.publish("telemetry", json!({"tmp": 20.5, "seq": seq}).to_string())
            .await;
    }
    assert!(d.wait_pubacks(50).await, "mosquitto took every message");
    let app = app.restart().await;
    let token = app.login().await;
    assert!(
        app.wait_rows(&token, "ext-r", 50).await,
        "every message stored after the restart"
    );
    assert_eq!(app.count("telemetry"), 50, "each message once");
}

/// `RZMON_BROKER=mqtts://...?ca=` with a private CA: rzmon subscribes over mosquitto's TLS
/// listener and a device's telemetry (on the plain listener) is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_broker_over_mqtts_with_a_private_ca() {
    let app = TestApp::start_external_tls(&[]).await;
    let token = app.login().await;
    let d = app.device("ext-tls").await;
    d.publish("telemetry", json!({"tmp": 19.5, "seq": 1}).to_string())
        .await;
    assert!(
        app.wait_rows(&token, "ext-tls", 1).await,
        "telemetry stored"
    );
    let (_, health) = app.get("/health", None).await;
    assert_eq!(health["checks"]["broker"], "ok", "{health}");
}
