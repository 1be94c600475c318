//! The dashboard's story pages in a real headless Chromium, in English and German at a desktop
//! (1280×800) and a phone (390×844) viewport: the chart's time axis and number format, the
//! min–max band of a summarised range, the stale / never-connected / connection-lost tiles, the
//! timeline around a card swipe; once: access-log filter and "allow this card", device re-key.
//! Screenshots of every step stay in `target/browser-screenshots/ok-<step>-<lang>-<width>.png`.

use crate::util::browser::{Browser, ColorScheme, VIEWPORTS, step};
use crate::util::*;
use serde_json::json;
use std::time::Duration;

/// The page's colours: body background and the door-span fill.
async fn theme(b: &Browser) -> Result<serde_json::Value, String> {
    b.c()
        .execute(
            "const s = getComputedStyle(document.documentElement); \
             return [getComputedStyle(document.body).backgroundColor, s.getPropertyValue('--door-span').trim()];",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())
}

/// Two days of one reading a minute for `device`, written through the store writer into the
/// real database file (a device cannot backdate its messages): a daily temperature swing with noise, a flat 74 %
/// humidity, and the door unlocked for 20 minutes every 6 hours.
fn seed_history(app: &TestApp, device: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let readings = (1..=2880_i64)
        .map(|i| {
            let noise = ((i * 7919) % 100) as f64 / 100.0;
            let tmp = ((22.0 + 2.5 * (i as f64 / 229.0).sin() + noise) * 10.0).round() / 10.0;
            let locked = i % 360 >= 20;
            let payload = json!({"tmp": tmp, "lf": 74.0, "locked": locked});
            (now - 120_000 - i * 60_000, payload)
        })
        .collect();
    write_readings(&app.db_path(), device, readings);
}

