//! Notification delivery end to end inside the process: the real store on a temporary file,
//! the real `Notifier` and its workers, real HTTP and SMTP receivers on loopback. Notices go in
//! through `Notifier::submit`, exactly as the rule engine hands them over.

use crate::receiver::{Receiver, SmtpServer, SmtpTls, black_hole, free_addr};
use crate::util::SOON;
use rzmon::metrics::Metrics;
use rzmon::model::{DeviceId, now_ms};
use rzmon::notify::{self, Notice, NoticeKind, Notifier, Settings, Severity};
use rzmon::store::{ChannelSpec, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The delivery service on its own database.
struct Outbox {
    _dir: tempfile::TempDir,
    store: Store,
    notifier: Notifier,
    stop: CancellationToken,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Retries start at 20 ms here so that "three 500s, then 200" takes well under a second.
async fn outbox() -> Outbox {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("rzmon.db")).unwrap();
    let settings = Settings {
        public_url: Some("http://rz.test:8080".into()),
        time_zone: jiff::tz::TimeZone::UTC,
        retry_base_ms: 20,
    };
    let notifier = Notifier::new(store.clone(), settings, Arc::new(Metrics::default())).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(notify::run(notifier.clone(), stop.clone()));
    Outbox {
        _dir: dir,
        store,
        notifier,
        stop,
    }
}

impl Outbox {
    /// Adds a channel; `policy` overrides the defaults (group_wait_s 0 unless given).
    fn channel(&self, kind: &str, settings: Value, policy: Value) -> i64 {
        let mut p = json!({"group_wait_s": 0});
        p.as_object_mut()
            .unwrap()
            .extend(policy.as_object().cloned().unwrap_or_default());
        let policy =
            serde_json::to_value(serde_json::from_value::<notify::policy::Policy>(p).unwrap())
                .unwrap();
        let id = self
            .store
            .insert_channel(&ChannelSpec {
                name: format!("{kind} test"),
                kind: kind.into(),
                settings,
                policy,
                enabled: true,
            })
            .unwrap();
        self.notifier.channels_changed(Some(id));
        id
    }

    fn submit(&self, alert_id: i64, kind: NoticeKind, severity: Severity) {
        self.notifier
            .submit(notice(alert_id, kind, severity))
            .unwrap();
    }

    /// Waits until every delivery of `alert_id` is final; their states.
    async fn settled(&self, alert_id: i64) -> Vec<(String, String, Option<String>, i64)> {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let rows = self.store.deliveries_for_alert(alert_id).unwrap();
            let open = rows
                .iter()
                .any(|r| ["pending", "held", "suppressed"].contains(&r.state.as_str()));
            if !rows.is_empty() && !open {
                return rows
                    .into_iter()
                    .map(|r| (r.notice, r.state, r.detail, r.attempts))
                    .collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alert {alert_id} never settled: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a delivery of `alert_id` is in `state`.
    async fn reaches(&self, alert_id: i64, state: &str) -> rzmon::store::DeliveryRow {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let rows = self.store.deliveries_for_alert(alert_id).unwrap();
            if let Some(r) = rows.into_iter().find(|r| r.state == state) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "alert {alert_id} never reached {state}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn notice(alert_id: i64, kind: NoticeKind, severity: Severity) -> Notice {
    Notice {
        alert_id,
        kind,
        rule_id: 1,
        rule_name: "Temperature high".into(),
        device: DeviceId::parse("esp32-1"),
        severity,
        summary: format!("esp32-1: temperature 36.{alert_id} °C ≥ 35 °C"),
        value: Some(36.2),
        threshold: Some(35.0),
        started_ms: now_ms() - 1000,
        at_ms: now_ms(),
        labels: BTreeMap::from([("metric".to_owned(), "tmp".to_owned())]),
    }
}

fn webhook(r: &Receiver) -> Value {
    json!({"url": r.url("/hook")})
}

/// A receiver that answers 500 three times and then 200 gets the message exactly once more:
/// four requests in all, the delivery record says sent after 4 attempts.
#[tokio::test]
async fn retries_after_5xx_until_delivered_once() {
    let rx = Receiver::start().await;
    for _ in 0..3 {
        rx.answer(500, r#"{"error":"busy"}"#);
    }
    let o = outbox().await;
    o.channel("webhook", webhook(&rx), json!({}));
    o.submit(1, NoticeKind::Firing, Severity::Critical);
    let got = o.settled(1).await;
    assert_eq!(
        got,
        vec![("firing".into(), "sent".into(), Some("HTTP 200".into()), 4)]
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    assert!(
        reqs.iter()
            .all(|r| r.json()["alerts"][0]["fingerprint"] == format!("{:016x}", 1))
    );
}

/// A receiver that is down (connection refused) gets the queued message when it comes back.
#[tokio::test]
async fn queued_message_reaches_a_receiver_that_comes_back() {
    let addr = free_addr().await;
    let o = outbox().await;
    o.channel(
        "webhook",
        json!({"url": format!("http://{addr}/hook")}),
        json!({}),
    );
    o.submit(2, NoticeKind::Firing, Severity::Warning);
    let retrying = o.reaches(2, "pending").await;
    let deadline = tokio::time::Instant::now() + SOON;
    let mut row = retrying;
    while row.attempts < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retries seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
        row = o.store.deliveries_for_alert(2).unwrap().remove(0);
    }
    let detail = row.detail.unwrap_or_default();
    assert!(detail.contains("connection refused"), "{detail}");
    let rx = Receiver::start_on(addr).await;
    let reqs = rx.wait_for(1, SOON).await;
    assert_eq!(reqs[0].json()["status"], "firing");
    assert_eq!(o.settled(2).await[0].1, "sent");
}

/// Other 4xx answers are not retried: reported failed with the receiver's reason.
#[tokio::test]
async fn client_errors_fail_without_retry() {
    let rx = Receiver::start().await;
    rx.answer(404, r#"{"message":"no such hook"}"#);
    let o = outbox().await;
    o.channel("webhook", webhook(&rx), json!({}));
    o.submit(3, NoticeKind::Firing, Severity::Warning);
    let got = o.settled(3).await;
    assert_eq!(got[0].1, "failed");
    assert_eq!(got[0].3, 1);
    let detail = got[0].2.clone().unwrap();
    assert!(
        detail.contains("HTTP 404") && detail.contains("no such hook"),
        "{detail}"
    );
}

/// Quiet hours hold a warning and let a critical through; the warning goes out when the quiet
/// hours end (here: when they are removed), because it is still firing.
#[tokio::test]
async fn quiet_hours_hold_warnings_and_pass_criticals() {
    let rx = Receiver::start().await;
    let o = outbox().await;
    // An hour before now until an hour after now (UTC, the zone of this outbox).
    let minute = (now_ms() / 60_000) % 1440;
    let hhmm = |m: i64| {
        format!(
            "{:02}:{:02}",
            m.rem_euclid(1440) / 60,
            m.rem_euclid(1440) % 60
        )
    };
    let quiet = json!({"start": hhmm(minute - 60), "end": hhmm(minute + 60)});
    let id = o.channel("webhook", webhook(&rx), json!({"quiet_hours": quiet}));
    o.submit(10, NoticeKind::Firing, Severity::Warning);
    o.submit(11, NoticeKind::Firing, Severity::Critical);
    let reqs = rx.wait_for(1, SOON).await;
    let body = reqs[0].json();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["alerts"][0]["labels"]["severity"], "critical");
    let held = o.reaches(10, "held").await;
    assert_eq!(held.detail.as_deref(), Some("held by quiet hours"));

    // The quiet hours end: the still-firing warning goes out.
    let mut row = o.store.channel(id).unwrap().unwrap();
    row.policy["quiet_hours"] = Value::Null;
    let spec = ChannelSpec {
        name: row.name,
        kind: row.kind,
        settings: row.settings,
        policy: row.policy,
        enabled: true,
    };
    o.store.update_channel(id, &spec).unwrap();
    o.notifier.channels_changed(Some(id));
    let reqs = rx.wait_for(2, SOON).await;
    assert_eq!(reqs[1].json()["alerts"][0]["labels"]["severity"], "warning");
    assert_eq!(o.settled(10).await[0].1, "sent");
}

/// Alerts firing within group_wait go out as one message per channel.
#[tokio::test]
async fn grouping_merges_alerts_into_one_message() {
    let rx = Receiver::start().await;
    let o = outbox().await;
    o.channel("webhook", webhook(&rx), json!({"group_wait_s": 1}));
    for id in 20..23 {
        o.submit(id, NoticeKind::Firing, Severity::Warning);
    }
    for id in 20..23 {
        assert_eq!(o.settled(id).await[0].1, "sent");
    }
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let body = reqs[0].json();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(body["commonLabels"]["alertname"], "Temperature high");
}

/// The storm cap: 2 messages per window go out, the rest come as one summary afterwards.
#[tokio::test]
async fn storm_cap_sends_one_summary() {
    let rx = Receiver::start().await;
    let o = outbox().await;
    o.channel(
        "webhook",
        webhook(&rx),
        json!({"storm_cap": 2, "storm_window_s": 2}),
    );
    for (i, id) in (30..32).enumerate() {
        o.submit(id, NoticeKind::Firing, Severity::Critical);
        rx.wait_for(i + 1, SOON).await;
    }
    for id in 32..35 {
        o.submit(id, NoticeKind::Firing, Severity::Critical);
        o.reaches(id, "suppressed").await;
    }
    assert_eq!(rx.requests().len(), 2);
    let reqs = rx.wait_for(3, SOON).await;
    let summary = reqs[2].json();
    assert_eq!(summary["alerts"].as_array().unwrap().len(), 3, "{summary}");
    assert!(
        summary["commonAnnotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("storm cap")
    );
    for id in 32..35 {
        assert_eq!(o.settled(id).await[0].1, "sent");
    }
    assert_eq!(rx.requests().len(), 3);
}

/// A resolved notice goes out only on the channel that got the firing one.
#[tokio::test]
async fn resolved_only_where_the_firing_was_sent() {
    let good = Receiver::start().await;
    let refusing = Receiver::start().await;
    refusing.answer(400, r#"{"error":"bad"}"#);
    let o = outbox().await;
    o.channel("webhook", webhook(&good), json!({}));
    o.channel("webhook", webhook(&refusing), json!({}));
    o.submit(40, NoticeKind::Firing, Severity::Warning);
    o.settled(40).await;
    o.submit(40, NoticeKind::Resolved, Severity::Warning);
    let reqs = good.wait_for(2, SOON).await;
    assert_eq!(reqs[1].json()["status"], "resolved");
    assert_ne!(
        reqs[1].json()["alerts"][0]["endsAt"],
        "0001-01-01T00:00:00Z"
    );
    let states: Vec<(String, String)> = o
        .settled(40)
        .await
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert!(
        states.contains(&("resolved".into(), "skipped".into())),
        "{states:?}"
    );
    assert_eq!(refusing.requests().len(), 1);
}

/// A muted channel records the notice as muted and sends nothing.
#[tokio::test]
async fn muted_channel_sends_nothing() {
    let rx = Receiver::start().await;
    let o = outbox().await;
    let id = o.channel("webhook", webhook(&rx), json!({}));
    o.store
        .set_channel_mute(id, Some(now_ms() + 60_000))
        .unwrap();
    o.submit(50, NoticeKind::Firing, Severity::Critical);
    assert_eq!(o.settled(50).await[0].1, "muted");
    assert!(rx.requests().is_empty());
}

/// A hung channel (accepts, never answers) does not delay another channel.
#[tokio::test]
async fn a_dead_channel_does_not_delay_others() {
    let (hole, _keep) = black_hole().await;
    let rx = Receiver::start().await;
    let o = outbox().await;
    o.channel(
        "webhook",
        json!({"url": format!("http://{hole}/hook")}),
        json!({}),
    );
    o.channel("webhook", webhook(&rx), json!({}));
    let t = std::time::Instant::now();
    o.submit(60, NoticeKind::Firing, Severity::Critical);
    rx.wait_for(1, SOON).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

/// Each channel's request as its service documents it: ntfy (JSON publish, Bearer), Gotify
/// (`/message`, `X-Gotify-Key`), webhook (v4 body, custom header, HMAC), Telegram
/// (`/bot<token>/sendMessage`, 429 with `retry_after`), Discord, Slack.
#[tokio::test]
async fn request_shapes_per_channel() {
    let rx = Receiver::start().await;
    let o = outbox().await;
    o.channel(
        "ntfy",
        json!({"server": rx.url("/ntfy"), "topic": "rz", "token": "tk_ntfy", "tags": ["rz"]}),
        json!({}),
    );
    o.channel(
        "gotify",
        json!({"server": rx.url("/gotify"), "token": "gotify-key"}),
        json!({}),
    );
    o.channel(
        "webhook",
        json!({"url": rx.url("/hook"), "headers": {"X-Env": "test"}, "hmac_key": "k3y"}),
        json!({}),
    );
    o.channel("discord", json!({"url": rx.url("/discord")}), json!({}));
    o.channel("slack", json!({"url": rx.url("/slack")}), json!({}));
    o.submit(70, NoticeKind::Firing, Severity::Critical);
    let reqs = rx.wait_for(5, SOON).await;
    let by = |p: &str| {
        reqs.iter()
            .find(|r| r.path.starts_with(p))
            .unwrap_or_else(|| panic!("no {p}"))
            .clone()
    };

    let ntfy = by("/ntfy");
    assert_eq!(
        (ntfy.method.as_str(), ntfy.path.as_str()),
        ("POST", "/ntfy/")
    );
    assert_eq!(ntfy.header("authorization"), Some("Bearer tk_ntfy"));
    let b = ntfy.json();
    assert_eq!(b["topic"], "rz");
    assert_eq!(b["priority"], 5);
    assert_eq!(b["tags"], json!(["rz", "rotating_light"]));
    assert_eq!(b["click"], "http://rz.test:8080/#/alerts");
    assert!(
        b["title"]
            .as_str()
            .unwrap()
            .contains("Temperature high on esp32-1")
    );
    assert!(
        b["message"].as_str().unwrap().contains("36.70 °C ≥ 35 °C"),
        "{b}"
    );

    let g = by("/gotify");
    assert_eq!(g.path, "/gotify/message");
    assert_eq!(g.header("x-gotify-key"), Some("gotify-key"));
    assert_eq!(g.json()["priority"], 8);
    assert!(g.json()["message"].is_string() && g.json()["title"].is_string());

    let w = by("/hook");
    assert_eq!(w.header("x-env"), Some("test"));
    assert_eq!(w.header("content-type"), Some("application/json"));
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k3y").unwrap();
    mac.update(&w.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(w.header("x-rzmon-signature"), Some(want.as_str()));
    let b = w.json();
    assert_eq!(b["version"], "4");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "webhook test");
    let a = &b["alerts"][0];
    assert_eq!(a["labels"]["device"], "esp32-1");
    assert_eq!(a["labels"]["metric"], "tmp");
    assert_eq!(a["annotations"]["threshold"], "35");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");

    assert!(
        by("/discord").json()["content"]
            .as_str()
            .unwrap()
            .contains("[CRITICAL]")
    );
    assert!(
        by("/slack").json()["text"]
            .as_str()
            .unwrap()
            .contains("[CRITICAL]")
    );
}

/// Telegram: the token goes into the path, a 429 is retried after its `retry_after`.
#[tokio::test]
async fn telegram_shape_and_retry_after() {
    let rx = Receiver::start().await;
    rx.answer(429, r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#);
    let o = outbox().await;
    o.channel(
        "telegram",
        json!({"token": "123:ABC", "chat_id": -100, "api_url": rx.url("")}),
        json!({}),
    );
    o.submit(80, NoticeKind::Firing, Severity::Warning);
    let reqs = rx.wait_for(2, SOON).await;
    assert_eq!(reqs[1].path, "/bot123:ABC/sendMessage");
    assert_eq!(reqs[1].json()["chat_id"], -100);
    assert!(
        reqs[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("[WARNING]")
    );
    // Not before the second the service asked for (the base back-off here is 20 ms).
    let pause = reqs[1].at - reqs[0].at;
    assert!(
        pause >= Duration::from_millis(950),
        "retried after {pause:?}"
    );
    let row = o.settled(80).await;
    assert_eq!((row[0].1.as_str(), row[0].3), ("sent", 2));
}

/// E-mail over SMTP to a loopback server: envelope, login, subject and text.
#[tokio::test]
async fn email_reaches_the_smtp_server() {
    let smtp = SmtpServer::start().await;
    let o = outbox().await;
    o.channel(
        "email",
        json!({"host": "127.0.0.1", "port": smtp.addr.port(), "security": "none",
               "username": "rz", "password": "smtp-pw",
               "from": "rzmon <rz@example.com>", "to": ["ops@example.com"]}),
        json!({}),
    );
    o.submit(90, NoticeKind::Firing, Severity::Critical);
    let mails = smtp.wait_for(1, SOON).await;
    assert_eq!(mails[0].from, "<rz@example.com>");
    assert_eq!(mails[0].to, vec!["<ops@example.com>"]);
    assert!(
        mails[0]
            .data
            .contains("Subject: [CRITICAL] Temperature high on esp32-1"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].data.contains("36.90"), "{}", mails[0].data);
    assert_eq!(o.settled(90).await[0].1, "sent");
}

/// STARTTLS and implicit TLS against a loopback SMTP server whose certificate comes from its own
/// CA, trusted through the channel's `ca` setting; without it the test send names the TLS failure.
#[tokio::test]
async fn email_over_starttls_and_implicit_tls() {
    let o = outbox().await;
    for (mode, security, alert) in [
        (SmtpTls::Starttls, "starttls", 91),
        (SmtpTls::Implicit, "tls", 92),
    ] {
        let smtp = SmtpServer::start_tls(mode).await;
        let settings = json!({"host": "127.0.0.1", "port": smtp.addr.port(),
            "security": security, "username": "rz", "password": "smtp-pw",
            "from": "rz@example.com", "to": ["ops@example.com"], "ca": smtp.ca_pem});
        let id = o.channel("email", settings.clone(), json!({}));
        o.submit(alert, NoticeKind::Firing, Severity::Critical);
        let mails = smtp.wait_for(1, SOON).await;
        assert!(mails[0].tls, "{security}: the mail did not travel over TLS");
        assert_eq!(mails[0].to, vec!["<ops@example.com>"], "{security}");
        let states: Vec<String> = o.settled(alert).await.into_iter().map(|d| d.1).collect();
        assert!(states.iter().all(|s| s == "sent"), "{security}: {states:?}");
        o.store.delete_channel(id).unwrap();
        o.notifier.channels_changed(Some(id));

        // The same server without its CA: the certificate is not trusted, and the answer says so.
        let mut untrusted = settings;
        untrusted.as_object_mut().unwrap().remove("ca");
        let spec = ChannelSpec {
            name: "untrusted".into(),
            kind: "email".into(),
            settings: untrusted,
            policy: json!({}),
            enabled: true,
        };
        let id = o.store.insert_channel(&spec).unwrap();
        let err = o.notifier.test(id, &spec).await.unwrap_err();
        assert!(err.contains("TLS with 127.0.0.1"), "{security}: {err}");
        assert_eq!(
            smtp.wait_for(1, SOON).await.len(),
            1,
            "nothing more arrived"
        );
        o.store.delete_channel(id).unwrap();
    }
}
