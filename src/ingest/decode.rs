//! Payload decoding (pure): bytes of one device message → a typed `Body`, or the reason it is
//! rejected. Nothing half-parsed ever leaves this module.

use crate::model::{
    ACCESS_ID_RULE, AccessEvent, AccessId, Body, Incident, Kind, Status, Telemetry,
};
use serde_json::{Map, Value};

/// Plausible ranges of the typed telemetry fields.
const TMP_RANGE: (f64, f64) = (-40.0, 125.0);
const LF_RANGE: (f64, f64) = (0.0, 100.0);
/// Longest incident `type`.
const MAX_TYPE_LEN: usize = 64;

/// Why a payload was rejected (logged with the device id, counted).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error("payload is not valid UTF-8 JSON")]
    NotJson,
    #[error("payload must be a JSON object")]
    NotObject,
    #[error("field `{0}` is required")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type (expected {1})")]
    WrongType(&'static str, &'static str),
    #[error("field `{0}` is out of range ({1})")]
    OutOfRange(&'static str, &'static str),
    #[error("status must be `online` or `offline`")]
    BadStatus,
    #[error("replies are handled by the commands module, not stored")]
    Reply,
}

/// Decodes the payload of a message published on a `kind` topic.
pub fn decode(kind: Kind, payload: &[u8]) -> Result<Body, Reject> {
    match kind {
        Kind::Telemetry => telemetry(object(payload)?).map(Body::Telemetry),
        Kind::Incident => incident(object(payload)?).map(Body::Incident),
        Kind::Access => access(object(payload)?).map(Body::Access),
        Kind::Status => status(payload).map(Body::Status),
        Kind::Reply => Err(Reject::Reply),
    }
}

fn object(payload: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(payload).map_err(|_| Reject::NotJson)? {
        Value::Object(m) => Ok(m),
        _ => Err(Reject::NotObject),
    }
}

fn number_in(
    m: &Map<String, Value>,
    key: &'static str,
    (lo, hi): (f64, f64),
    range: &'static str,
) -> Result<Option<f64>, Reject> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or(Reject::WrongType(key, "a number"))?;
            if (lo..=hi).contains(&v) {
                Ok(Some(v))
            } else {
                Err(Reject::OutOfRange(key, range))
            }
        }
        Some(_) => Err(Reject::WrongType(key, "a number")),
    }
}

fn seq(m: &Map<String, Value>) -> Result<Option<i64>, Reject> {
    match m.get("seq") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|s| *s >= 0)
            .map(Some)
            .ok_or(Reject::WrongType("seq", "a non-negative integer")),
    }
}

fn telemetry(m: Map<String, Value>) -> Result<Telemetry, Reject> {
    let tmp = number_in(&m, "tmp", TMP_RANGE, "-40 to 125 °C")?;
    let lf = number_in(&m, "lf", LF_RANGE, "0 to 100 %")?;
    let locked = match m.get("locked") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(Reject::WrongType("locked", "true or false")),
    };
    let seq = seq(&m)?;
    Ok(Telemetry {
        tmp,
        lf,
        locked,
        seq,
        payload: m,
    })
}

fn incident(m: Map<String, Value>) -> Result<Incident, Reject> {
    let kind = match m.get("type") {
        None | Some(Value::Null) => return Err(Reject::Missing("type")),
        Some(Value::String(s)) if s.is_empty() || s.chars().count() > MAX_TYPE_LEN => {
            return Err(Reject::OutOfRange("type", "1 to 64 characters"));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Reject::WrongType("type", "a string")),
    };
    seq(&m)?;
    Ok(Incident { kind, payload: m })
}

fn access(m: Map<String, Value>) -> Result<AccessEvent, Reject> {
    let access_id = match m.get("access_id") {
        None | Some(Value::Null) => return Err(Reject::Missing("access_id")),
        Some(Value::String(s)) => match AccessId::parse(s) {
            Some(id) => id,
            None => return Err(Reject::OutOfRange("access_id", ACCESS_ID_RULE)),
        },
        Some(_) => return Err(Reject::WrongType("access_id", "a string")),
    };
    let granted = match m.get("granted") {
        None | Some(Value::Null) => return Err(Reject::Missing("granted")),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Reject::WrongType("granted", "true or false")),
    };
    seq(&m)?;
    Ok(AccessEvent {
        access_id,
        granted,
        payload: m,
    })
}

