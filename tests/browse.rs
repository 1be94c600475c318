//! The dashboard's read APIs: `GET /access` filters and keyset paging, `GET /timeline` around a
//! moment, `GET /devices` limits, and re-keying a device with `POST /devices/{id}/password`.

use crate::util::*;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<String> {
    v["access"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}:{}",
                r["access_id"].as_str().unwrap_or("?"),
                r["granted"]
            )
        })
        .collect()
}

/// Filters by device, card and result, pages newest first with `next_before` until every row
/// was seen exactly once, counts `total`, and refuses bad values naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_filters_and_pages() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let (status, _) = app
        .post(
            "/addAccessID",
            Some(&token),
            json!({"access_id": "CAFE0001", "name": "Erika"}),
        )
        .await;
    assert_eq!(status, 201);
    let a = app.device("door-a").await;
    let b = app.device("door-b").await;
    for i in 0..7 {
        let (card, granted) = if i % 2 == 0 {
            ("CAFE0001", true)
        } else {
            ("DEADBEEF", false)
        };
        a.publish(
            "access",
            json!({"access_id": card, "granted": granted}).to_string(),
        )
        .await;
    }
    b.publish("access", r#"{"access_id":"CAFE0001","granted":true}"#)
        .await;
    assert!(wait_until(SOON, || async { app.count("access_events") == 8 }).await);

    let (status, all) = app.get("/access?limit=3", Some(&token)).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["total"], 8);
    assert_eq!(all["access"].as_array().unwrap().len(), 3);
    // Walk the pages: 3 + 3 + 2, no row twice, the last page has no cursor.
    let mut seen = Vec::new();
    let mut next = all["next_before"].as_str().map(str::to_owned);
    seen.extend(
        all["access"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["timestamp"].clone()),
    );
    let mut pages = 1;
    while let Some(cursor) = next {
        let (status, page) = app
            .get(&format!("/access?limit=3&before={cursor}"), Some(&token))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 8, "total ignores the cursor");
        seen.extend(
            page["access"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["timestamp"].clone()),
        );
        next = page["next_before"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!((pages, seen.len()), (3, 8), "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.as_str().cmp(&x.as_str()));
    assert_eq!(seen, sorted, "newest first across pages");

    let (_, denied) = app.get("/access?granted=false", Some(&token)).await;
    assert_eq!(ids(&denied), vec!["DEADBEEF:false"; 3]);
    assert_eq!(denied["total"], 3);
    assert_eq!(denied["next_before"], Value::Null);
    let (_, named) = app
        .get("/access?granted=true&device=door-b", Some(&token))
        .await;
    assert_eq!(ids(&named), vec!["CAFE0001:true"]);
    assert_eq!(named["access"][0]["name"], "Erika");
    assert_eq!(named["access"][0]["known"], true);
    let (_, card) = app
        .get("/access?access_id=DEADBEEF&device=door-a", Some(&token))
        .await;
    assert_eq!(card["total"], 3);
    assert_eq!(card["access"][0]["known"], false);
    let (_, none) = app
        .get(
            "/access?start_date=2020-01-01&end_date=2020-01-02",
            Some(&token),
        )
        .await;
    assert_eq!((none["total"].clone(), ids(&none).len()), (json!(0), 0));

    for (query, field) in [
        ("granted=yes", "granted"),
        ("before=abc", "before"),
        ("before=12-x", "before"),
        ("limit=0", "limit"),
        ("start_date=tomorrow", "start_date"),
        ("device=a/b", "device"),
        ("access_id=has%20space", "access_id"),
    ] {
        let (status, body) = app.get(&format!("/access?{query}"), Some(&token)).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{query}: {error}");
    }
}

/// The timeline joins the card (with the person's name), the door change, the incident and
/// the readings around one moment; other devices are filtered out; bad input is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_joins_door_card_person_and_climate() {
    let app = TestApp::start().await;
    let token = app.login().await;
    app.post(
        "/addAccessID",
        Some(&token),
        json!({"access_id": "CAFE0002", "name": "Max"}),
    )
    .await;
    let door = app.device("room").await;
    let other = app.device("elsewhere").await;
    door.publish("telemetry", r#"{"tmp":21.5,"lf":40.0,"locked":true}"#)
        .await;
    door.publish("access", r#"{"access_id":"CAFE0002","granted":true}"#)
        .await;
    door.publish("telemetry", r#"{"tmp":22.5,"lf":42.0,"locked":false}"#)
        .await;
    door.publish("incident", r#"{"type":"tamper","message":"lid open"}"#)
        .await;
    other
        .publish("telemetry", r#"{"tmp":30.0,"lf":50.0,"locked":true}"#)
        .await;
    assert!(
        wait_until(SOON, || async {
            app.count("telemetry") == 3
                && app.count("incidents") >= 1
                && app.count("access_events") == 1
        })
        .await
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (status, tl) = app
        .get(
            &format!("/timeline?at={now}&window=600&device=room"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{tl}");
    let kinds: Vec<String> = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "incident" || e["type"] == "tamper")
        .map(|e| match e["kind"].as_str().unwrap() {
            "access" => format!(
                "access:{}:{}",
                e["name"].as_str().unwrap_or("?"),
                e["granted"]
            ),
            "door" => format!("door:{}:{}", e["locked"], e["changed"]),
            "incident" => "incident:tamper".into(),
            k => k.into(),
        })
        .collect();
    // Oldest first; rows of one ingest batch share a millisecond, so compare them as a set
    // and the door states in order.
    let doors: Vec<&String> = kinds.iter().filter(|k| k.starts_with("door")).collect();
    assert_eq!(doors, ["door:true:false", "door:false:true"], "{tl}");
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "access:Max:true",
            "door:false:true",
            "door:true:false",
            "incident:tamper"
        ],
        "{tl}"
    );
    let stamps: Vec<&str> = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {stamps:?}"
    );
    assert!(
        tl["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["device"] == "room")
    );
    let at = &tl["readings_at"];
    assert_eq!(at.as_array().unwrap().len(), 1, "{at}");
    assert_eq!(
        (at[0]["tmp"].clone(), at[0]["locked"].clone()),
        (json!(22.5), json!(false))
    );
    let course = tl["course"]["room"].as_array().expect("course of room");
    let counted: i64 = course.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 2);
    assert_eq!(tl["truncated"], false);
    // Without a device filter both devices' readings count.
    let (_, both) = app.get(&format!("/timeline?at={now}"), Some(&token)).await;
    assert_eq!(both["readings_at"].as_array().unwrap().len(), 2, "{both}");
    // Long before anything happened: empty, not an error.
    let (status, empty) = app
        .get("/timeline?at=2020-01-01T10:00:00Z", Some(&token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(empty["events"], json!([]));

    for (query, field) in [
        ("", "at"),
        ("at=noon", "at"),
        (&format!("at={now}&window=5") as &str, "window"),
        (&format!("at={now}&window=99999"), "window"),
        (&format!("at={now}&device=a%2Fb"), "device"),
    ] {
        let (status, body) = app.get(&format!("/timeline?{query}"), Some(&token)).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(field) || error.contains(&format!("`{field}`")),
            "{query}: {error}"
        );
    }
    let (status, _) = app.get(&format!("/timeline?at={now}"), None).await;
    assert_eq!(status, 401);
}

/// `GET /devices` carries the limits from the device's reported config; re-keying answers a
/// new password once, the old one is refused and the new one connects; unknown device → 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_limits_and_rekey() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let stop = app.simulator("sim-k", 0.5);
    assert!(
        wait_until(SOON, || async {
            app.get("/devices", Some(&token)).await.1["devices"][0]["online"] == true
        })
        .await
    );
    let (_, d) = app.get("/devices", Some(&token)).await;
    assert_eq!(
        d["devices"][0]["limits"],
        json!({"tmp_max": null, "lf_max": null})
    );
    let (status, cfg) = app.get("/getConfig?device=sim-k", Some(&token)).await;
    assert_eq!(status, 200, "{cfg}");
    let (_, d) = app.get("/devices", Some(&token)).await;
    assert_eq!(
        d["devices"][0]["limits"],
        json!({"tmp_max": 30.0, "lf_max": 70.0})
    );
    stop.cancel();

    let old = app.add_device("rekeyed");
    let (status, body) = app
        .post("/devices/rekeyed/password", Some(&token), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["password"].as_str().expect("new password").to_owned();
    assert_ne!(new, old);
    assert_eq!(body["username"], "rekeyed");
    let refused = Device::connect(app.mqtt, "rekeyed", Some(("rekeyed", &old))).await;
    assert!(
        refused.wait_connack().await.is_err(),
        "the old password still works"
    );
    let ok = Device::connect(app.mqtt, "rekeyed", Some(("rekeyed", &new))).await;
    ok.wait_connack().await.expect("the new password works");
    let (_, audit) = app.get("/audit?limit=5", Some(&token)).await;
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "devicePasswd" && r["target"] == "rekeyed"),
        "{audit}"
    );
    let (status, body) = app
        .post("/devices/nobody/password", Some(&token), json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app.post("/devices/rekeyed/password", None, json!({})).await;
    assert_eq!(status, 401);
}
