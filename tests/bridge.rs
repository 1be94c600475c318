//! The upstream bridge against a real mosquitto: 10,000 stored rows arrive in order, each
//! once (after dropping QoS 1 repeats by id), although the upstream broker restarts in the
//! middle; the lag shows in `/metrics` and in `/health` details (during the outage and while
//! catching up); a low `RZMON_BRIDGE_RATE` is honoured.

use crate::metrics::metric_sum;
use crate::mosquitto::{Mosquitto, Watcher};
use crate::util::{SOON, TestApp, wait_until};
use std::time::Duration;

const ROWS: i64 = 10_000;

/// Inserts `n` recent telemetry rows for `device` in one transaction (the bridge reads stored
/// rows; how they got there does not matter to it) and returns their ids in order.
fn store_rows(app: &TestApp, device: &str, n: i64) -> Vec<i64> {
    let mut db = rusqlite::Connection::open(app.db_path()).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let tx = db.transaction().expect("tx");
    // The compact row: time in the id (`ms << 10`), the device as a key, `extra` for `n`.
    let start_ms = rzmon::model::now_ms() - 3_600_000;
    let ids: Vec<i64> = (1..=n).map(|i| (start_ms + i) << 10).collect();
    {
        tx.execute(
            "INSERT OR IGNORE INTO device_keys (name) VALUES (?1)",
            [device],
        )
        .expect("device key");
        let mut stmt = tx
            .prepare(
                "INSERT INTO telemetry (id, device_key, seq, tmp, lf, locked, extra)
                 SELECT ?1, id, ?2, 21.5, 40.0, 1, ?3 FROM device_keys WHERE name = ?4",
            )
            .expect("prepare");
        for (i, id) in (1..=n).zip(&ids) {
            let extra = format!(r#"{{"n":{i}}}"#);
            stmt.execute((id, i, extra, device)).expect("insert");
        }
    }
    tx.commit().expect("commit");
    ids
}

/// The telemetry ids the collector received, in arrival order.
fn ids(w: &Watcher) -> Vec<i64> {
    w.all
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, p)| {
            let v = serde_json::from_slice::<serde_json::Value>(p).ok()?;
            // Only the stored readings: the outage itself raises a system alert (an incident).
            (v["source"] == "telemetry").then(|| v["id"].as_i64())?
        })
        .collect()
}

