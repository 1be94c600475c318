//! Home Assistant MQTT discovery, pure: the retained config messages of one rzmon device (one
//! HA device with temperature, humidity, door, connectivity, last access and active-alert
//! entities), its merged state message, and its access events. No I/O here.
//!
//! Topics: `<discovery>/<component>/rzmon_<device>/<object>/config` (retained),
//! `<base>/<device>/state` (retained JSON), `<base>/<device>/access` (events),
//! `<base>/availability` (`online`/`offline`, retained, `offline` is rzmon's last will).

use serde_json::{Value, json};

/// Where messages go; one per rzmon instance.
#[derive(Debug, Clone)]
pub struct Topics {
    /// HA's discovery prefix (`homeassistant`).
    pub discovery: String,
    /// First level of rzmon's own state topics (`rzmon`).
    pub base: String,
}

/// The entities of one device: (component, object id).
pub const ENTITIES: [(&str, &str); 6] = [
    ("sensor", "temperature"),
    ("sensor", "humidity"),
    ("binary_sensor", "door"),
    ("binary_sensor", "connectivity"),
    ("event", "access"),
    ("sensor", "alerts"),
];

impl Topics {
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }
    /// HA announces `online` here after it (re)starts.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }
    pub fn state(&self, device: &str) -> String {
        format!("{}/{device}/state", self.base)
    }
    pub fn access(&self, device: &str) -> String {
        format!("{}/{device}/access", self.base)
    }
    pub fn config(&self, component: &str, device: &str, object: &str) -> String {
        format!(
            "{}/{component}/rzmon_{device}/{object}/config",
            self.discovery
        )
    }
}

/// What rzmon last knew of a device, merged from its messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    pub tmp: Option<f64>,
    pub lf: Option<f64>,
    pub locked: Option<bool>,
    pub online: bool,
    pub alerts: u32,
}

/// `ON`/`OFF` as HA's binary sensors expect them.
fn on_off(on: bool) -> &'static str {
    if on { "ON" } else { "OFF" }
}

/// The retained state message: every entity reads its field with a `value_template`.
/// `door` is ON when UNLOCKED (`device_class: lock` means "on = unlocked" in HA).
pub fn state_payload(s: &DeviceState) -> String {
    json!({
        "temperature": s.tmp,
        "humidity": s.lf,
        "door": s.locked.map(|locked| on_off(!locked)),
        "connectivity": on_off(s.online),
        "alerts": s.alerts,
    })
    .to_string()
}

/// The event message of one card presented: `granted` or `denied`; the card id only when
/// the user enabled it (`RZMON_HA_ACCESS_IDS`).
pub fn access_payload(granted: bool, access_id: Option<&str>) -> String {
    let mut v = json!({ "event_type": if granted { "granted" } else { "denied" } });
    if let Some(id) = access_id {
        v["access_id"] = id.into();
    }
    v.to_string()
}

/// The discovery config of each entity of `device`, as (topic, payload).
pub fn configs(t: &Topics, device: &str) -> Vec<(String, String)> {
    ENTITIES
        .iter()
        .map(|(component, object)| {
            let payload = config(t, device, object);
            (t.config(component, device, object), payload.to_string())
        })
        .collect()
}

/// The empty retained configs that remove every entity of `device` from HA.
pub fn removals(t: &Topics, device: &str) -> Vec<String> {
    ENTITIES
        .iter()
        .map(|(component, object)| t.config(component, device, object))
        .collect()
}

fn config(t: &Topics, device: &str, object: &str) -> Value {
    let mut c = json!({
        "name": entity_name(object),
        "unique_id": format!("rzmon_{device}_{object}"),
        "object_id": format!("rzmon_{device}_{object}"),
        "availability_topic": t.availability(),
        "device": {
            "identifiers": [format!("rzmon_{device}")],
            "name": device,
            "manufacturer": "rzmon",
            "model": "ESP32 server-room monitor",
        },
        "origin": { "name": "rzmon", "sw_version": env!("CARGO_PKG_VERSION") },
    });
    let extra = match object {
        "temperature" => json!({
            "device_class": "temperature", "state_class": "measurement",
            "unit_of_measurement": "°C", "state_topic": t.state(device),
            "value_template": "{{ value_json.temperature }}",
        }),
        "humidity" => json!({
            "device_class": "humidity", "state_class": "measurement",
            "unit_of_measurement": "%", "state_topic": t.state(device),
            "value_template": "{{ value_json.humidity }}",
        }),
        "door" => json!({
            "device_class": "lock", "state_topic": t.state(device),
            "value_template": "{{ value_json.door }}",
            "payload_on": "ON", "payload_off": "OFF",
        }),
        "connectivity" => json!({
            "device_class": "connectivity", "entity_category": "diagnostic",
            "state_topic": t.state(device),
            "value_template": "{{ value_json.connectivity }}",
            "payload_on": "ON", "payload_off": "OFF",
        }),
        "access" => json!({
            "event_types": ["granted", "denied"], "state_topic": t.access(device),
            "icon": "mdi:card-account-details",
        }),
        _ => json!({
            "state_class": "measurement", "state_topic": t.state(device),
            "value_template": "{{ value_json.alerts }}", "icon": "mdi:alert",
        }),
    };
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

fn entity_name(object: &str) -> &'static str {
    match object {
        "temperature" => "Temperature",
        "humidity" => "Humidity",
        "door" => "Door",
        "connectivity" => "Connectivity",
        "access" => "Last access",
        _ => "Active alerts",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics {
            discovery: "homeassistant".into(),
            base: "rzmon".into(),
        }
    }

    /// `locked: true` is OFF (HA's lock class: on = unlocked); unknown values are null.
    #[test]
    fn door_is_inverted() {
        let locked = DeviceState {
            locked: Some(true),
            ..DeviceState::default()
        };
        let v: Value = serde_json::from_str(&state_payload(&locked)).unwrap();
        assert_eq!(v["door"], "OFF");
        assert_eq!(v["temperature"], Value::Null);
        let open = DeviceState {
            locked: Some(false),
            online: true,
            ..DeviceState::default()
        };
        let v: Value = serde_json::from_str(&state_payload(&open)).unwrap();
        assert_eq!(
            (v["door"].as_str(), v["connectivity"].as_str()),
            (Some("ON"), Some("ON"))
        );
    }

    /// One HA device per ESP32, every entity with a unique id and the documented keys.
    #[test]
    fn configs_group_entities_under_one_device() {
        let configs = configs(&topics(), "rack-1");
        assert_eq!(configs.len(), ENTITIES.len());
        let (topic, payload) = &configs[0];
        assert_eq!(
            topic,
            "homeassistant/sensor/rzmon_rack-1/temperature/config"
        );
        let v: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["device_class"], "temperature");
        assert_eq!(v["state_class"], "measurement");
        assert_eq!(v["unit_of_measurement"], "°C");
        assert_eq!(v["device"]["identifiers"][0], "rzmon_rack-1");
        assert_eq!(v["availability_topic"], "rzmon/availability");
        assert_eq!(
            removals(&topics(), "rack-1")[2],
            "homeassistant/binary_sensor/rzmon_rack-1/door/config"
        );
    }

    #[test]
    fn card_ids_only_when_enabled() {
        assert_eq!(access_payload(true, None), r#"{"event_type":"granted"}"#);
        assert!(access_payload(false, Some("04A1")).contains("04A1"));
    }
}
