//! The simulated ESP32's state (pure, deterministic with a seed): readings that drift, a door
//! lock, a config, an access list, and the answers to every command of the protocol.

use crate::model::Command;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// What a command asks of the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish this reply now.
    Reply(Value),
    /// Wait for a card, then call `enrolled(msg_id)`.
    Enrol { msg_id: u64 },
}

/// One simulated device.
pub struct SimDevice {
    rng: StdRng,
    tmp: f64,
    lf: f64,
    locked: bool,
    seq: u64,
    config: Map<String, Value>,
    access: BTreeSet<String>,
    access_version: i64,
}

impl SimDevice {
    pub fn new(seed: u64, interval_s: f64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let seq = rng.random_range(0..1_000_000);
        let config = json!({
            "interval_s": interval_s, "tmp_max": 30.0, "lf_max": 70.0,
            "unlock_seconds": 5, "buzzer": true,
        });
        Self {
            tmp: rng.random_range(20.0..24.0),
            lf: rng.random_range(35.0..50.0),
            locked: true,
            seq,
            rng,
            config: config.as_object().cloned().unwrap_or_default(),
            access: BTreeSet::new(),
            access_version: 0,
        }
    }

    /// Telemetry interval from the config.
    pub fn interval_s(&self) -> f64 {
        self.config
            .get("interval_s")
            .and_then(Value::as_f64)
            .unwrap_or(5.0)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The next telemetry message: a random walk within 18–35 °C and 25–70 %.
    pub fn telemetry(&mut self) -> Value {
        self.tmp = (self.tmp + self.rng.random_range(-0.3..0.3)).clamp(18.0, 35.0);
        self.lf = (self.lf + self.rng.random_range(-1.0..1.0)).clamp(25.0, 70.0);
        if self.rng.random_bool(0.05) {
            self.locked = !self.locked;
        }
        json!({
            "tmp": round1(self.tmp), "lf": round1(self.lf),
            "locked": self.locked, "seq": self.next_seq(),
        })
    }

    /// With probability `p`, a card at the reader: mostly a known one, sometimes a stranger.
    pub fn maybe_access(&mut self, p: f64) -> Option<Value> {
        if !self.rng.random_bool(p.clamp(0.0, 1.0)) {
            return None;
        }
        let known: Vec<&String> = self.access.iter().collect();
        let id = if !known.is_empty() && self.rng.random_bool(0.8) {
            known[self.rng.random_range(0..known.len())].clone()
        } else {
            self.card_id()
        };
        let granted = self.access.contains(&id);
        Some(json!({ "access_id": id, "granted": granted, "seq": self.next_seq() }))
    }

    /// With probability `p` (or when too hot), an incident.
    pub fn maybe_incident(&mut self, p: f64) -> Option<Value> {
        let tmp_max = self
            .config
            .get("tmp_max")
            .and_then(Value::as_f64)
            .unwrap_or(30.0);
        let (kind, message) = if self.tmp > tmp_max && self.rng.random_bool(0.2) {
            (
                "temperature_high",
                format!("temperature {:.1} °C above {tmp_max} °C", self.tmp),
            )
        } else if self.rng.random_bool(p.clamp(0.0, 1.0)) {
            match self.rng.random_range(0..2) {
                0 => (
                    "door_open_too_long",
                    "door open for more than 60 s".to_owned(),
                ),
                _ => (
                    "unauthorized_access",
                    "door opened without a valid card".to_owned(),
                ),
            }
        } else {
            return None;
        };
        Some(json!({ "type": kind, "message": message, "seq": self.next_seq() }))
    }

    fn card_id(&mut self) -> String {
        format!("{:08X}", self.rng.random::<u32>())
    }

    /// Handles one payload from the command topic.
    pub fn command(&mut self, payload: &[u8]) -> Action {
        let parsed: Option<Map<String, Value>> = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.as_object().cloned());
        let Some(msg) = parsed else {
            return Action::Reply(json!({ "ok": false, "error": "command is not a JSON object" }));
        };
        let Some(msg_id) = msg.get("msgID").and_then(Value::as_u64) else {
            return Action::Reply(json!({ "ok": false, "error": "command has no numeric msgID" }));
        };
        let value = msg.get("value").filter(|v| !v.is_null());
        let name = msg.get("command").and_then(Value::as_str);
        let Some(command) = name.and_then(Command::parse) else {
            let error = match name {
                Some(other) => format!("unknown command {other:?}"),
                None => "command has no name".to_owned(),
            };
            return Action::Reply(reply(msg_id, Err(error)));
        };
        let result = match command {
            Command::GetConfig => Ok(json!({ "config": self.config })),
            Command::SetConfig => self.set_config(value),
            Command::AddAccessId => match value
                .and_then(|v| v.get("access_id"))
                .and_then(Value::as_str)
            {
                Some(id) => {
                    self.access.insert(id.to_owned());
                    Ok(json!({ "access_id": id }))
                }
                None if value.is_none() => return Action::Enrol { msg_id },
                None => Err("addAccessId needs {\"access_id\": \"...\"} or no value".to_owned()),
            },
            Command::RemoveAccessId => match value
                .and_then(|v| v.get("access_id"))
                .and_then(Value::as_str)
            {
                Some(id) if self.access.remove(id) => Ok(json!({})),
                Some(_) => Err("unknown access id".to_owned()),
                None => Err("removeAccessId needs {\"access_id\": \"...\"}".to_owned()),
            },
            Command::SyncAccessIds => self.sync(value),
        };
        Action::Reply(reply(msg_id, result))
    }

    /// A card was presented for enrolment `msg_id`: it joins the list; the reply carries it.
    pub fn enrolled(&mut self, msg_id: u64) -> Value {
        let id = self.card_id();
        self.access.insert(id.clone());
        reply(msg_id, Ok(json!({ "access_id": id })))
    }

