//! The gate: who may connect, publish and subscribe; payload rules; bulk QoS 1 delivery.

use crate::metrics::metric_sum;
use crate::util::*;
use serde_json::json;

/// Anonymous, unknown-device and wrong-password logins get a CONNACK refusal. (A process app:
/// the test reads the log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_are_refused_with_connack() {
    let app = TestApp::process().await;
    let pw = app.add_device("esp32-1");
    let anon = Device::connect(app.mqtt, "esp32-1", None).await;
    assert_eq!(anon.wait_connack().await, Err("BadUserNamePassword".into()));
    let wrong = Device::connect(app.mqtt, "esp32-1", Some(("esp32-1", "wrong"))).await;
    assert_eq!(
        wrong.wait_connack().await,
        Err("BadUserNamePassword".into())
    );
    let unknown = Device::connect(app.mqtt, "ghost", Some(("ghost", &pw))).await;
    assert_eq!(
        unknown.wait_connack().await,
        Err("BadUserNamePassword".into())
    );
    let ok = Device::connect(app.mqtt, "esp32-1", Some(("esp32-1", &pw))).await;
    assert_eq!(ok.wait_connack().await, Ok(()));
    let token = app.login().await;
    let refused = metric_sum(&app, &token, "rzmon_mqtt_logins_refused_total").await;
    assert_eq!(refused, 3.0);
    assert!(app.stderr().contains("MQTT login refused"));
    assert!(!app.stderr().contains(&pw), "passwords never reach the log");
}

/// A client id that differs from the username is refused (IdentifierRejected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_must_equal_username() {
    let app = TestApp::start().await;
    let pw = app.add_device("esp32-1");
    let d = Device::connect(app.mqtt, "someone-else", Some(("esp32-1", &pw))).await;
    assert_eq!(d.wait_connack().await, Err("BadClientId".into()));
}