/// How many different telemetry ids arrived (QoS 1 repeats counted once: waiting on the raw
/// count ended early when repeats made up for rows still on their way).
fn distinct(w: &Watcher) -> usize {
    ids(w)
        .into_iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The backlog in the bridge check's detail, "...; N rows behind".
fn behind(detail: &str) -> Option<u64> {
    detail
        .strip_suffix(" rows behind")?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Waits for the firing system alert about the `bridge` check, acknowledges it; its id.
async fn ack_the_bridge_alert(app: &TestApp, token: &str) -> i64 {
    let found = std::sync::Mutex::new(None);
    assert!(
        wait_until(SOON, || async {
            let (_, v) = app.get("/alerts?state=firing", Some(token)).await;
            let hit = v["alerts"].as_array().and_then(|all| {
                all.iter()
                    .find(|a| a["subject"] == "bridge")
                    .and_then(|a| a["id"].as_i64())
            });
            *found.lock().unwrap() = hit;
            hit.is_some()
        })
        .await,
        "the outage fires the rzmon health alert"
    );
    let id = found.into_inner().unwrap().expect("alert id");
    let (status, v) = app
        .post(
            &format!("/alerts/{id}/ack"),
            Some(token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    id
}

/// The states forwarded on `site-a/_system/alert` for alert `alert_id`, in arrival order
/// (QoS 1 repeats dropped by the change's id).
fn alert_states(w: &Watcher, alert_id: i64) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    w.all
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "site-a/_system/alert")
        .filter_map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).ok())
        .filter(|v| v["source"] == "alert_events" && v["data"]["alert_id"] == alert_id)
        .filter(|v| seen.insert(v["id"].as_i64()))
        .map(|v| v["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// 10,000 rows are forwarded once each (by id) and in order across an upstream restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_forwards_every_row_once_in_order_across_an_upstream_restart() {
    let mut upstream = Mosquitto::start("").await;
    // A persistent session: mosquitto keeps (and persists) what arrives while it is away.
    let collector = Watcher::start(upstream.port, "site-a/#", Some("collector"), None).await;
    let app = TestApp::start_with(&[
        ("RZMON_BRIDGE_URL", &upstream.url()),
        ("RZMON_BRIDGE_PREFIX", "site-a"),
        ("RZMON_BRIDGE_RATE", "4000"),
    ])
    .await;
    let token = app.login().await;
    let expected = store_rows(&app, "rack-1", ROWS);

    assert!(
        wait_until(SOON, || async { collector.count() >= 2_000 }).await,
        "forwarding started"
    );
    upstream.stop();
    let got_before = collector.count();
    assert!(
        got_before < ROWS as usize,
        "the restart falls in the middle"
    );
    // rzmon notices and says so in /health (details for a logged-in user).
    assert!(
        wait_until(SOON, || async {
            let (_, h) = app.get("/health", Some(&token)).await;
            h["checks"]["bridge"] == "error"
                && h["details"]["bridge"]
                    .as_str()
                    .is_some_and(|r| r.contains("rows waiting"))
        })
        .await
    );
    assert!(metric_sum(&app, &token, "rzmon_bridge_lag_rows").await > 0.0);
    // The outage fires the system alert "rzmon health" (subject `bridge`); acknowledge it, and
    // it resolves once the bridge is back: all three changes are forwarded, in order.
    let alert_id = ack_the_bridge_alert(&app, &token).await;
    upstream.start_again().await;
    // While it catches up the check is ok again, and its detail says how far behind it is.
    let detail = std::sync::Mutex::new(String::new());
    assert!(
        wait_until(SOON, || async {
            let (_, h) = app.get("/health", Some(&token)).await;
            let d = h["details"]["bridge"].as_str().unwrap_or("").to_owned();
            let shown = h["checks"]["bridge"] == "ok" && behind(&d).is_some_and(|n| n > 0);
            *detail.lock().unwrap() = d;
            shown
        })
        .await,
        "no backlog shown while catching up: {:?}",
        detail.lock().unwrap()
    );

    assert!(
        wait_until(Duration::from_secs(60), || async {
            distinct(&collector) >= ROWS as usize
        })
        .await,
        "all rows arrive after the restart: {} distinct of {} received",
        distinct(&collector),
        collector.count()
    );
    // QoS 1 is at least once on both legs (bridge → mosquitto → collector): a message whose
    // PUBACK was lost in the restart comes again, with its id. Dropping repeats by id, every
    // row is there exactly once, in order, and repeats are bounded by the in-flight window.
    let got = ids(&collector);
    let mut seen = std::collections::HashSet::new();
    let first: Vec<i64> = got.iter().copied().filter(|id| seen.insert(*id)).collect();
    let differ = first.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        first.len() == expected.len() && differ.is_none(),
        "every row once, in order: {} of {} received, first difference at {differ:?}",
        first.len(),
        expected.len()
    );
    let repeats = got.len() - first.len();
    assert!(repeats <= 200, "{repeats} repeats");
    let (topic, body) = collector.all.lock().unwrap()[0].clone();
    assert_eq!(topic, "site-a/rack-1/telemetry");
    let one: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(one["source"], "telemetry");
    assert_eq!(one["data"]["n"], 1);
    assert!(
        wait_until(SOON, || async {
            metric_sum(&app, &token, "rzmon_bridge_lag_rows").await == 0.0
        })
        .await
    );
    assert!(
        wait_until(SOON, || async {
            let (_, h) = app.get("/health", Some(&token)).await;
            h["checks"]["bridge"] == "ok"
                && behind(h["details"]["bridge"].as_str().unwrap_or("")) == Some(0)
        })
        .await,
        "caught up: 0 rows behind"
    );
    let states = || alert_states(&collector, alert_id);
    assert!(
        wait_until(SOON, || async { states().len() >= 3 }).await,
        "alert changes forwarded: {:?}",
        states()
    );
    assert_eq!(states(), ["firing", "acknowledged", "resolved"]);
    // The cursor is persisted: it names the last forwarded row.
    let cursor: i64 = app
        .db()
        .query_row(
            "SELECT last_id FROM bridge_cursor WHERE source = 'telemetry'",
            [],
            |r| r.get(0),
        )
        .expect("cursor row");
    assert_eq!(Some(&cursor), expected.last());
}

/// `RZMON_BRIDGE_RATE=10` sends no faster than 10 rows/s: the 15th row cannot arrive before
/// 1.4 s after the rows were stored (14 tokens after the first). The old per-tick budget sent 20/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_honours_a_low_rate() {
    let upstream = Mosquitto::start("").await;
    let collector = Watcher::start(upstream.port, "site-b/#", None, None).await;
    let app = TestApp::start_with(&[
        ("RZMON_BRIDGE_URL", &upstream.url()),
        ("RZMON_BRIDGE_PREFIX", "site-b"),
        ("RZMON_BRIDGE_RATE", "10"),
    ])
    .await;
    let stored = std::time::Instant::now();
    store_rows(&app, "rack-2", 15);
    assert!(
        wait_until(SOON, || async { distinct(&collector) >= 15 }).await,
        "15 rows arrive: {}",
        distinct(&collector)
    );
    let took = stored.elapsed();
    assert!(
        took >= Duration::from_millis(1_400),
        "15 rows at 10/s took {took:?}"
    );
}

