//! Talking back to devices through the real gate: config round trip, timeouts and refusals,
//! msgID correlation, access ids with enrolment and sync, presence, with the built-in
//! simulator or a scripted MQTT device.

use crate::util::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn wait_online(app: &TestApp, token: &str, id: &str) {
    let online = wait_until(SOON, || async {
        let (_, v) = app.get("/devices", Some(token)).await;
        v["devices"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d["id"] == id && d["online"] == true))
    })
    .await;
    assert!(online, "{id} did not come online");
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.post(path, Some(token), body).await
}

/// A scripted device that answers each command with `answer(command) -> reply`.
async fn scripted(app: &TestApp, id: &str) -> Device {
    let d = app.device(id).await;
    d.subscribe_commands().await;
    d.publish("status", "online").await;
    d
}

/// getConfig returns the simulated device's config; setConfig changes it, getConfig shows it,
/// and the history records who changed what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_round_trip_with_the_simulator() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let sim = app.simulator("sim-1", 0.2);
    wait_online(&app, &token, "sim-1").await;
    let (status, body) = app.get("/getConfig", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["config"]["tmp_max"], 30.0);
    let (status, body) = post(
        &app,
        "/setConfig?device=sim-1",
        &token,
        json!({"tmp_max": 27.5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["confirmed"], true);
    let (_, body) = app.get("/getConfig?device=sim-1", Some(&token)).await;
    assert_eq!(body["config"]["tmp_max"], 27.5);
    let (status, body) = post(&app, "/setConfig", &token, json!({"interval_s": 0})).await;
    assert_eq!(status, 422, "the device's refusal: {body}");
    assert!(body["error"].as_str().unwrap().contains("interval_s"));
    let (_, body) = app.get("/configHistory?device=sim-1", Some(&token)).await;
    let h = body["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0]["confirmed"].clone(), h[1]["confirmed"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(h[1]["user"], "admin");
    assert_eq!(h[1]["old"]["tmp_max"], 30.0);
    assert_eq!(h[1]["new"]["tmp_max"], 27.5);
    let (_, audit) = app.get("/audit", Some(&token)).await;
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "setConfig")
    );
    sim.cancel();
}