/// Switches the dashboard's language (kept in localStorage) and the window size, reloads.
async fn setup(b: &Browser, lang: &str, (w, h): (u32, u32)) -> Result<(), String> {
    b.c()
        .set_window_size(w, h)
        .await
        .map_err(|e| e.to_string())?;
    // The window includes the browser's frame: grow it until the page itself is h high.
    let frame = b
        .c()
        .execute("return outerHeight - innerHeight", vec![])
        .await
        .map_err(|e| e.to_string())?;
    if let Some(fh) = frame.as_u64().filter(|&f| f > 0 && f < 400) {
        b.c()
            .set_window_size(w, h + fh as u32)
            .await
            .map_err(|e| e.to_string())?;
    }
    b.c()
        .execute(
            &format!("localStorage.setItem('rzmon.lang', '{lang}'); location.hash = '#/overview'; location.reload();"),
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    b.wait("#tiles", SOON).await?;
    let width = b
        .c()
        .execute("return window.innerWidth", vec![])
        .await
        .map_err(|e| e.to_string())?;
    // Phones report their CSS width; a desktop window may lose a few pixels to a scroll bar.
    if width
        .as_u64()
        .is_none_or(|v| v > u64::from(w) || v + 20 < u64::from(w))
    {
        return Err(format!("the viewport is {width} px wide, wanted {w}"));
    }
    Ok(())
}

/// The stale and never-connected tiles, and the panel with the incident from before the page
/// was opened, as a human label.
async fn overview(b: &Browser, lang: &str) -> Result<(), String> {
    b.wait("[data-device=\"gone\"][data-state=\"stale\"]", SOON)
        .await?;
    let tmp = "[data-device=\"gone\"] [data-field=\"tmp\"]";
    let text = b.wait_text(tmp, SOON, |t| t.contains("37")).await?;
    let want = if lang == "de" { "37,5 °C" } else { "37.5 °C" };
    if text.trim() != want {
        return Err(format!("the stale tile shows {text:?}, wanted {want:?}"));
    }
    let level = b.attr(tmp, "data-level").await?;
    if level != "stale" {
        return Err(format!(
            "the stale 37.5 °C is drawn as {level:?}, not greyed"
        ));
    }
    let seen = if lang == "de" {
        "zuletzt gesehen"
    } else {
        "last seen"
    };
    b.wait_text(
        "[data-device=\"gone\"] [data-field=\"last_seen\"]",
        SOON,
        |t| t.contains(seen),
    )
    .await?;
    let never = if lang == "de" {
        "noch nie verbunden"
    } else {
        "never connected"
    };
    b.wait_text(
        "[data-device=\"fresh\"][data-state=\"never\"] [data-field=\"online\"]",
        SOON,
        |t| t.contains(never),
    )
    .await?;
    let color = b
        .c()
        .execute(
            "const t = document.querySelector('[data-device=\"fresh\"]'); \
             const a = document.querySelector('[data-device=\"gone\"]'); \
             return [getComputedStyle(t).borderTopColor, getComputedStyle(a).borderTopColor, \
                     getComputedStyle(document.documentElement).getPropertyValue('--alarm').trim()];",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    if color[0] == color[2] || color[1] == color[2] {
        return Err(format!(
            "a stale or never-connected tile has the alarm border: {color}"
        ));
    }
    let label = if lang == "de" {
        "Manipulation am Gerät"
    } else {
        "Device tampered with"
    };
    b.wait_text("#ov-incidents", SOON, |t| t.contains(label))
        .await?;
    Ok(())
}

/// The 24 h chart: a min–max band, 24 h time ticks with the date in the language's format,
/// the legend's time label, decimal commas in German, the true reading count, labelled limits.
async fn chart(b: &Browser, lang: &str) -> Result<(), String> {
    b.c()
        .execute("location.hash = '#/history?device=hist'", vec![])
        .await
        .map_err(|e| e.to_string())?;
    b.wait("#chart-tmp canvas", SOON).await?;
    b.c()
        .execute(
            "document.getElementById('chart-tmp').removeAttribute('data-band')",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    b.click("#range-24h").await?;
    let deadline = std::time::Instant::now() + SOON;
    while b.attr("#chart-tmp", "data-band").await.ok().as_deref() != Some("true") {
        if std::time::Instant::now() > deadline {
            return Err("the 24 h chart drew no min–max band".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ticks = b.attr("#chart-tmp", "data-x-ticks").await?;
    let times: Vec<&str> = ticks.split('|').collect();
    let clock = |s: &str| {
        let hm = s.lines().next().unwrap_or_default();
        hm.len() == 5
            && hm.as_bytes()[2] == b':'
            && hm.replace(':', "").bytes().all(|c| c.is_ascii_digit())
    };
    let lower = ticks.to_lowercase();
    if times.len() < 3
        || !times.iter().all(|t| clock(t))
        || lower.contains("am")
        || lower.contains("pm")
    {
        return Err(format!("time ticks are not a 24 h clock: {ticks:?}"));
    }
    let dated: Vec<&str> = times.iter().filter_map(|t| t.lines().nth(1)).collect();
    let date_ok = |d: &&str| {
        let sep = if lang == "de" { '.' } else { '/' };
        let parts: Vec<&str> = d.split(sep).collect();
        parts.len() == 3
            && parts[2].len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    };
    if dated.is_empty() || !dated.iter().all(date_ok) {
        return Err(format!(
            "the axis dates are not in the {lang} format: {ticks:?}"
        ));
    }
    let legend = b
        .wait_text("#chart-tmp .u-legend", SOON, |t| !t.is_empty())
        .await?;
    let time = if lang == "de" { "Zeit" } else { "Time" };
    if !legend.contains(time) {
        return Err(format!("the legend does not say {time}: {legend:?}"));
    }
    let y = b.attr("#chart-tmp", "data-y-ticks").await?;
    if lang == "de" && y.contains('.') || lang == "en" && y.contains(',') {
        return Err(format!(
            "y ticks in the wrong number format for {lang}: {y:?}"
        ));
    }
    let range = b.attr("#chart-lf", "data-y-range").await?;
    let span: Vec<f64> = range.split(',').filter_map(|v| v.parse().ok()).collect();
    if span.len() != 2 || span[1] - span[0] > 20.0 || span[0] > 74.0 || span[1] < 74.0 {
        return Err(format!("the flat 74 % humidity got the axis {range}"));
    }
    let readings: usize = b
        .attr("#chart-tmp", "data-readings")
        .await?
        .parse()
        .unwrap_or(0);
    let buckets: usize = b
        .attr("#chart-tmp", "data-buckets")
        .await?
        .parse()
        .unwrap_or(0);
    if !(1400..=1500).contains(&readings) || !(300..=400).contains(&buckets) {
        return Err(format!(
            "{readings} readings in {buckets} buckets for 24 h of one a minute"
        ));
    }
    let words = if lang == "de" {
        "Messwerte in"
    } else {
        "readings in"
    };
    b.wait_text("#history-status", SOON, |t| {
        t.contains(words) && t.contains(&buckets.to_string())
    })
    .await?;
    let limits = b.attr("#chart-tmp", "data-thresholds").await?;
    if !limits.contains("Temperature high") || !limits.contains("30") {
        return Err(format!("the limit lines are not the rules': {limits}"));
    }
    Ok(())
}

/// From the access log's row of Erika's swipe to the timeline: who, the door, the room.
async fn timeline(b: &Browser, lang: &str) -> Result<(), String> {
    b.c()
        .execute("location.hash = '#/access'", vec![])
        .await
        .map_err(|e| e.to_string())?;
    b.click("#access-log tr[data-access-id=\"CAFE0042\"] [data-timeline]")
        .await?;
    let name = if lang == "de" {
        "Karte Erika (CAFE0042): Zutritt gewährt"
    } else {
        "card Erika (CAFE0042): granted"
    };
    let open = if lang == "de" {
        "Tür entriegelt"
    } else {
        "door unlocked"
    };
    b.wait_text("#tl-events", SOON, |t| t.contains(name) && t.contains(open))
        .await?;
    b.wait("#tl-at-mark", SOON).await?;
    let tmp = b
        .wait_text(
            "#tl-moment [data-device=\"gone\"] [data-field=\"tmp\"]",
            SOON,
            |t| t.contains("37"),
        )
        .await?;
    let want = if lang == "de" { "37,5 °C" } else { "37.5 °C" };
    if tmp.trim() != want {
        return Err(format!(
            "the room at the moment shows {tmp:?}, wanted {want:?}"
        ));
    }
    let at = b
        .wait("#tl-at", SOON)
        .await?
        .prop("value")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let date = at.split(' ').next().unwrap_or_default();
    let sep = if lang == "de" { '.' } else { '/' };
    if date.split(sep).count() != 3 || !at.contains(':') {
        return Err(format!(
            "the moment is not written in the {lang} format: {at:?}"
        ));
    }
    b.wait("#tl-chart canvas", SOON).await?;
    // Regression: "all devices" drew only the first device. Now one line per device with
    // readings in the window: the devices of the moment's tiles (from `readings_at`).
    b.js("document.getElementById('tl-device').value = ''; document.getElementById('tl-show').click(); return true")
        .await?;
    let script = "const tiles = [...document.querySelectorAll('#tl-moment [data-device]')].map((e) => e.dataset.device).sort().join(','); \
                  const c = document.getElementById('tl-chart'); \
                  return [tiles, c.dataset.devices || '', c.dataset.doorSpans || '', Date.now() / 1000];";
    let shown = wait_until(SOON, || async {
        b.js(script)
            .await
            .is_ok_and(|v| v[0].as_str().is_some_and(|t| t.contains(',')) && v[0] == v[1])
    })
    .await;
    let v = b.js(script).await?;
    if !shown {
        return Err(format!(
            "all devices: tiles {} but chart lines {}",
            v[0], v[1]
        ));
    }
    // Door-open spans end at the last reading, never after now.
    let now = v[3].as_f64().unwrap_or_default();
    for span in v[2]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let end: f64 = span
            .rsplit('-')
            .next()
            .and_then(|e| e.parse().ok())
            .unwrap_or(f64::MAX);
        if end > now + 1.0 {
            return Err(format!("a door span runs past now: {span}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_story_in_both_languages_and_viewports() {
    let mut app = TestApp::start().await;
    let token = app.login().await;
    app.add_device("hist");
    seed_history(&app, "hist");
    app.add_device("fresh");
    let gone = app.device("gone").await;
    gone.publish("status", "online").await;
    gone.publish("telemetry", r#"{"tmp":37.5,"lf":50.0,"locked":true}"#)
        .await;
    let (status, _) = app
        .post(
            "/addAccessID",
            Some(&token),
            json!({"access_id": "CAFE0042", "name": "Erika"}),
        )
        .await;
    assert_eq!(status, 201);
    gone.publish("access", r#"{"access_id":"F00DF00D","granted":false}"#)
        .await;
    gone.publish("access", r#"{"access_id":"CAFE0042","granted":true}"#)
        .await;
    gone.publish("telemetry", r#"{"tmp":37.5,"lf":50.0,"locked":false}"#)
        .await;
    gone.publish("incident", r#"{"type":"tamper","message":"lid open"}"#)
        .await;
    assert!(wait_until(SOON, || async { app.count("access_events") == 2 }).await);
    assert!(app.wait_rows(&token, "gone", 1).await);
    gone.publish("status", "offline").await;
    assert!(
        wait_until(SOON, || async {
            let (_, d) = app.get("/devices", Some(&token)).await;
            d["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["id"] == "gone" && d["online"] == false)
        })
        .await
    );

    let b = Browser::start().await;
    step(&b, "story-login", async {
        b.c().goto(&app.url("/")).await.map_err(|e| e.to_string())?;
        b.fill("#login-user", "admin").await?;
        b.fill("#login-password", ADMIN_PASSWORD).await?;
        b.click("#login-submit").await?;
        b.wait("#tiles", SOON).await.map(drop)
    })
    .await;
    for lang in ["en", "de"] {
        for size in VIEWPORTS {
            let tag = format!("{lang}-{}", size.0);
            step(&b, &format!("overview-{tag}"), async {
                setup(&b, lang, size).await?;
                overview(&b, lang).await
            })
            .await;
            step(&b, &format!("chart-{tag}"), chart(&b, lang)).await;
            step(&b, &format!("timeline-{tag}"), timeline(&b, lang)).await;
        }
    }
    // Door-open spans in the dark theme: their own, brighter fill on the dark background.
    step(&b, "chart-dark-en-1280", async {
        setup(&b, "en", VIEWPORTS[0]).await?;
        let light = theme(&b).await?;
        b.c()
            .issue_cmd(ColorScheme("dark"))
            .await
            .map_err(|e| e.to_string())?;
        let dark = theme(&b).await?;
        if dark[0] == light[0]
            || dark[1] == light[1]
            || dark[1].as_str().is_none_or(|v| !v.starts_with("rgba(242"))
        {
            return Err(format!(
                "the dark theme did not apply: light {light}, dark {dark}"
            ));
        }
        chart(&b, "en").await
    })
    .await;
    b.c()
        .issue_cmd(ColorScheme("light"))
        .await
        .map_err(|e| e.to_string())
        .expect("back to light");
    // Two devices in one chart: each gets its own average line and band, named in the legend.
    step(&b, "chart-two-devices-en-1280", async {
        b.click("#history-dev-gone").await?;
        b.wait_text("#chart-tmp .u-legend", SOON, |t| {
            t.contains("hist avg") && t.contains("gone avg")
        })
        .await?;
        let readings: usize = b
            .attr("#chart-tmp", "data-readings")
            .await?
            .parse()
            .unwrap_or(0);
        if !(1402..=1502).contains(&readings) {
            return Err(format!("{readings} readings for hist and gone together"));
        }
        Ok(())
    })
    .await;
    step(&b, "access-allow-en-1280", async {
        setup(&b, "en", VIEWPORTS[0]).await?;
        b.c()
            .execute("location.hash = '#/access'", vec![])
            .await
            .map_err(|e| e.to_string())?;
        b.click("#acclog-result option[value=\"false\"]").await?;
        b.click("#acclog-apply").await?;
        b.wait_text("#acclog-page", SOON, |t| t.contains("1–1 of 1"))
            .await?;
        b.click("[data-allow=\"F00DF00D\"]").await?;
        b.c()
            .send_alert_text("Max")
            .await
            .map_err(|e| e.to_string())?;
        b.c().accept_alert().await.map_err(|e| e.to_string())?;
        b.wait_text("#access-list", SOON, |t| {
            t.contains("F00DF00D") && t.contains("Max")
        })
        .await?;
        let (_, ids) = app.get("/accessIDs", Some(&token)).await;
        let added = ids["access_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["access_id"] == "F00DF00D" && r["name"] == "Max");
        if !added {
            return Err(format!("the card was not added with its name: {ids}"));
        }
        b.wait_text("#access-log", SOON, |t| t.contains("Max (F00DF00D)"))
            .await
            .map(drop)
    })
    .await;
    step(&b, "device-rekey-en-1280", async {
        b.c()
            .execute("location.hash = '#/devices'", vec![])
            .await
            .map_err(|e| e.to_string())?;
        let port = b.wait_text("#esp-port", SOON, |t| !t.is_empty()).await?;
        if port.trim() != app.mqtt.port().to_string() {
            return Err(format!(
                "the instructions name port {port}, the broker listens on {}",
                app.mqtt.port()
            ));
        }
        b.click("#esp-device option[value=\"fresh\"]").await?;
        b.wait_text("#esp-sub", SOON, |t| t.trim() == "rz/fresh/command")
            .await?;
        b.click("[data-rekey=\"fresh\"]").await?;
        b.c().accept_alert().await.map_err(|e| e.to_string())?;
        let pw = b
            .wait_text("#device-rekey-password", SOON, |t| t.len() >= 20)
            .await?;
        let d = Device::connect(app.mqtt, "fresh", Some(("fresh", pw.trim()))).await;
        d.wait_connack()
            .await
            .map_err(|e| format!("the new password does not work: {e}"))
    })
    .await;
    // Regression: on a default install the device's own tmp_max never showed (the default rules
    // cover every device). A simulated device told `tmp_max: 10` (below its readings and below
    // the rules' 30/35 °C) gets a red tile and a labelled line in its chart.
    let _sim = app.simulator("lim", 0.5);
    assert!(
        app.wait_rows(&token, "lim", 1).await,
        "the simulator reports"
    );
    let (status, body) = app
        .post(
            "/setConfig?device=lim",
            Some(&token),
            json!({"tmp_max": 10}),
        )
        .await;
    assert_eq!((status, &body["confirmed"]), (200, &json!(true)), "{body}");
    for (lang, size) in [("en", VIEWPORTS[0]), ("de", VIEWPORTS[1])] {
        step(&b, &format!("device-limit-{lang}-{}", size.0), async {
            setup(&b, lang, size).await?;
            let tmp = "[data-device=\"lim\"] [data-field=\"tmp\"]";
            b.wait(tmp, SOON).await?;
            let level = b.attr(tmp, "data-level").await?;
            if level != "alarm" {
                return Err(format!(
                    "tmp_max 10 below the reading, but the tile is {level:?}"
                ));
            }
            b.c()
                .execute("location.hash = '#/history?device=lim'", vec![])
                .await
                .map_err(|e| e.to_string())?;
            b.wait("#chart-tmp canvas", SOON).await?;
            let ok = wait_until(SOON, || async {
                b.attr("#chart-tmp", "data-thresholds")
                    .await
                    .is_ok_and(|l| l.contains("lim: tmp_max") && l.contains("\"value\":10"))
            })
            .await;
            let limits = b.attr("#chart-tmp", "data-thresholds").await?;
            if !ok || !limits.contains("Temperature high") {
                return Err(format!(
                    "the device limit is not drawn next to the rules': {limits}"
                ));
            }
            Ok(())
        })
        .await;
    }
    // The server goes away: no tile may keep claiming a presence. (Not a `step`: the failed
    // reconnects are console errors here, on purpose.)
    let lost = async {
        setup(&b, "en", VIEWPORTS[0]).await?;
        b.wait("[data-device=\"gone\"][data-state=\"stale\"]", SOON).await?;
        app.shutdown().await.map_err(|e| e.to_string())?;
        b.wait_text("#conn-state", SOON, |t| t.contains("retrying")).await?;
        let states = b
            .c()
            .execute(
                "return [...document.querySelectorAll('.tile')].map((t) => t.dataset.state + ':' + t.querySelector('[data-field=online]').textContent)",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        let all_lost = states
            .as_array()
            .is_some_and(|s| s.len() == 4 && s.iter().all(|v| v == "lost:connection lost"));
        if all_lost { Ok(()) } else { Err(format!("tiles after the server stopped: {states}")) }
    }
    .await;
    let shot = b.screenshot("ok-connection-lost-en-1280").await;
    if let Err(e) = lost {
        panic!("step \"connection-lost\" failed: {e}\nscreenshot: {shot}");
    }
    b.close().await;
}
