//! Alerts counted where they matter, at a real webhook receiver on loopback, across restarts
//! and reminders: a restart while firing sends nothing again, reminders stop after the
//! acknowledgement, the resolved message comes exactly once; and a `for` timer resumes from
//! its stored start after a restart instead of starting over.

use crate::receiver::Receiver;
use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Bound for an alert or a delivery to appear under a full parallel suite on 2 cores.
const WAIT: Duration = Duration::from_secs(30);

/// A webhook channel to `rx` that sends at once (no group wait).
async fn hook(app: &TestApp, token: &str, rx: &Receiver) {
    let body = json!({"name": "Hook", "kind": "webhook", "settings": {"url": rx.url("/hook")},
                      "group_wait_s": 0});
    let (status, v) = app.post("/channels", Some(token), body).await;
    assert_eq!(status, 201, "{v}");
}

/// A threshold rule `tmp above 40` for `device` with `extra` fields; returns its id.
async fn hot_rule(app: &TestApp, token: &str, device: &str, extra: Value) -> i64 {
    let mut body = json!({"name": format!("hot {device}"), "kind": "threshold", "metric": "tmp",
                          "op": "above", "value": 40, "devices": [device]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let (status, v) = app.post("/alert-rules", Some(token), body).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_i64().expect("rule id")
}

/// The only alert of `rule` once `pred` holds for it.
async fn alert_when(app: &TestApp, token: &str, rule: i64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = app.get(&format!("/alerts?rule={rule}"), Some(token)).await;
        let all = v["alerts"].as_array().cloned().unwrap_or_default();
        if let Some(a) = all.iter().find(|a| pred(a)) {
            return a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching alert for rule {rule}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The alert's deliveries of `notice` kind in `state`.
fn deliveries(a: &Value, notice: &str, state: &str) -> usize {
    a["deliveries"].as_array().map_or(0, |l| {
        l.iter()
            .filter(|d| d["notice"] == notice && d["state"] == state)
            .count()
    })
}

/// True when no delivery of the alert is still open (everything sent, failed or skipped).
fn settled(a: &Value) -> bool {
    a["deliveries"].as_array().is_some_and(|l| {
        l.iter().all(|d| {
            !["pending", "held", "suppressed"].contains(&d["state"].as_str().unwrap_or(""))
        })
    })
}

/// How many alert entries the receiver got in webhook bodies with `status`.
fn received(rx: &Receiver, status: &str) -> usize {
    rx.requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["status"] == status)
        .map(|b| b["alerts"].as_array().map_or(0, Vec::len))
        .sum()
}

async fn reconnect(app: &TestApp, id: &str, password: &str) -> Device {
    let d = Device::connect(app.mqtt, id, Some((id, password))).await;
    d.wait_connack().await.expect("device reconnects");
    d
}

/// A restart while firing: the receiver got the firing once and gets nothing more from the
/// restarted server; the recovery afterwards reaches it exactly once as "resolved".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_firing_sends_nothing_again_and_resolved_once() {
    let rx = Receiver::start().await;
    let app = TestApp::start().await;
    let token = app.login().await;
    hook(&app, &token, &rx).await;
    let d = app.device("dlv-1").await;
    let password = d.password.clone();
    let id = hot_rule(&app, &token, "dlv-1", json!({})).await;
    d.publish("telemetry", r#"{"tmp": 45}"#).await;
    rx.wait_for(1, WAIT).await;
    // Committed as sent before the restart: the outbox must not send it again.
    alert_when(&app, &token, id, |a| deliveries(a, "firing", "sent") == 1).await;
    drop(d);
    let app = app.restart().await;
    let token = app.login().await;
    // The restarted engine and outbox get a few ticks to (wrongly) announce it again.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(rx.requests().len(), 1, "{:?}", rx.requests());
    assert_eq!(received(&rx, "firing"), 1);

    let d = reconnect(&app, "dlv-1", &password).await;
    d.publish("telemetry", r#"{"tmp": 30}"#).await;
    rx.wait_for(2, WAIT).await;
    let a = alert_when(&app, &token, id, |a| {
        a["state"] == "resolved" && deliveries(a, "resolved", "sent") == 1 && settled(a)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.requests().len(), 2, "{:?}", rx.requests());
    assert_eq!(received(&rx, "resolved"), 1);
    assert_eq!(deliveries(&a, "firing", "sent"), 1, "{a}");
}

/// Reminders reach the receiver while the alert fires unacknowledged; after the acknowledgement
/// nothing more comes until the recovery, which comes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_reach_the_receiver_until_acknowledged_then_resolved_once() {
    let rx = Receiver::start().await;
    let app = TestApp::start().await;
    let token = app.login().await;
    hook(&app, &token, &rx).await;
    let d = app.device("dlv-2").await;
    let id = hot_rule(
        &app,
        &token,
        "dlv-2",
        json!({"reminder_first_secs": 1, "reminder_every_secs": 1}),
    )
    .await;
    d.publish("telemetry", r#"{"tmp": 45}"#).await;
    let a = alert_when(&app, &token, id, |a| deliveries(a, "reminder", "sent") >= 2).await;
    let alert_id = a["id"].as_i64().unwrap();
    let (status, v) = app
        .post(&format!("/alerts/{alert_id}/ack"), Some(&token), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    // What was handed to delivery before the acknowledgement may still be on its way.
    let a = alert_when(&app, &token, id, settled).await;
    let sent = deliveries(&a, "firing", "sent") + deliveries(&a, "reminder", "sent");
    assert_eq!(deliveries(&a, "firing", "sent"), 1, "{a}");
    assert!(deliveries(&a, "reminder", "sent") >= 2, "{a}");
    // Exactly what the record says was sent arrived, each once.
    assert_eq!(received(&rx, "firing"), sent, "{:?}", rx.requests());
    let before = rx.requests().len();
    // Three reminder intervals pass after the acknowledgement.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(rx.requests().len(), before, "a reminder after acknowledge");

    d.publish("telemetry", r#"{"tmp": 30}"#).await;
    rx.wait_for(before + 1, WAIT).await;
    alert_when(&app, &token, id, |a| {
        a["state"] == "resolved" && deliveries(a, "resolved", "sent") == 1 && settled(a)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.requests().len(), before + 1, "{:?}", rx.requests());
    assert_eq!(received(&rx, "resolved"), 1);
}

fn epoch_ms(ts: &Value) -> i64 {
    let s = ts.as_str().expect("timestamp");
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// A `for` timer survives a restart: the reading starts it, the server restarts 1.5 s later,
/// and the alert fires 4 s after the reading (not 4 s after the restart), exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_timer_resumes_from_its_stored_start_after_a_restart() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("dlv-3").await;
    let id = hot_rule(&app, &token, "dlv-3", json!({"for_secs": 4})).await;
    let read_ms = rzmon::model::now_ms();
    d.publish("telemetry", r#"{"tmp": 45}"#).await;
    assert!(d.wait_pubacks(1).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = app.get(&format!("/alerts?rule={id}"), Some(&token)).await;
    assert_eq!(v["alerts"], json!([]), "fired before `for` elapsed");
    drop(d);
    let restarted_ms = rzmon::model::now_ms();
    let app = app.restart().await;
    let token = app.login().await;
    let a = alert_when(&app, &token, id, |a| a["state"] == "firing").await;
    let started = epoch_ms(&a["started"]);
    // The engine ticks every 0.5 s: due at read + 4 s, fired by the next tick. A timer that
    // started over at the restart could not fire before restart + 4 s.
    assert!(
        started >= read_ms + 4000,
        "fired {} ms after the reading",
        started - read_ms
    );
    assert!(
        started < restarted_ms + 4000,
        "fired {} ms after the reading, {} ms after the restart: the timer started over",
        started - read_ms,
        started - restarted_ms
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = app.get(&format!("/alerts?rule={id}"), Some(&token)).await;
    let all = v["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 1, "{all:?}");
    let kinds: Vec<&str> = all[0]["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["firing"], "{all:?}");
}