/// A device that never answers → 504 within timeout + 1 s; an offline device → 503 at once;
/// bad input → 4xx with a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_offline_and_bad_input() {
    let app = TestApp::start_with(&[("RZMON_COMMAND_TIMEOUT", "1")]).await;
    let token = app.login().await;
    let _mute = scripted(&app, "mute").await;
    wait_online(&app, &token, "mute").await;
    let t = Instant::now();
    let (status, body) = app.get("/getConfig?device=mute", Some(&token)).await;
    assert_eq!(status, 504, "{body}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    app.add_device("sleeper");
    let t = Instant::now();
    let (status, body) = app.get("/getConfig?device=sleeper", Some(&token)).await;
    assert_eq!(status, 503, "{body}");
    assert!(t.elapsed() < Duration::from_secs(1));
    let (status, body) = app.get("/getConfig", Some(&token)).await;
    assert_eq!(status, 400, "two devices: name one");
    assert!(body["error"].as_str().unwrap().contains("mute"));
    assert_eq!(
        app.get("/getConfig?device=ghost", Some(&token)).await.0,
        404
    );
    assert_eq!(
        post(&app, "/setConfig?device=mute", &token, json!([1, 2]))
            .await
            .0,
        400
    );
    let big = json!({"x": "y".repeat(70_000)});
    assert_eq!(
        post(&app, "/setConfig?device=mute", &token, big).await.0,
        413
    );
    let (status, body) = post(
        &app,
        "/addAccessID",
        &token,
        json!({"access_id": "bad id!"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string());
}

/// Replies with a wrong msgID or from another device complete nothing; two concurrent
/// requests each get their own answer even when answered in reverse order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_correlated_by_msg_id_and_device() {
    let app = TestApp::start_with(&[("RZMON_COMMAND_TIMEOUT", "3")]).await;
    let token = app.login().await;
    let dev = scripted(&app, "dev").await;
    let other = scripted(&app, "other").await;
    wait_online(&app, &token, "dev").await;
    let t1 = token.clone();
    let base = app.url("");
    let client = app.client.clone();
    let get = move |t: String| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let res = client
                .get(format!("{base}/getConfig?device=dev"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    };
    let first = get(t1.clone());
    let second = get(t1);
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let p = dev.next_publish(SOON).await.expect("command");
        let v: Value = serde_json::from_slice(&p.payload).unwrap();
        // The access-list sync on connect is not what this test is about.
        if v["command"] == "getConfig" {
            ids.push(v["msgID"].as_u64().unwrap());
        }
    }
    assert_ne!(ids[0], ids[1]);
    other
        .publish(
            "reply",
            json!({"msgID": ids[0], "ok": true, "config": {"who": "other"}}).to_string(),
        )
        .await;
    dev.publish(
        "reply",
        json!({"msgID": ids[0] + ids[1] + 1000, "ok": true, "config": {"who": "nobody"}})
            .to_string(),
    )
    .await;
    for id in ids.iter().rev() {
        dev.publish(
            "reply",
            json!({"msgID": id, "ok": true, "config": {"answer": id}}).to_string(),
        )
        .await;
    }
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((a.0, b.0), (200, 200));
    let answers = [
        a.1["config"]["answer"].as_u64().unwrap(),
        b.1["config"]["answer"].as_u64().unwrap(),
    ];
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let mut got = answers.to_vec();
    got.sort_unstable();
    assert_eq!(got, sorted, "each request got the answer to its own msgID");
}

/// addAccessID directly and by enrolment at the simulator; duplicates are 409; revocation sends
/// removeAccessId; access events are joined with the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_ids_enrolment_revocation_and_log() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let sim = app.simulator("sim-1", 0.2);
    wait_online(&app, &token, "sim-1").await;
    let (status, body) = post(
        &app,
        "/addAccessID",
        &token,
        json!({"access_id": "04A1B2C3", "name": "Ann"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["devices"]["sim-1"], "ok");
    assert_eq!(
        post(
            &app,
            "/addAccessID",
            &token,
            json!({"access_id": "04A1B2C3"})
        )
        .await
        .0,
        409
    );
    let (status, body) = post(
        &app,
        "/addAccessID",
        &token,
        json!({"name": "Bob", "device": "sim-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let enrolled = body["access_id"].as_str().unwrap().to_owned();
    assert_eq!(enrolled.len(), 8);
    let (_, list) = app.get("/accessIDs", Some(&token)).await;
    let names: Vec<&str> = list["access_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "Ann"]);
    assert!(
        wait_until(SOON, || async {
            app.get("/devices", Some(&token)).await.1["devices"][0]["access_in_sync"] == true
        })
        .await,
        "the device confirms the current list version"
    );

    let door = scripted(&app, "door").await;
    wait_online(&app, &token, "door").await;
    let (status, body) = app
        .client
        .delete(app.url("/accessIDs/04A1B2C3"))
        .bearer_auth(&token)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", body.text().await);
    let mut saw_remove = false;
    while let Some(p) = door.next_publish(Duration::from_secs(3)).await {
        let v: Value = serde_json::from_slice(&p.payload).unwrap();
        if v["command"] == "removeAccessId" {
            assert_eq!(v["value"]["access_id"], "04A1B2C3");
            saw_remove = true;
            break;
        }
    }
    assert!(saw_remove, "revocation sends removeAccessId");

    door.publish(
        "access",
        json!({"access_id": enrolled, "granted": true}).to_string(),
    )
    .await;
    door.publish("access", r#"{"access_id":"DEADBEEF","granted":false}"#)
        .await;
    assert!(
        wait_until(SOON, || async {
            app.get("/access?device=door", Some(&token)).await.1["access"]
                .as_array()
                .map_or(0, Vec::len)
                == 2
        })
        .await
    );
    let (_, log) = app.get("/access?device=door", Some(&token)).await;
    let rows = log["access"].as_array().unwrap();
    assert_eq!(rows[0]["access_id"], "DEADBEEF");
    assert_eq!(
        (rows[0]["known"].clone(), rows[0]["granted"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(rows[1]["name"], "Bob");
    assert_eq!(rows[1]["known"], true);
    sim.cancel();
}

/// A device that (re)connects receives syncAccessIds with the current list and version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_device_gets_the_access_list() {
    let app = TestApp::start_with(&[("RZMON_COMMAND_TIMEOUT", "2")]).await;
    let token = app.login().await;
    app.add_device("spare");
    let (status, _) = post(
        &app,
        "/addAccessID",
        &token,
        json!({"access_id": "CAFE0001", "name": "Cy"}),
    )
    .await;
    assert_eq!(status, 201);
    let d = scripted(&app, "door").await;
    let p = d
        .next_publish(SOON)
        .await
        .expect("a command after connecting");
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["command"], "syncAccessIds");
    assert_eq!(v["value"], json!({"version": 1, "ids": ["CAFE0001"]}));
    d.publish(
        "reply",
        json!({"msgID": v["msgID"], "ok": true, "version": 1}).to_string(),
    )
    .await;
    assert!(
        wait_until(SOON, || async {
            let (_, v) = app.get("/devices", Some(&token)).await;
            v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["id"] == "door" && d["access_in_sync"] == true)
        })
        .await
    );

    // The list changes while the device is away; when it reconnects it gets the new list.
    let password = d.password.clone();
    d.publish("status", "offline").await;
    assert!(d.wait_pubacks(2).await);
    drop(d);
    let (status, _) = post(
        &app,
        "/addAccessID",
        &token,
        json!({"access_id": "CAFE0002"}),
    )
    .await;
    assert_eq!(status, 201);
    let again = Device::connect(app.mqtt, "door", Some(("door", &password))).await;
    again.wait_connack().await.unwrap();
    again.subscribe_commands().await;
    again.publish("status", "online").await;
    let p = again
        .next_publish(SOON)
        .await
        .expect("a command after reconnecting");
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["command"], "syncAccessIds");
    assert_eq!(
        v["value"],
        json!({"version": 2, "ids": ["CAFE0001", "CAFE0002"]})
    );
}

/// Online and offline changes are pushed on /ws as `device` events; the device offline
/// answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_changes_are_pushed() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let mut ws = app.ws_ready(&token).await;
    let d = scripted(&app, "door").await;
    let ev = ws_event(&mut ws, "device").await.expect("online event");
    assert_eq!(
        (ev["device"].clone(), ev["data"]["status"].clone()),
        (json!("door"), json!("online"))
    );
    d.publish("status", "offline").await;
    let ev = ws_event(&mut ws, "device").await.expect("offline event");
    assert_eq!(ev["data"]["status"], "offline");
    let (status, _) = app.get("/getConfig?device=door", Some(&token)).await;
    assert_eq!(status, 503);
    // The live event is pushed as the message arrives; the stored status follows with the
    // writer's next commit.
    let stored = wait_until(SOON, || async {
        let (_, v) = app.get("/devices", Some(&token)).await;
        v["devices"][0]["online"] == false && v["devices"][0]["since"].is_string()
    })
    .await;
    assert!(stored, "the offline state is stored with its time");
}