/// Device A publishing on B's topic is cut off and nothing is stored as B; subscribing to
/// `rz/#` or B's command topic is cut off too; A's own topics work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_cannot_impersonate_or_eavesdrop() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let _b = app.device("dev-b").await;
    let a = app.device("dev-a").await;
    a.publish_to("rz/dev-b/telemetry", r#"{"tmp":99}"#).await;
    assert!(
        a.wait_closed().await,
        "publishing as another device closes the connection"
    );
    let pw = a.password.clone();
    let pw = pw.as_str();
    for filter in ["rz/#", "rz/dev-b/command", "rz/+/command", "#"] {
        let a = Device::connect(app.mqtt, "dev-a", Some(("dev-a", pw))).await;
        a.wait_connack().await.unwrap();
        a.client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        assert!(
            a.wait_closed().await,
            "subscribing to {filter} closes the connection"
        );
    }
    let a = Device::connect(app.mqtt, "dev-a", Some(("dev-a", pw))).await;
    a.wait_connack().await.unwrap();
    a.subscribe_commands().await;
    a.publish("telemetry", r#"{"tmp":21}"#).await;
    assert!(app.wait_rows(&token, "dev-a", 1).await, "own topics work");
    let (_, body) = app.get("/data?device=dev-b", Some(&token)).await;
    assert_eq!(body["data"], json!([]), "nothing was stored as dev-b");
    let violations = metric_sum(&app, &token, "rzmon_mqtt_gate_violations_total").await;
    assert!(violations >= 5.0, "{violations}");
}

/// Malformed and out-of-range payloads are rejected and counted while the connection and the
/// server keep working; an oversize packet closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_rejected_and_oversize_closes() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("esp32-1").await;
    for bad in [
        "not json",
        "[1,2,3]",
        r#"{"tmp":"hot"}"#,
        r#"{"tmp":500}"#,
        r#"{"lf":-1}"#,
        r#"{"locked":"yes"}"#,
    ] {
        d.publish("telemetry", bad).await;
    }
    d.publish("incident", r#"{"message":"no type"}"#).await;
    d.publish("access", r#"{"access_id":"04A1"}"#).await;
    d.publish("telemetry", r#"{"tmp":22.5,"fw":"1.0.3"}"#).await;
    assert!(
        app.wait_rows(&token, "esp32-1", 1).await,
        "a good message after bad ones is stored"
    );
    let rejected = metric_sum(&app, &token, "rzmon_messages_rejected_total").await;
    assert_eq!(rejected, 8.0);
    let (_, body) = app.get("/data", Some(&token)).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["data"][0]["data"]["fw"], "1.0.3",
        "extra fields are kept"
    );

    d.publish(
        "telemetry",
        json!({"tmp": 20, "pad": "x".repeat(20_000)}).to_string(),
    )
    .await;
    assert!(
        d.wait_closed().await,
        "an oversize packet closes the connection"
    );
    let (status, _) = app.get("/health", None).await;
    assert_eq!(status, 200, "the server keeps serving");
    let again = app.device("esp32-2").await;
    again.publish("telemetry", r#"{"tmp":23}"#).await;
    assert!(app.wait_rows(&token, "esp32-2", 1).await);
}

/// 2,000 QoS 1 messages are all stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_qos1_messages_are_stored_exactly_once() {
    let app = TestApp::start().await;
    let d = app.device("esp32-1").await;
    for seq in 0..2000 {
        d.publish("telemetry", json!({"tmp": 21.0, "seq": seq}).to_string())
            .await;
    }
    assert!(d.wait_pubacks(2000).await, "all acknowledged");
    assert!(wait_until(SOON, || async { app.count("telemetry") >= 2000 }).await);
    let db = app.db();
    let (n, distinct): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT seq) FROM telemetry",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, distinct), (2000, 2000));
}

/// A redelivered message (same seq and payload) is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_seq_is_ignored() {
    let app = TestApp::start().await;
    let d = app.device("esp32-1").await;
    d.publish("telemetry", r#"{"tmp":21.0,"seq":7}"#).await;
    d.publish("telemetry", r#"{"tmp":21.0,"seq":7}"#).await;
    d.publish("telemetry", r#"{"tmp":21.5,"seq":8}"#).await;
    assert!(d.wait_pubacks(3).await);
    assert!(wait_until(SOON, || async { app.count("telemetry") == 2 }).await);
    let token = app.login().await;
    assert!(
        wait_until(SOON, || async {
            metric_sum(&app, &token, "rzmon_store_duplicates_total").await == 1.0
        })
        .await
    );
}

/// Removing a device with the CLI closes its live connection and refuses it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_device_disconnects_it() {
    let app = TestApp::start().await;
    let d = app.device("esp32-1").await;
    let out = app.cli(&["device", "remove", "esp32-1"]);
    assert!(out.status.success());
    assert!(
        d.wait_closed().await,
        "the live session is closed; stderr:\n{}",
        app.stderr()
    );
    let out = app.cli(&["device", "remove", "esp32-1"]);
    assert!(!out.status.success(), "removing twice is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device"));
}

/// The API registers a device (credentials shown once, they work on the MQTT port), refuses a
/// duplicate, and removing it closes its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_managed_through_the_api() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let (status, creds) = app
        .post("/devices", Some(&token), json!({"id": "esp32-9"}))
        .await;
    assert_eq!(status, 201, "{creds}");
    assert_eq!(creds["username"], "esp32-9");
    let pw = creds["password"].as_str().unwrap();
    assert_eq!(
        app.post("/devices", Some(&token), json!({"id": "esp32-9"}))
            .await
            .0,
        409
    );
    assert_eq!(
        app.post("/devices", Some(&token), json!({"id": "bad/id"}))
            .await
            .0,
        400
    );
    let d = Device::connect(app.mqtt, "esp32-9", Some(("esp32-9", pw))).await;
    d.wait_connack().await.unwrap();
    let res = app
        .client
        .delete(app.url("/devices/esp32-9"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(d.wait_closed().await, "removal closes the live connection");
    let res = app
        .client
        .delete(app.url("/devices/esp32-9"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