/// `mqtts://` with a private CA (`?ca=`): the bridge and the Home Assistant link connect to
/// mosquitto's TLS listener and work; a CA that did not sign the broker's certificate is
/// refused, and `/health` names the certificate as the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_and_home_assistant_over_mqtts_with_a_private_ca() {
    let upstream = Mosquitto::start_tls("").await;
    let collector = Watcher::start(upstream.port, "#", None, None).await;
    let app = TestApp::start_with(&[
        ("RZMON_BRIDGE_URL", &upstream.tls_url()),
        ("RZMON_BRIDGE_PREFIX", "site-t"),
        ("RZMON_HA_BROKER", &upstream.tls_url()),
    ])
    .await;
    let token = app.login().await;
    store_rows(&app, "rack-t", 20);
    assert!(
        wait_until(SOON, || async { distinct(&collector) >= 20 }).await,
        "rows forwarded over TLS: {}",
        distinct(&collector)
    );
    assert!(
        collector
            .wait(|w| w
                .raw("rzmon/availability")
                .is_some_and(|(p, _)| p == b"online"))
            .await,
        "Home Assistant link online over TLS"
    );
    let (_, h) = app.get("/health", Some(&token)).await;
    assert_eq!(h["checks"]["bridge"], "ok", "{h}");

    // Another CA (as after a broker's certificate was replaced): refused, with the reason.
    let other = tempfile::tempdir().expect("tempdir");
    let wrong = crate::mosquitto::make_ca(other.path()).ca_cert;
    let url = format!(
        "mqtts://127.0.0.1:{}?ca={}",
        upstream.tls_port.expect("tls port"),
        wrong.display()
    );
    let refused = TestApp::start_with(&[("RZMON_BRIDGE_URL", &url)]).await;
    let token = refused.login().await;
    let reason = std::sync::Mutex::new(String::new());
    assert!(
        wait_until(SOON, || async {
            let (_, h) = refused.get("/health", Some(&token)).await;
            *reason.lock().unwrap() = h["details"]["bridge"].as_str().unwrap_or("").to_owned();
            h["checks"]["bridge"] == "error"
        })
        .await,
        "a wrong CA fails the bridge check"
    );
    let reason = reason.into_inner().unwrap();
    assert!(
        reason.contains("unreachable") && reason.to_lowercase().contains("certificate"),
        "the reason names the certificate: {reason}"
    );
}
