//! Channels as the API sees them: a JSON body becomes a validated [`ChannelSpec`] (create, or
//! a partial update where a secret that is omitted or `"***"` keeps its stored value), and a
//! stored row becomes its public JSON with every secret shown as `"***"`.

use super::channel::{Kind, Target};
use super::policy::Policy;
use crate::model::format_ts;
use crate::store::{ChannelRow, ChannelSpec};
use serde_json::{Map, Value, json};

/// What a secret looks like in answers; sent back, it means "keep the stored one".
pub const MASK: &str = "***";

const POLICY_FIELDS: &[&str] = &[
    "min_severity",
    "group_wait_s",
    "storm_cap",
    "storm_window_s",
    "quiet_hours",
];
/// Fields of the answer a client may send back unchanged in a PUT; they are ignored.
const VIEW_FIELDS: &[&str] = &["id", "read_only", "muted_until", "last_delivery", "created"];

/// A new channel from a `POST /channels` body.
pub fn create(body: &Value) -> Result<ChannelSpec, String> {
    let obj = body.as_object().ok_or("The body must be a JSON object.")?;
    check_fields(obj, &[])?;
    let kind_name = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(kind_sentence)?;
    let kind = Kind::parse(kind_name).ok_or_else(kind_sentence)?;
    let mut settings = obj.get("settings").cloned().unwrap_or(json!({}));
    if let Some(s) = settings.as_object_mut() {
        s.retain(|_, v| v.as_str() != Some(MASK) && !v.is_null());
    }
    let name = match obj.get("name") {
        Some(v) => name(v)?,
        None => kind.as_str().to_owned(),
    };
    finish(
        kind,
        name,
        settings,
        policy(&json!({}), obj)?,
        enabled(obj, true)?,
    )
}

/// The channel `old` changed by a `PUT /channels/{id}` body (partial).
pub fn update(old: &ChannelRow, body: &Value) -> Result<ChannelSpec, String> {
    let obj = body.as_object().ok_or("The body must be a JSON object.")?;
    check_fields(obj, VIEW_FIELDS)?;
    let kind = Kind::parse(&old.kind).ok_or_else(kind_sentence)?;
    if obj
        .get("kind")
        .is_some_and(|k| k.as_str() != Some(kind.as_str()))
    {
        return Err("kind cannot be changed; create a new channel instead".into());
    }
    let name = match obj.get("name") {
        Some(v) => name(v)?,
        None => old.name.clone(),
    };
    let settings = match obj.get("settings") {
        None => old.settings.clone(),
        Some(Value::Object(patch)) => merge_settings(kind, &old.settings, patch),
        Some(_) => return Err("settings must be a JSON object".into()),
    };
    let policy = policy(&old.policy, obj)?;
    finish(kind, name, settings, policy, enabled(obj, old.enabled)?)
}

fn finish(
    kind: Kind,
    name: String,
    settings: Value,
    policy: Value,
    enabled: bool,
) -> Result<ChannelSpec, String> {
    Target::parse(kind, &settings)?;
    Ok(ChannelSpec {
        name,
        kind: kind.as_str().to_owned(),
        settings,
        policy,
        enabled,
    })
}

fn kind_sentence() -> String {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    format!("kind must be one of {}", kinds.join(", "))
}

fn check_fields(obj: &Map<String, Value>, ignored: &[&str]) -> Result<(), String> {
    let known = ["name", "kind", "settings", "enabled"];
    match obj.keys().find(|k| {
        let k = k.as_str();
        !known.contains(&k) && !POLICY_FIELDS.contains(&k) && !ignored.contains(&k)
    }) {
        Some(k) => Err(format!("unknown field {k:?}")),
        None => Ok(()),
    }
}

fn name(v: &Value) -> Result<String, String> {
    match v.as_str().map(str::trim) {
        Some(s) if !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control) => {
            Ok(s.to_owned())
        }
        _ => Err("name must be 1-64 printable characters".into()),
    }
}

fn enabled(obj: &Map<String, Value>, default: bool) -> Result<bool, String> {
    match obj.get("enabled") {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| "enabled must be true or false".into()),
    }
}

/// `base` with the policy fields of `obj` laid over it, validated.
fn policy(base: &Value, obj: &Map<String, Value>) -> Result<Value, String> {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    for field in POLICY_FIELDS {
        if let Some(v) = obj.get(*field) {
            // Each field alone first, so a type error names its field.
            let alone = json!({ *field: v });
            serde_json::from_value::<Policy>(alone).map_err(|e| format!("{field}: {e}"))?;
            merged.insert((*field).to_owned(), v.clone());
        }
    }
    let p: Policy = serde_json::from_value(Value::Object(merged)).map_err(|e| e.to_string())?;
    p.validate()?;
    serde_json::to_value(&p).map_err(|e| e.to_string())
}

