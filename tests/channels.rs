//! `/channels` against the real server: create/change/delete with validation sentences, write-only
//! secrets, Send test (success and the sentences naming what failed), read-only channels from
//! `RZMON_NOTIFY_URLS`, the heartbeat, and no secret in any answer or log line.

use crate::receiver::{Receiver, Recorded, free_addr};
use crate::util::{SOON, TestApp, wait_until};
use rzmon::model::DeviceId;
use rzmon::notify::{Notice, NoticeKind, Severity};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

/// Hostile and bad input is a 400 naming the field; unknown ids 404; `kind` cannot change.
#[tokio::test]
async fn bad_channel_input_names_the_field() {
    let app = TestApp::start().await;
    let t = app.login().await;
    for (body, field) in [
        (
            json!({"kind": "gotify", "settings": {"server": "file:///etc/passwd", "token": "x"}}),
            "settings.server",
        ),
        (
            json!({"kind": "webhook", "settings": {"url": "javascript:alert(1)"}}),
            "settings.url",
        ),
        (
            json!({"kind": "ntfy", "settings": {"topic": "a/b"}}),
            "settings.topic",
        ),
        (json!({"kind": "pager", "settings": {}}), "kind"),
        (
            json!({"kind": "slack", "settings": {"url": "https://x/y"}, "group_wait_s": -1}),
            "group_wait_s",
        ),
        (
            json!({"kind": "slack", "settings": {"url": "https://x/y"}, "quiet_hours": {"start": "25:00", "end": "07:00"}}),
            "quiet_hours.start",
        ),
        (
            json!({"kind": "email", "settings": {"host": "smtp.example.com", "from": "x", "to": ["a@b.c"]}}),
            "settings.from",
        ),
    ] {
        let (status, v) = app.call("POST", "/channels", &t, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(error_of(&v).contains(field), "{body}: {v}");
    }
    let (status, v) = app.call("GET", "/channels/999", &t, None).await;
    assert_eq!((status, error_of(&v)), (404, "No channel with id 999."));
    let (status, v) = app
        .call(
            "POST",
            "/channels",
            &t,
            Some(json!({"kind": "slack", "settings": {"url": "https://hooks.example/x"}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (status, v) = app
        .call(
            "PUT",
            &format!("/channels/{id}"),
            &t,
            Some(json!({"kind": "discord"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&v).contains("kind"), "{v}");
    let (status, _) = app.call("GET", "/channels", "not-a-token", None).await;
    assert_eq!(status, 401);
}

/// Secrets are answered as "***"; a PUT that sends "***" (or omits them) keeps them, as the
/// receiver of the next test message shows; DELETE removes the channel.
#[tokio::test]
async fn secrets_are_write_only_and_kept_on_update() {
    let rx = Receiver::start().await;
    let app = TestApp::start().await;
    let t = app.login().await;
    let body = json!({"name": "Phone", "kind": "ntfy",
        "settings": {"server": rx.url("/n"), "topic": "rz", "token": "tk_first_secret"}});
    let (status, v) = app.call("POST", "/channels", &t, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["settings"]["token"], "***");
    assert_eq!(v["read_only"], false);
    assert_eq!(v["group_wait_s"], 10);
    let id = v["id"].as_i64().unwrap();
    let (status, v) = app.call("PUT", &format!("/channels/{id}"), &t,
        Some(json!({"name": "Phone 2", "settings": {"token": "***", "tags": ["rz"]}, "storm_cap": 5}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["storm_cap"].as_i64()),
        (Some("Phone 2"), Some(5))
    );
    let (status, v) = app
        .call("POST", &format!("/channels/{id}/test"), &t, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], "Delivered (HTTP 200).");
    let reqs = rx.wait_for(1, SOON).await;
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer tk_first_secret")
    );
    assert_eq!(reqs[0].json()["tags"], json!(["rz", "warning"]));
    let (_, list) = app.call("GET", "/channels", &t, None).await;
    assert!(!list.to_string().contains("tk_first_secret"), "{list}");
    assert_eq!(list["channels"][0]["last_delivery"]["state"], "sent");
    let (status, v) = app
        .call("DELETE", &format!("/channels/{id}"), &t, None)
        .await;
    assert_eq!((status, v["deleted"].as_i64()), (200, Some(id)));
    let (status, _) = app.call("GET", &format!("/channels/{id}"), &t, None).await;
    assert_eq!(status, 404);
}

/// Send test answers an error sentence naming what failed: connection refused, HTTP 401.
#[tokio::test]
async fn send_test_names_what_failed() {
    let app = TestApp::start().await;
    let t = app.login().await;
    let dead = free_addr().await;
    let (_, v) = app.call("POST", "/channels", &t,
        Some(json!({"kind": "gotify", "settings": {"server": format!("http://{dead}"), "token": "k"}}))).await;
    let (status, v) = app
        .call("POST", &format!("/channels/{}/test", v["id"]), &t, None)
        .await;
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("connection refused"), "{v}");

    let rx = Receiver::start().await;
    rx.answer(401, r#"{"error":"Unauthorized","errorCode":401}"#);
    let (_, v) = app
        .call(
            "POST",
            "/channels",
            &t,
            Some(json!({"kind": "gotify", "settings": {"server": rx.url(""), "token": "wrong"}})),
        )
        .await;
    let id = v["id"].as_i64().unwrap();
    let (status, v) = app
        .call("POST", &format!("/channels/{id}/test"), &t, None)
        .await;
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("HTTP 401"), "{v}");
    let (_, v) = app.call("GET", &format!("/channels/{id}"), &t, None).await;
    assert_eq!(v["last_delivery"]["state"], "failed", "{v}");
}

/// Channels from RZMON_NOTIFY_URLS show up read-only (409 on change), can be tested, and get
/// submitted notices like any other channel.
#[tokio::test]
async fn env_channels_are_read_only_and_deliver() {
    let rx = Receiver::start().await;
    let urls = format!("json://{}/hook", rx.addr);
    let app = TestApp::start_with(&[("RZMON_NOTIFY_URLS", &urls)]).await;
    let t = app.login().await;
    let (_, v) = app.call("GET", "/channels", &t, None).await;
    let ch = &v["channels"][0];
    assert_eq!(
        (ch["kind"].as_str(), ch["read_only"].as_bool()),
        (Some("webhook"), Some(true)),
        "{v}"
    );
    let id = ch["id"].as_i64().unwrap();
    let (status, v) = app
        .call(
            "PUT",
            &format!("/channels/{id}"),
            &t,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(error_of(&v).contains("RZMON_NOTIFY_URLS"));
    let (status, _) = app
        .call("DELETE", &format!("/channels/{id}"), &t, None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .call(
            "POST",
            &format!("/channels/{id}/mute"),
            &t,
            Some(json!({"minutes": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, v) = app
        .call("POST", &format!("/channels/{id}/test"), &t, None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        rx.wait_for(1, SOON).await[0].json()["alerts"][0]["labels"]["test"],
        "true"
    );

    let notice = Notice {
        alert_id: 7,
        kind: NoticeKind::Firing,
        rule_id: 1,
        rule_name: "Door open".into(),
        device: DeviceId::parse("esp32-1"),
        severity: Severity::Critical,
        summary: "esp32-1: door open for 11 min".into(),
        value: None,
        threshold: None,
        started_ms: rzmon::model::now_ms(),
        at_ms: rzmon::model::now_ms(),
        labels: BTreeMap::new(),
    };
    app.running()
        .parts
        .notifier
        .submit_async(notice)
        .await
        .unwrap();
    // Default group wait: 10 s.
    let reqs = rx
        .wait_for(2, SOON + std::time::Duration::from_secs(10))
        .await;
    assert_eq!(
        reqs[1].json()["alerts"][0]["labels"]["alertname"],
        "Door open"
    );
    let path = format!("/channels/{id}/deliveries");
    let sent = wait_until(SOON, || async {
        app.call("GET", &path, &t, None).await.1["deliveries"][0]["state"] == "sent"
    });
    assert!(sent.await, "{}", app.call("GET", &path, &t, None).await.1);
}

/// Starts an app whose heartbeat pings `url` every second; returns it with the first ping.
async fn heartbeat_app(rx: &Receiver, url: &str) -> (TestApp, Recorded) {
    let app = TestApp::start_with(&[
        ("RZMON_HEARTBEAT_URL", url),
        ("RZMON_HEARTBEAT_INTERVAL", "1"),
    ])
    .await;
    let first = rx.wait_for(1, SOON).await.remove(0);
    (app, first)
}

/// Fails a health check of `app` and waits for the first ping after it that `is_failure`
/// accepts; returns it.
async fn failure_ping(
    app: &TestApp,
    rx: &Receiver,
    is_failure: impl Fn(&Recorded) -> bool,
) -> Recorded {
    app.running()
        .parts
        .health
        .set_failed("test", "a test check failed");
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let n = rx.requests().len();
        let last = rx.wait_for(n + 1, SOON).await.pop().unwrap();
        if is_failure(&last) {
            return last;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failure ping");
    }
}

/// The heartbeat pings while healthy and calls `/fail` once a health check fails.
#[tokio::test]
async fn heartbeat_pings_and_reports_failure() {
    let rx = Receiver::start().await;
    let (app, first) = heartbeat_app(&rx, &rx.url("/ping/abc")).await;
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/ping/abc")
    );
    let fail = failure_ping(&app, &rx, |r| r.path == "/ping/abc/fail").await;
    assert!(
        fail.text().contains("a test check failed"),
        "{}",
        fail.text()
    );
}

/// An Uptime Kuma 1.x push URL answers only GET: the heartbeat GETs it with `status=up&msg=OK`
/// while healthy and `status=down` with the reason once a health check fails; never a POST.
#[tokio::test]
async fn heartbeat_pings_uptime_kuma_with_get() {
    let rx = Receiver::start().await;
    rx.only_get();
    let url = rx.url("/api/push/Tok3n?status=up&msg=OK&ping=");
    let (app, first) = heartbeat_app(&rx, &url).await;
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("GET", "/api/push/Tok3n?ping=&status=up&msg=OK")
    );
    let down = failure_ping(&app, &rx, |r| r.path.contains("status=down")).await;
    assert!(
        down.path.contains("msg=test%3A+a+test+check+failed"),
        "{}",
        down.path
    );
    let methods: Vec<String> = rx.requests().into_iter().map(|r| r.method).collect();
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
}

/// No channel secret appears in any API answer or in the log (debug level), after creating,
/// testing and delivering on every kind that has one.
#[tokio::test]
async fn secrets_never_reach_answers_or_logs() {
    let rx = Receiver::start().await;
    let app = TestApp::process_with(&[("RZMON_LOG", "debug")]).await;
    let t = app.login().await;
    let secrets = [
        "tk_NTFY_S3CRET",
        "GOTIFY_S3CRET",
        "HMAC_S3CRET",
        "HDR_S3CRET",
        "123:TG_S3CRET",
        "DISCORD_S3CRET",
        "SMTP_S3CRET",
    ];
    let bodies = [
        json!({"kind": "ntfy", "settings": {"server": rx.url("/n"), "topic": "t", "token": secrets[0]}}),
        json!({"kind": "gotify", "settings": {"server": rx.url("/g"), "token": secrets[1]}}),
        json!({"kind": "webhook", "settings": {"url": rx.url("/w"), "hmac_key": secrets[2], "headers": {"Authorization": secrets[3]}}}),
        json!({"kind": "telegram", "settings": {"token": secrets[4], "chat_id": 1, "api_url": rx.url("")}}),
        json!({"kind": "discord", "settings": {"url": rx.url(&format!("/api/webhooks/1/{}", secrets[5]))}}),
        json!({"kind": "email", "settings": {"host": "127.0.0.1", "port": free_addr().await.port(), "security": "none",
               "username": "u", "password": secrets[6], "from": "a@example.com", "to": ["b@example.com"]}}),
    ];
    let mut answers = String::new();
    for b in bodies {
        let (status, v) = app.call("POST", "/channels", &t, Some(b)).await;
        assert_eq!(status, 201, "{v}");
        answers += &v.to_string();
        let (_, v) = app
            .call("POST", &format!("/channels/{}/test", v["id"]), &t, None)
            .await;
        answers += &v.to_string();
        let (_, v) = app
            .call(
                "PUT",
                &format!("/channels/{}", v["id"].as_i64().unwrap_or(0)),
                &t,
                Some(json!({})),
            )
            .await;
        answers += &v.to_string();
    }
    answers += &app.call("GET", "/channels", &t, None).await.1.to_string();
    answers += &app.call("GET", "/audit", &t, None).await.1.to_string();
    rx.wait_for(5, SOON).await;
    let log = app.stderr() + &app.stdout.lock().unwrap().join("\n");
    assert!(
        log.contains("notification test"),
        "the log has no test lines:\n{log}"
    );
    for s in secrets {
        assert!(!answers.contains(s), "{s} in an answer: {answers}");
        assert!(!log.contains(s), "{s} in the log:\n{log}");
    }
}

/// End to end: a reading over a threshold (rule with `for_secs` 0) reaches the webhook
/// receiver, and `GET /alerts` shows the channel's delivery record for that alert.
#[tokio::test]
async fn a_reading_over_the_threshold_reaches_the_webhook() {
    let rx = Receiver::start().await;
    let app = TestApp::start().await;
    let t = app.login().await;
    let (status, v) = app
        .call(
            "POST",
            "/channels",
            &t,
            Some(json!({"name": "Hook", "kind": "webhook",
        "settings": {"url": rx.url("/hook")}, "group_wait_s": 0})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = app
        .call(
            "POST",
            "/alert-rules",
            &t,
            Some(json!({"name": "Rack hot", "kind": "threshold",
        "metric": "tmp", "op": "above", "value": 30, "for_secs": 0, "severity": "critical"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let dev = app.device("esp32-1").await;
    dev.publish("telemetry", r#"{"tmp": 36.5, "lf": 40}"#).await;
    let reqs = rx.wait_for(1, SOON).await;
    let body = reqs[0].json();
    assert_eq!(body["status"], "firing", "{body}");
    let alert = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "Rack hot");
    let alert = alert.unwrap_or_else(|| panic!("no Rack hot alert in {body}"));
    assert_eq!(alert["labels"]["device"], "esp32-1");
    assert_eq!(alert["labels"]["severity"], "critical");
    // Without RZMON_PUBLIC_URL the link is the dashboard's own address (here: the loopback
    // listener), not empty.
    assert_eq!(body["externalURL"], app.url(""), "{body}");
    assert_eq!(alert["generatorURL"], app.url("/#/alerts"), "{body}");
    let shown = wait_until(SOON, || async {
        let (_, v) = app.call("GET", "/alerts?state=active", &t, None).await;
        v["alerts"].as_array().is_some_and(|l| {
            l.iter().any(|a| {
                a["rule"] == "Rack hot"
                    && a["deliveries"][0]["state"] == "sent"
                    && a["deliveries"][0]["channel"] == "Hook"
            })
        })
    });
    assert!(
        shown.await,
        "{}",
        app.call("GET", "/alerts", &t, None).await.1
    );
}
