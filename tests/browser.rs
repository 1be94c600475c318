//! The dashboard in a real headless Chromium (Debian's `chromium` + `chromedriver`), driven over
//! WebDriver, against the real binary with a simulated device. A step that fails saves a
//! screenshot under `target/browser-screenshots/`. A missing browser fails the test.

use crate::receiver::Receiver;
use crate::util::browser::{Browser, open_at, step};
use crate::util::*;
use serde_json::json;
use std::time::Duration;

/// Waits until the temperature chart has drawn points (the page sets `data-points`).
async fn chart_points(b: &Browser) -> Result<(), String> {
    b.wait("#chart-tmp canvas", SOON).await?;
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let el = b.wait("#chart-tmp", SOON).await?;
        let n: usize = el
            .attr("data-points")
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n > 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err("the temperature chart drew no points".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new alert reaches three channels: the webhook made in the editor delivers ("sent"), a
/// receiver that refuses it with 400 ("failed: HTTP 400 ... no such hook"), and one in quiet
/// hours ("held by quiet hours until ..."). The active card and the history row show all three.
async fn alert_deliveries(
    app: &TestApp,
    token: &str,
    door: &Device,
    b: &Browser,
    rx: &Receiver,
) -> Result<(), String> {
    let refusing = Receiver::start().await;
    refusing.answer(400, r#"{"message":"no such hook"}"#);
    // Quiet from an hour ago to an hour ahead, in the server's (the system's) time zone.
    let zone = rzmon::notify::policy::time_zone(None)?;
    let now = jiff::Timestamp::now().to_zoned_datetime(zone);
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let hhmm = |m: i32| {
        format!(
            "{:02}:{:02}",
            m.rem_euclid(1440) / 60,
            m.rem_euclid(1440) % 60
        )
    };
    let channels = [
        ("E2E refused", refusing.url("/gone"), json!(null)),
        (
            "E2E quiet",
            rx.url("/quiet"),
            json!({"start": hhmm(minute - 60), "end": hhmm(minute + 60)}),
        ),
    ];
    for (name, url, quiet) in channels {
        let body = json!({"name": name, "kind": "webhook", "settings": {"url": url},
                          "group_wait_s": 0, "quiet_hours": quiet});
        let (status, v) = app.post("/channels", Some(token), body).await;
        if status != 201 {
            return Err(format!("channel {name} not created: {status} {v}"));
        }
    }
    let (status, rule) = app
        .post(
            "/alert-rules",
            Some(token),
            json!({"name": "E2E delivered", "kind": "threshold", "metric": "lf", "op": "above",
                   "value": 90, "severity": "warning", "devices": ["door"]}),
        )
        .await;
    if status != 201 {
        return Err(format!("rule not created: {status} {rule}"));
    }
    door.publish("telemetry", r#"{"tmp":21.0,"lf":95.0,"locked":true}"#)
        .await;
    let shows_all = |t: &str| {
        t.contains("E2E hook · alert: sent")
            && t.contains("E2E refused · alert: failed: HTTP 400")
            && t.contains("no such hook")
            && t.contains("E2E quiet · alert: held by quiet hours until")
    };
    b.wait_text("#alerts-active", SOON, |t| {
        t.contains("E2E delivered") && shows_all(t)
    })
    .await?;
    b.wait_text("#alerts-history", SOON, shows_all).await?;
    // The screenshot (ok-alert-deliveries.png) shows the card.
    b.js("document.getElementById('alerts-active').scrollIntoView()")
        .await?;
    let got = refusing.requests();
    if got.len() != 1 {
        return Err(format!("the refusing receiver got {} requests", got.len()));
    }
    let hook = rx.requests();
    if hook.iter().any(|r| r.path == "/quiet") {
        return Err("the channel in quiet hours sent a warning".into());
    }
    if !hook
        .iter()
        .any(|r| r.path == "/hook" && r.text().contains("E2E delivered"))
    {
        return Err("the webhook did not get the alert".into());
    }
    Ok(())
}

/// The whole dashboard against the real server, a simulated device and a scripted device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_end_to_end() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let stop = app.simulator("sim-1", 0.5);
    let door = app.device("door").await;
    door.subscribe_commands().await;
    door.publish("status", "online").await;
    door.publish("telemetry", r#"{"tmp":21.0,"lf":40.0,"locked":true}"#)
        .await;
    assert!(app.wait_rows(&token, "door", 1).await);

    let b = Browser::start().await;
    let c = b.c();
    step(&b, "wrong-login", async {
        c.goto(&app.url("/")).await.map_err(|e| e.to_string())?;
        b.fill("#login-user", "admin").await?;
        b.fill("#login-password", "wrong-password").await?;
        b.click("#login-submit").await?;
        b.wait_text("#login-error", SOON, |t| {
            t.contains("Wrong username or password")
        })
        .await
        .map(drop)
    })
    .await;
    step(&b, "login", async {
        b.fill("#login-password", ADMIN_PASSWORD).await?;
        b.click("#login-submit").await?;
        b.wait("[data-device=\"door\"]", SOON).await.map(drop)
    })
    .await;
    step(&b, "live-tile", async {
        door.publish("telemetry", r#"{"tmp":27.3,"lf":44.0,"locked":false}"#)
            .await;
        b.wait_text(
            "[data-device=\"door\"] [data-field=\"tmp\"]",
            Duration::from_secs(2),
            |t| t.contains("27.3") || t.contains("27,3"),
        )
        .await
        .map(drop)
    })
    .await;
    step(&b, "history", async {
        b.click("#nav-history").await?;
        chart_points(&b).await?;
        // 24 h is drawn from the server-side summary (/data/summary); forget the old count first.
        b.c()
            .execute(
                "document.getElementById('chart-tmp').removeAttribute('data-points')",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        b.click("#range-24h").await?;
        chart_points(&b).await
    })
    .await;
    step(&b, "incident", async {
        b.click("#nav-incidents").await?;
        b.wait("#incidents-table", SOON).await?;
        door.publish("incident", r#"{"type":"door_forced_e2e","message":"test"}"#)
            .await;
        b.wait_text("#incidents-table", SOON, |t| t.contains("door_forced_e2e"))
            .await
            .map(drop)
    })
    .await;
    step(&b, "alerts", async {
        let (status, rule) = app
            .post(
                "/alert-rules",
                Some(&token),
                json!({"name": "E2E hot", "kind": "threshold", "metric": "tmp", "op": "above",
                       "value": 50, "severity": "critical", "devices": ["door"]}),
            )
            .await;
        if status != 201 {
            return Err(format!("rule not created: {status} {rule}"));
        }
        b.click("#nav-alerts").await?;
        b.wait("#alert-rules-table", SOON).await?;
        door.publish("telemetry", r#"{"tmp":55.5,"lf":40.0,"locked":true}"#)
            .await;
        b.wait_text("#alerts-active", SOON, |t| {
            t.contains("E2E hot") && t.contains("55.5 °C")
        })
        .await?;
        b.wait_text("#alert-badge", SOON, |t| t.trim() == "1")
            .await?;
        b.click("#alerts-active [data-ack]").await?;
        b.wait_text("#alerts-active", SOON, |t| {
            t.contains("acknowledged by admin")
        })
        .await?;
        let (_, active) = app.get("/alerts?state=acknowledged", Some(&token)).await;
        if active["alerts"].as_array().map_or(0, Vec::len) != 1 {
            return Err(format!("not acknowledged in the API: {active}"));
        }
        b.wait_text("#alert-rules-table", SOON, |t| {
            t.contains("Temperature high")
        })
        .await?;
        // The editor changes the threshold of the rule.
        let id = rule["id"].as_i64().unwrap_or_default();
        b.click(&format!("[data-rule-edit=\"{id}\"]")).await?;
        b.fill("#rule-value", "60").await?;
        b.click("#rule-save").await?;
        let saved = wait_until(SOON, || async {
            let (_, rules) = app.get("/alert-rules", Some(&token)).await;
            rules["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["id"] == id && r["value"] == 60.0)
        })
        .await;
        if !saved {
            return Err("the rule editor did not save the new threshold".into());
        }
        b.wait_text(&format!("[data-rule=\"{id}\"]"), SOON, |t| t.contains("60"))
            .await
            .map(drop)
    })
    .await;
    let rx = Receiver::start().await;
    step(&b, "channels", async {
        // A webhook channel added in the Alerts page's editor; Send test reaches a real
        // receiver on loopback and the page reports the delivery.
        b.wait("#channel-add", SOON).await?;
        b.click("#channel-add").await?;
        b.wait("#channel-kind", SOON).await?;
        b.c()
            .execute(
                "const k = document.getElementById('channel-kind'); k.value = 'webhook'; \
                 k.dispatchEvent(new Event('change'));",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        b.fill("#channel-name", "E2E hook").await?;
        b.fill("#channel-s-url", &rx.url("/hook")).await?;
        b.fill("#channel-group-wait", "0").await?;
        b.click("#channel-save").await?;
        b.wait_text("#channels-list", SOON, |t| t.contains("E2E hook"))
            .await?;
        b.click("#channels-list [data-action=\"test\"]").await?;
        b.wait_text("#channel-test-result", SOON, |t| {
            t.contains("E2E hook") && t.contains("Delivered")
        })
        .await?;
        let got = rx.wait_for(1, SOON).await;
        let body = got.first().map(|r| r.json()).unwrap_or_default();
        if body["version"] != "4" {
            return Err(format!("the receiver got no webhook test message: {body}"));
        }
        b.wait_text("#channels-list", SOON, |t| t.contains("sent"))
            .await
            .map(drop)
    })
    .await;
    step(&b, "alert-deliveries", async {
        alert_deliveries(&app, &token, &door, &b, &rx).await
    })
    .await;
    step(&b, "alert-deliveries-phone", async {
        // The same record at phone width, in German, without sideways scrolling.
        open_at(&b, "de", (390, 844), "#/alerts").await?;
        b.wait_text("#alerts-history", SOON, |t| {
            t.contains("E2E hook · Alarm: gesendet")
                && t.contains("E2E refused · Alarm: fehlgeschlagen: HTTP 400")
                && t.contains("wegen Ruhezeit zurückgehalten bis")
                // E2E hot: acknowledged, then resolved by the raised threshold; both kept.
                && t.contains("bestätigt von admin")
                && t.contains(" · behoben ")
        })
        .await?;
        b.no_sideways_scroll().await?;
        // The screenshot shows the history rows.
        b.js("document.querySelector('#alerts-history tr').scrollIntoView()")
            .await
            .map(drop)
    })
    .await;
    step(&b, "desktop-again", async {
        open_at(&b, "en", (1280, 900), "#/alerts").await?;
        b.wait_text("#nav-access", SOON, |t| t.contains("Access"))
            .await
            .map(drop)
    })
    .await;
    step(&b, "access", async {
        b.click("#nav-access").await?;
        b.fill("#access-add-id", "E2E0CAFE").await?;
        b.fill("#access-add-name", "Erika").await?;
        b.click("#access-add-submit").await?;
        b.wait_text("#access-list", SOON, |t| {
            t.contains("E2E0CAFE") && t.contains("Erika")
        })
        .await
        .map(drop)
    })
    .await;
    step(&b, "config", async {
        b.click("#nav-devices").await?;
        b.click("#config-device option[value=\"sim-1\"]").await?;
        b.click("#config-load").await?;
        b.fill("#config-fields input[data-key=\"tmp_max\"]", "26.5")
            .await?;
        b.click("#config-save").await?;
        b.wait_text("#config-status", SOON, |t| !t.trim().is_empty())
            .await?;
        let confirmed = wait_until(SOON, || async {
            app.get("/getConfig?device=sim-1", Some(&token)).await.1["config"]["tmp_max"] == 26.5
        })
        .await;
        if !confirmed {
            return Err("the simulated device's config did not change".into());
        }
        Ok(())
    })
    .await;
    // Regression: switching device while a getConfig is pending showed the first device's
    // late answer under the second, and Save then posted to the first device.
    step(&b, "config-switch", async {
        b.click("#nav-devices").await?;
        b.click("#config-device option[value=\"door\"]").await?;
        b.click("#config-load").await?;
        let msg_id = loop {
            let p = door
                .next_publish(SOON)
                .await
                .ok_or("the door got no getConfig")?;
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
            if v["command"] == "getConfig" {
                break v["msgID"].clone();
            }
        };
        b.click("#config-device option[value=\"sim-1\"]").await?;
        b.click("#config-load").await?;
        b.wait("#config-fields input[data-key=\"tmp_max\"]", SOON)
            .await?;
        // The door answers late; a telemetry row after it shows ingest has handled the reply.
        door.publish(
            "reply",
            json!({"msgID": msg_id, "ok": true, "config": {"door_only": 1}}).to_string(),
        )
        .await;
        let rows = || {
            app.db()
                .query_row(
                    "SELECT count(*) FROM telemetry t JOIN device_keys k ON k.id = t.device_key
                     WHERE k.name = 'door'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
        };
        let before = rows();
        door.publish("telemetry", r#"{"tmp":22.0,"lf":41.0,"locked":true}"#)
            .await;
        if !wait_until(SOON, || async { rows() > before }).await {
            return Err("the door's telemetry was not stored".into());
        }
        // Save round-trips through sim-1, long after the door's answer left the server.
        b.fill("#config-fields input[data-key=\"tmp_max\"]", "25.5")
            .await?;
        b.click("#config-save").await?;
        b.wait_text("#config-status", SOON, |t| {
            t.contains("sim-1") && !t.contains('…')
        })
        .await?;
        let shown = c
            .execute(
                "const f = document.getElementById('config-form'); \
                 return [f.dataset.device, !!document.querySelector('[data-key=\"door_only\"]')];",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        if shown != json!(["sim-1", false]) {
            return Err(format!("the form shows [device, door field] = {shown}"));
        }
        let saved = wait_until(SOON, || async {
            app.get("/getConfig?device=sim-1", Some(&token)).await.1["config"]["tmp_max"] == 25.5
        })
        .await;
        if !saved {
            return Err("Save did not reach sim-1".into());
        }
        let history = app.get("/configHistory?device=door", Some(&token)).await.1;
        if history["history"].as_array().is_some_and(|h| !h.is_empty()) {
            return Err(format!("a config change went to the door: {history}"));
        }
        Ok(())
    })
    .await;
    step(&b, "device-add", async {
        b.click("#nav-devices").await?;
        b.fill("#device-add-id", "esp32-ui").await?;
        b.click("#device-add-submit").await?;
        let pw = b
            .wait_text("#device-add-password", SOON, |t| t.len() >= 20)
            .await?;
        let d = Device::connect(app.mqtt, "esp32-ui", Some(("esp32-ui", pw.trim()))).await;
        d.wait_connack()
            .await
            .map_err(|e| format!("the shown credentials do not work: {e}"))
    })
    .await;
    step(&b, "password", async {
        b.click("#nav-account").await?;
        b.fill("#passwd-current", ADMIN_PASSWORD).await?;
        b.fill("#passwd-new", "browser-new-pw-1").await?;
        b.fill("#passwd-repeat", "browser-new-pw-1").await?;
        b.click("#passwd-submit").await?;
        b.wait_text("#passwd-status", SOON, |t| {
            !t.trim().is_empty() && !t.contains('…')
        })
        .await?;
        // The change ended every session, this tab's live socket too (closed 1008, whichever
        // comes first, that or the answer): the tab stays signed in and goes live again with
        // the new token.
        b.wait("#conn-state[data-state='live']", SOON).await?;
        let signed_out = b
            .c()
            .execute(
                "return !document.getElementById('login-view').hidden;",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        if signed_out == json!(true) {
            return Err("the password change signed this tab out".into());
        }
        let (status, _) = app
            .post(
                "/login",
                None,
                json!({"username": "admin", "password": "browser-new-pw-1"}),
            )
            .await;
        if status != 200 {
            return Err(format!("login with the new password answered {status}"));
        }
        Ok(())
    })
    .await;
    step(&b, "logout", async {
        b.click("#nav-account").await?;
        b.click("#logout").await?;
        b.wait("#login-form", SOON).await.map(drop)
    })
    .await;
    stop.cancel();
    // Regression: 12 Chromium processes (~1 GiB) and the profile outlived a passing test.
    b.close().await;
}

/// With TLS on, the Devices page names the MQTT/TLS port and offers the generated CA for
/// download (plain HTTP kept on with `RZMON_PLAIN=on`, so the browser needs no trust setup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_page_offers_the_ca_when_tls_is_on() {
    let app = TestApp::start_with(&[("RZMON_TLS", "auto"), ("RZMON_PLAIN", "on")]).await;
    let mqtts = app.mqtts.expect("MQTTS").port();
    let b = Browser::start().await;
    let c = b.c();
    step(&b, "tls-login", async {
        c.goto(&app.url("/")).await.map_err(|e| e.to_string())?;
        b.fill("#login-user", "admin").await?;
        b.fill("#login-password", ADMIN_PASSWORD).await?;
        b.click("#login-submit").await?;
        // The navigation becomes clickable once the sign-in is through.
        let deadline = std::time::Instant::now() + SOON;
        while let Err(e) = b.click("#nav-devices").await {
            if std::time::Instant::now() > deadline {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
    step(&b, "tls-devices", async {
        b.wait_text("#esp-mqtts-port", SOON, |t| t.contains(&mqtts.to_string()))
            .await?;
        let link = b.wait("#esp-ca", SOON).await?;
        let href = link.attr("href").await.map_err(|e| e.to_string())?;
        if href.as_deref() != Some("/tls/ca.pem") {
            return Err(format!("CA link: {href:?}"));
        }
        let pem = app
            .client
            .get(app.url("/tls/ca.pem"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = pem.text().await.map_err(|e| e.to_string())?;
        if !body.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(format!("not a PEM certificate: {body:.40}"));
        }
        Ok(())
    })
    .await;
    b.close().await;
}