fn status(payload: &[u8]) -> Result<Status, Reject> {
    let text = std::str::from_utf8(payload).map_err(|_| Reject::BadStatus)?;
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    match text {
        "online" => Ok(Status::Online),
        "offline" => Ok(Status::Offline),
        _ => Err(Reject::BadStatus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_keeps_extra_fields_and_types_known_ones() {
        let Ok(Body::Telemetry(t)) = decode(
            Kind::Telemetry,
            br#"{"tmp":23.5,"lf":41,"locked":true,"seq":7,"fw":"1.2"}"#,
        ) else {
            panic!("not telemetry")
        };
        assert_eq!(
            (t.tmp, t.lf, t.locked, t.seq),
            (Some(23.5), Some(41.0), Some(true), Some(7))
        );
        assert_eq!(t.payload["fw"], "1.2");
    }

    #[test]
    fn telemetry_rejections() {
        let cases: &[(&[u8], Reject)] = &[
            (b"not json", Reject::NotJson),
            (b"\xff\xfe", Reject::NotJson),
            (b"[1,2]", Reject::NotObject),
            (b"42", Reject::NotObject),
            (br#"{"tmp":"hot"}"#, Reject::WrongType("tmp", "a number")),
            (
                br#"{"tmp":126}"#,
                Reject::OutOfRange("tmp", "-40 to 125 °C"),
            ),
            (
                br#"{"tmp":-41}"#,
                Reject::OutOfRange("tmp", "-40 to 125 °C"),
            ),
            (br#"{"lf":100.5}"#, Reject::OutOfRange("lf", "0 to 100 %")),
            (
                br#"{"locked":"yes"}"#,
                Reject::WrongType("locked", "true or false"),
            ),
            (
                br#"{"seq":-1}"#,
                Reject::WrongType("seq", "a non-negative integer"),
            ),
            (
                br#"{"seq":1.5}"#,
                Reject::WrongType("seq", "a non-negative integer"),
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(
                decode(Kind::Telemetry, payload).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn incident_needs_a_string_type() {
        assert!(matches!(
            decode(Kind::Incident, br#"{"type":"door","message":"m"}"#),
            Ok(Body::Incident(Incident { ref kind, .. })) if kind == "door"
        ));
        assert_eq!(
            decode(Kind::Incident, br#"{"message":"m"}"#).unwrap_err(),
            Reject::Missing("type")
        );
        assert_eq!(
            decode(Kind::Incident, br#"{"type":5}"#).unwrap_err(),
            Reject::WrongType("type", "a string")
        );
        assert!(decode(Kind::Incident, br#"{"type":""}"#).is_err());
    }

    #[test]
    fn access_needs_id_and_granted() {
        assert!(decode(Kind::Access, br#"{"access_id":"04A1B2C3","granted":true}"#).is_ok());
        assert_eq!(
            decode(Kind::Access, br#"{"granted":true}"#).unwrap_err(),
            Reject::Missing("access_id")
        );
        assert_eq!(
            decode(Kind::Access, br#"{"access_id":"04A1"}"#).unwrap_err(),
            Reject::Missing("granted")
        );
        assert!(decode(Kind::Access, br#"{"access_id":"a b","granted":true}"#).is_err());
    }

    #[test]
    fn status_is_online_or_offline() {
        assert_eq!(
            decode(Kind::Status, b"online"),
            Ok(Body::Status(Status::Online))
        );
        assert_eq!(
            decode(Kind::Status, b"\"offline\""),
            Ok(Body::Status(Status::Offline))
        );
        assert_eq!(
            decode(Kind::Status, b"maybe").unwrap_err(),
            Reject::BadStatus
        );
        assert_eq!(decode(Kind::Reply, b"{}").unwrap_err(), Reject::Reply);
    }
}
