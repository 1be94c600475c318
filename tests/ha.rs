//! The Home Assistant bridge against a real mosquitto: retained discovery configs with the
//! documented keys, states as they arrive (door inverted), access events without card ids,
//! re-publish on `homeassistant/status online`, empty configs for a removed device.

use crate::mosquitto::{Mosquitto, Watcher};
use crate::util::TestApp;

const TEMP: &str = "homeassistant/sensor/rzmon_rack-1/temperature/config";
const DOOR: &str = "homeassistant/binary_sensor/rzmon_rack-1/door/config";
const STATE: &str = "rzmon/rack-1/state";

/// A device's discovery configs appear retained, its state follows its telemetry, and HA's
/// restart and the device's removal are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery_state_and_removal() {
    let broker = Mosquitto::start("").await;
    let app = TestApp::start_with(&[("RZMON_HA_BROKER", &broker.url())]).await;
    let token = app.login().await;
    let live = Watcher::start(broker.port, "#", None, None).await;
    let device = app.device("rack-1").await;
    device
        .publish("telemetry", r#"{"tmp": 23.5, "lf": 41.0, "locked": true}"#)
        .await;
    assert!(
        live.wait(|w| w.json(STATE).is_some_and(|s| s["temperature"] == 23.5))
            .await,
        "state published: {:?}",
        live.json(STATE)
    );

    // A client that subscribes now gets every config and the state retained.
    let late = Watcher::start(broker.port, "#", None, None).await;
    assert!(
        late.wait(|w| w.raw(DOOR).is_some() && w.raw(STATE).is_some())
            .await
    );
    let (_, retained) = late.raw(TEMP).expect("temperature config");
    assert!(retained, "configs are retained");
    let temp = late.json(TEMP).expect("config is JSON");
    assert_eq!(temp["device_class"], "temperature");
    assert_eq!(temp["state_class"], "measurement");
    assert_eq!(temp["unit_of_measurement"], "°C");
    assert_eq!(temp["state_topic"], STATE);
    assert_eq!(temp["unique_id"], "rzmon_rack-1_temperature");
    assert_eq!(temp["device"]["identifiers"][0], "rzmon_rack-1");
    assert_eq!(temp["availability_topic"], "rzmon/availability");
    let door = late.json(DOOR).expect("door config");
    assert_eq!(door["device_class"], "lock");
    assert_eq!(door["device"], temp["device"], "one HA device per ESP32");
    for object in ["humidity", "alerts"] {
        let t = format!("homeassistant/sensor/rzmon_rack-1/{object}/config");
        assert!(late.json(&t).is_some(), "{t}");
    }
    assert!(
        late.json("homeassistant/binary_sensor/rzmon_rack-1/connectivity/config")
            .is_some()
    );
    let event = late
        .json("homeassistant/event/rzmon_rack-1/access/config")
        .expect("event");
    assert_eq!(
        event["event_types"],
        serde_json::json!(["granted", "denied"])
    );
    let state = late.json(STATE).expect("state");
    assert_eq!(
        state["door"], "OFF",
        "locked:true is OFF for device_class lock"
    );
    assert_eq!(state["connectivity"], "ON");
    assert_eq!(
        late.raw("rzmon/availability").map(|r| r.0),
        Some(b"online".to_vec())
    );

    // Unlocking flips the door; a card presented is an event without its id.
    device.publish("telemetry", r#"{"locked": false}"#).await;
    device
        .publish("access", r#"{"access_id": "04A1B2C3", "granted": true}"#)
        .await;
    assert!(
        live.wait(|w| w.json(STATE).is_some_and(|s| s["door"] == "ON"))
            .await
    );
    assert!(
        live.wait(|w| w
            .json("rzmon/rack-1/access")
            .is_some_and(|e| e["event_type"] == "granted"))
            .await
    );
    let everything = live.all.lock().unwrap().clone();
    assert!(
        everything
            .iter()
            .all(|(t, p)| !t.contains("04A1B2C3")
                && !String::from_utf8_lossy(p).contains("04A1B2C3")),
        "no card id reaches Home Assistant unless enabled"
    );
    assert_eq!(
        live.json(STATE).expect("state")["temperature"],
        23.5,
        "a partial message keeps the other values"
    );

    // HA restarts: it announces `online` and gets every config again.
    let before = live
        .all
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == TEMP)
        .count();
    live.client
        .publish(
            "homeassistant/status",
            rumqttc::QoS::AtLeastOnce,
            false,
            "online",
        )
        .await
        .expect("publish");
    assert!(
        live.wait(|w| w
            .all
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == TEMP)
            .count()
            > before)
            .await,
        "configs re-published after HA's online"
    );

    // Removing the device publishes empty configs.
    let res = app
        .client
        .delete(app.url("/devices/rack-1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 200);
    assert!(
        live.wait(|w| w.raw(TEMP).is_some_and(|(p, _)| p.is_empty())
            && w.raw(DOOR).is_some_and(|(p, _)| p.is_empty()))
            .await,
        "empty configs remove the entities"
    );
    // Retained messages arrive right after the SUBACK, before a marker published later.
    let after = Watcher::start(broker.port, "homeassistant/#", None, None).await;
    after
        .client
        .publish(
            "homeassistant/marker",
            rumqttc::QoS::AtLeastOnce,
            false,
            "m",
        )
        .await
        .expect("marker");
    assert!(
        after
            .wait(|w| w.raw("homeassistant/marker").is_some())
            .await
    );
    assert!(after.raw(TEMP).is_none(), "no retained config is left");
}