    fn set_config(&mut self, value: Option<&Value>) -> Result<Value, String> {
        let changes = value
            .and_then(Value::as_object)
            .ok_or("setConfig needs a JSON object")?;
        let mut next = self.config.clone();
        for (key, v) in changes {
            let ok = match key.as_str() {
                "interval_s" => v.as_f64().is_some_and(|x| (1.0..=3600.0).contains(&x)),
                "tmp_max" => v.as_f64().is_some_and(|x| (-40.0..=125.0).contains(&x)),
                "lf_max" => v.as_f64().is_some_and(|x| (0.0..=100.0).contains(&x)),
                "unlock_seconds" => v.as_u64().is_some_and(|x| (1..=60).contains(&x)),
                "buzzer" => v.is_boolean(),
                _ => return Err(format!("unknown config key {key:?}")),
            };
            if !ok {
                return Err(format!("invalid value for {key}: {v}"));
            }
            next.insert(key.clone(), v.clone());
        }
        self.config = next;
        Ok(json!({ "config": self.config }))
    }

    fn sync(&mut self, value: Option<&Value>) -> Result<Value, String> {
        let v = value.ok_or("syncAccessIds needs {\"version\", \"ids\"}")?;
        let version = v
            .get("version")
            .and_then(Value::as_i64)
            .ok_or("missing version")?;
        let ids = v
            .get("ids")
            .and_then(Value::as_array)
            .ok_or("missing ids")?;
        self.access = ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        self.access_version = version;
        Ok(json!({ "version": version, "count": self.access.len() }))
    }

    pub fn access_list(&self) -> Vec<String> {
        self.access.iter().cloned().collect()
    }
}

fn reply(msg_id: u64, result: Result<Value, String>) -> Value {
    match result {
        Ok(mut v) => {
            v["msgID"] = json!(msg_id);
            v["ok"] = json!(true);
            v
        }
        Err(e) => json!({ "msgID": msg_id, "ok": false, "error": e }),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(d: &mut SimDevice, s: &str) -> Value {
        match d.command(s.as_bytes()) {
            Action::Reply(v) => v,
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn telemetry_stays_in_range_and_counts_up() {
        let mut d = SimDevice::new(1, 5.0);
        let mut last = 0;
        for _ in 0..10_000 {
            let t = d.telemetry();
            let (tmp, lf) = (t["tmp"].as_f64().unwrap(), t["lf"].as_f64().unwrap());
            assert!((18.0..=35.0).contains(&tmp) && (25.0..=70.0).contains(&lf));
            let seq = t["seq"].as_u64().unwrap();
            assert!(seq > last);
            last = seq;
        }
    }

    #[test]
    fn config_round_trip_and_validation() {
        let mut d = SimDevice::new(1, 5.0);
        assert_eq!(
            cmd(&mut d, r#"{"msgID":1,"command":"getConfig"}"#)["config"]["tmp_max"],
            30.0
        );
        let ok = cmd(
            &mut d,
            r#"{"msgID":2,"command":"setConfig","value":{"interval_s":2}}"#,
        );
        assert_eq!(
            (ok["ok"].clone(), ok["msgID"].clone()),
            (json!(true), json!(2))
        );
        assert_eq!(d.interval_s(), 2.0);
        let bad = cmd(
            &mut d,
            r#"{"msgID":3,"command":"setConfig","value":{"interval_s":0}}"#,
        );
        assert_eq!(bad["ok"], false);
        assert!(bad["error"].as_str().unwrap().contains("interval_s"));
        let bad = cmd(
            &mut d,
            r#"{"msgID":4,"command":"setConfig","value":{"colour":"red"}}"#,
        );
        assert!(bad["error"].as_str().unwrap().contains("colour"));
        assert_eq!(d.interval_s(), 2.0, "a refused change changes nothing");
    }

    #[test]
    fn access_list_commands() {
        let mut d = SimDevice::new(1, 5.0);
        cmd(
            &mut d,
            r#"{"msgID":1,"command":"addAccessId","value":{"access_id":"04A1"}}"#,
        );
        assert_eq!(d.access_list(), ["04A1"]);
        assert_eq!(
            d.command(br#"{"msgID":2,"command":"addAccessId"}"#),
            Action::Enrol { msg_id: 2 }
        );
        let r = d.enrolled(2);
        assert_eq!(d.access_list().len(), 2);
        assert!(
            d.access_list()
                .contains(&r["access_id"].as_str().unwrap().to_owned())
        );
        assert_eq!(
            cmd(
                &mut d,
                r#"{"msgID":3,"command":"removeAccessId","value":{"access_id":"04A1"}}"#
            )["ok"],
            true
        );
        let s = cmd(
            &mut d,
            r#"{"msgID":4,"command":"syncAccessIds","value":{"version":7,"ids":["X1","X2"]}}"#,
        );
        assert_eq!(
            (s["version"].clone(), s["count"].clone()),
            (json!(7), json!(2))
        );
        assert_eq!(d.access_list(), ["X1", "X2"]);
        for _ in 0..200 {
            if let Some(a) = d.maybe_access(1.0) {
                let id = a["access_id"].as_str().unwrap().to_owned();
                assert_eq!(a["granted"], json!(d.access_list().contains(&id)));
            }
        }
    }

    #[test]
    fn garbage_commands_get_a_refusal_not_a_crash() {
        let mut d = SimDevice::new(1, 5.0);
        assert_eq!(cmd(&mut d, "nonsense")["ok"], false);
        assert_eq!(
            cmd(&mut d, r#"{"msgID":9,"command":"selfDestruct"}"#)["msgID"],
            9
        );
    }
}