/// Lays `patch` over `old`: `null` clears a field, a secret given as `"***"` keeps its value
/// (inside `headers` per header).
fn merge_settings(kind: Kind, old: &Value, patch: &Map<String, Value>) -> Value {
    let mut out = old.as_object().cloned().unwrap_or_default();
    let secret = kind.secret_fields();
    for (k, v) in patch {
        match v {
            Value::Null => {
                out.remove(k);
            }
            Value::String(s) if s == MASK && secret.contains(&k.as_str()) => {}
            Value::Object(new) if k == "headers" => {
                let before = out
                    .get(k)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let merged: Map<String, Value> = new
                    .iter()
                    .filter_map(|(h, val)| match val.as_str() {
                        Some(MASK) => before.get(h).map(|old| (h.clone(), old.clone())),
                        _ => Some((h.clone(), val.clone())),
                    })
                    .collect();
                out.insert(k.clone(), Value::Object(merged));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `settings` with every secret replaced by `"***"` (header names stay visible).
pub fn redact(kind: &str, settings: &Value) -> Value {
    let secret = Kind::parse(kind).map_or(&[][..], Kind::secret_fields);
    let mut out = settings.as_object().cloned().unwrap_or_default();
    for (k, v) in out.iter_mut() {
        if !secret.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        *v = match v {
            Value::Object(h) => Value::Object(h.keys().map(|n| (n.clone(), json!(MASK))).collect()),
            _ => json!(MASK),
        };
    }
    Value::Object(out)
}

/// The public JSON of a channel.
pub fn view(row: &ChannelRow) -> Value {
    let mut v = json!({
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "enabled": row.enabled,
        "read_only": row.env_key.is_some(),
        "settings": redact(&row.kind, &row.settings),
        "muted_until": row.muted_until_ms.filter(|&m| m > crate::model::now_ms()).map(format_ts),
        "last_delivery": row.last.as_ref().map(|(at, state, detail)| json!({
            "at": format_ts(*at), "state": state, "detail": detail,
        })),
        "created": format_ts(row.created_ms),
    });
    let policy: Policy = serde_json::from_value(row.policy.clone()).unwrap_or_default();
    if let (Some(obj), Ok(Value::Object(p))) = (v.as_object_mut(), serde_json::to_value(policy)) {
        obj.extend(p);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(spec: ChannelSpec) -> ChannelRow {
        ChannelRow {
            id: 1,
            name: spec.name,
            kind: spec.kind,
            settings: spec.settings,
            policy: spec.policy,
            enabled: spec.enabled,
            env_key: None,
            muted_until_ms: None,
            last: None,
            created_ms: 0,
        }
    }

    #[test]
    fn secrets_are_masked_and_kept() {
        let spec = create(&json!({"name": "Phone", "kind": "ntfy",
            "settings": {"server": "http://127.0.0.1:1", "topic": "t", "token": "tk_secret"}}))
        .unwrap();
        let r = row(spec);
        let shown = view(&r).to_string();
        assert!(!shown.contains("tk_secret"), "{shown}");
        assert!(shown.contains("\"token\":\"***\""), "{shown}");
        // "***" and omission keep the token; null clears it.
        let kept = update(&r, &json!({"settings": {"token": "***", "topic": "u"}})).unwrap();
        assert_eq!(kept.settings["token"], "tk_secret");
        assert_eq!(kept.settings["topic"], "u");
        let kept = update(&r, &json!({"name": "Other"})).unwrap();
        assert_eq!(kept.settings["token"], "tk_secret");
        let cleared = update(&r, &json!({"settings": {"token": null}})).unwrap();
        assert!(cleared.settings.get("token").is_none());
    }

    #[test]
    fn webhook_headers_masked_per_header() {
        let r = row(create(
            &json!({"kind": "webhook", "settings": {"url": "http://127.0.0.1:1/h",
            "headers": {"Authorization": "Bearer abc", "X-Env": "prod"}}}),
        )
        .unwrap());
        assert_eq!(view(&r)["settings"]["headers"]["Authorization"], "***");
        let u = update(
            &r,
            &json!({"settings": {"headers": {"Authorization": "***"}}}),
        )
        .unwrap();
        assert_eq!(
            u.settings["headers"],
            json!({"Authorization": "Bearer abc"})
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let e = create(&json!({"kind": "pager"})).err().unwrap();
        assert!(e.contains("kind"), "{e}");
        let e = create(&json!({"kind": "gotify", "settings": {"server": "ftp://x", "token": "t"}}))
            .err()
            .unwrap();
        assert!(e.contains("settings.server"), "{e}");
        let e =
            create(&json!({"kind": "slack", "settings": {"url": "https://h/x"}, "storm_cap": 0}))
                .err()
                .unwrap();
        assert!(e.contains("storm_cap"), "{e}");
        let e = create(&json!({"kind": "slack", "settings": {"url": "https://h/x"}, "color": 1}))
            .err()
            .unwrap();
        assert!(e.contains("color"), "{e}");
        let r = row(create(&json!({"kind": "slack", "settings": {"url": "https://h/x"}})).unwrap());
        let e = update(&r, &json!({"kind": "discord"})).err().unwrap();
        assert!(e.contains("kind"), "{e}");
    }
}
