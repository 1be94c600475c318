//! Plain domain types shared by every part: device ids, decoded device messages and the live
//! events pushed to browsers. Imports nothing of ours.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Longest device id we accept (it is also the MQTT username and a topic level).
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// How the device-id rule is explained to people.
pub const DEVICE_ID_RULE: &str = "1-64 characters of A-Z a-z 0-9 - _";

/// A device id: 1–64 characters of `[A-Za-z0-9_-]`, so it is safe as a topic level,
/// an MQTT client id and a URL parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates `s`; `None` when it is empty, too long or has other characters.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_DEVICE_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Deserializing validates, so a stored or received id always obeys the rule.
impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a device id: use {DEVICE_ID_RULE}"))
        })
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest access id (card UID as the reader prints it).
pub const MAX_ACCESS_ID_LEN: usize = 64;

/// How the access-id rule is explained to people.
pub const ACCESS_ID_RULE: &str = "1-64 characters of A-Z a-z 0-9 : _ -";

/// An access id (a card UID as the reader prints it): 1–64 of `A-Z a-z 0-9 : _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AccessId(String);

impl AccessId {
    /// Validates `s`; `None` when it breaks [`ACCESS_ID_RULE`].
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ACCESS_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AccessId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not an access id: use {ACCESS_ID_RULE}"))
        })
    }
}

impl fmt::Display for AccessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The commands the server sends on `<prefix>/<dev>/command` as `"command"` (serde names are
/// the protocol's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    GetConfig,
    SetConfig,
    AddAccessId,
    RemoveAccessId,
    SyncAccessIds,
}

impl Command {
    pub const ALL: [Command; 5] = [
        Command::GetConfig,
        Command::SetConfig,
        Command::AddAccessId,
        Command::RemoveAccessId,
        Command::SyncAccessIds,
    ];

    /// The protocol name (`getConfig`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::GetConfig => "getConfig",
            Command::SetConfig => "setConfig",
            Command::AddAccessId => "addAccessId",
            Command::RemoveAccessId => "removeAccessId",
            Command::SyncAccessIds => "syncAccessIds",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a dashboard user may do: `admin` everything, `viewer` read only (see `api::routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only. Ordered below `Admin`, so `min` of two roles is the weaker one.
    Viewer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// `None` for anything but `admin` or `viewer` (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audit-log entry records (its `action` column; the names are the API's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Login,
    PasswordChange,
    DeviceAdd,
    DevicePasswd,
    DeviceRemove,
    AddAccessId,
    RevokeAccessId,
    SetConfig,
    AlertAck,
    AlertRuleAdd,
    AlertRuleChange,
    AlertRuleRemove,
    AlertRuleSnooze,
    Logout,
    LogoutEverywhere,
    ChannelAdd,
    ChannelUpdate,
    ChannelDelete,
    ChannelTest,
    ChannelMute,
    ChannelUnmute,
    UserAdd,
    UserRemove,
    UserRole,
    UserPasswordReset,
    TokenAdd,
    TokenRemove,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::PasswordChange => "passwordChange",
            AuditAction::DeviceAdd => "deviceAdd",
            AuditAction::DevicePasswd => "devicePasswd",
            AuditAction::DeviceRemove => "deviceRemove",
            AuditAction::AddAccessId => "addAccessID",
            AuditAction::RevokeAccessId => "revokeAccessID",
            AuditAction::SetConfig => "setConfig",
            AuditAction::AlertAck => "alertAck",
            AuditAction::AlertRuleAdd => "alertRuleAdd",
            AuditAction::AlertRuleChange => "alertRuleChange",
            AuditAction::AlertRuleRemove => "alertRuleRemove",
            AuditAction::AlertRuleSnooze => "alertRuleSnooze",
            AuditAction::Logout => "logout",
            AuditAction::LogoutEverywhere => "logoutEverywhere",
            AuditAction::ChannelAdd => "channelAdd",
            AuditAction::ChannelUpdate => "channelUpdate",
            AuditAction::ChannelDelete => "channelDelete",
            AuditAction::ChannelTest => "channelTest",
            AuditAction::ChannelMute => "channelMute",
            AuditAction::ChannelUnmute => "channelUnmute",
            AuditAction::UserAdd => "userAdd",
            AuditAction::UserRemove => "userRemove",
            AuditAction::UserRole => "userRole",
            AuditAction::UserPasswordReset => "userPasswordReset",
            AuditAction::TokenAdd => "tokenAdd",
            AuditAction::TokenRemove => "tokenRemove",
        }
    }
}

/// How an attempted config change ended, as the config history keeps it (`outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The device confirmed the change.
    Confirmed,
    /// Why it did not: offline, no answer in time, or the device's refusal, as a sentence.
    Failed(String),
}

impl ConfigOutcome {
    const CONFIRMED: &'static str = "confirmed";

    pub fn is_confirmed(&self) -> bool {
        *self == ConfigOutcome::Confirmed
    }

    /// The stored text: `confirmed` or the sentence.
    pub fn as_str(&self) -> &str {
        match self {
            ConfigOutcome::Confirmed => Self::CONFIRMED,
            ConfigOutcome::Failed(why) => why,
        }
    }

    /// Reads the stored text back.
    pub fn parse(text: &str) -> Self {
        if text == Self::CONFIRMED {
            ConfigOutcome::Confirmed
        } else {
            ConfigOutcome::Failed(text.to_owned())
        }
    }
}

/// Serialized as its stored text.
impl Serialize for ConfigOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The topic kinds a device may publish on (`<prefix>/<dev>/<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Telemetry,
    Incident,
    Access,
    Reply,
    Status,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Telemetry,
        Kind::Incident,
        Kind::Access,
        Kind::Reply,
        Kind::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Telemetry => "telemetry",
            Kind::Incident => "incident",
            Kind::Access => "access",
            Kind::Reply => "reply",
            Kind::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A telemetry message. Known fields are typed; the whole object is kept in `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Temperature in °C (−40…125).
    pub tmp: Option<f64>,
    /// Relative humidity in % (0…100).
    pub lf: Option<f64>,
    /// Door lock state.
    pub locked: Option<bool>,
    /// Device sequence number; a repeated (device, seq) is a QoS 1 redelivery and is ignored.
    pub seq: Option<i64>,
    /// The complete JSON object as received (including the fields above).
    pub payload: Map<String, Value>,
}

/// An incident reported by a device; `kind` is the required `type` field.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub kind: String,
    pub payload: Map<String, Value>,
}

/// A card presented at a device's reader.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessEvent {
    pub access_id: AccessId,
    pub granted: bool,
    pub payload: Map<String, Value>,
}

/// Online state a device announces on its status topic (retained; `offline` is its last will).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Offline => "offline",
        }
    }
}

/// What a valid device message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Telemetry(Telemetry),
    Incident(Incident),
    Access(AccessEvent),
    Status(Status),
}

/// A validated device message with the server's receive time; what ingest hands to the store
/// writer and the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub device: DeviceId,
    /// Server receive time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub body: Body,
}

/// A live event as pushed on `/ws`: `{"type","device","timestamp","data"}`.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub device: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    pub data: Value,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds (`2026-11-28T15:04:05.123Z`).
pub fn format_ts(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

impl Message {
    /// The live event for this message (`data` is the stored payload, or `{"status":..}`).
    pub fn live_event(&self) -> LiveEvent {
        let (kind, data) = match &self.body {
            Body::Telemetry(t) => ("telemetry", Value::Object(t.payload.clone())),
            Body::Incident(i) => ("incident", Value::Object(i.payload.clone())),
            Body::Access(a) => ("access", Value::Object(a.payload.clone())),
            Body::Status(s) => ("device", serde_json::json!({ "status": s.as_str() })),
        };
        LiveEvent {
            kind,
            device: self.device.to_string(),
            timestamp: format_ts(self.ts_ms),
            data,
        }
    }
}

/// A device message on its way from the MQTT side (the gate; an external broker's client) to
/// ingest: who sent it (established by the MQTT side, never read from the payload), on which
/// topic kind, the raw payload, and the handle that acknowledges it.
pub struct Inbound {
    pub device: DeviceId,
    pub kind: Kind,
    pub payload: bytes::Bytes,
    /// `None` for QoS 0 and for last wills: nobody waits for them.
    pub ack: Option<Ack>,
}

/// Acknowledges one device message once it is dealt with: committed, recognised as a duplicate
/// of a committed one, or rejected as invalid (logged and counted; re-sending cannot help).
/// Dropping it without `done` means "not stored": the device gets no acknowledgement and keeps
/// the message.
pub struct Ack(Box<dyn FnOnce() + Send>);

impl Ack {
    /// `on_done` runs once, on the thread that calls `done` (keep it short: it may run on the
    /// store writer's thread).
    pub fn new(on_done: impl FnOnce() + Send + 'static) -> Self {
        Self(Box::new(on_done))
    }

    pub fn done(self) {
        (self.0)();
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ack")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_rejects_topic_metacharacters() {
        assert!(DeviceId::parse("esp32-1").is_some());
        for bad in ["", "a/b", "+", "#", "a b", &"x".repeat(65)] {
            assert!(DeviceId::parse(bad).is_none(), "{bad:?}");
        }
    }

    /// The command names are the protocol's, the same through serde and `as_str`.
    #[test]
    fn command_names() {
        for c in Command::ALL {
            assert_eq!(serde_json::to_value(c).ok(), Some(c.as_str().into()));
            assert_eq!(Command::parse(c.as_str()), Some(c));
        }
        assert_eq!(Command::SyncAccessIds.as_str(), "syncAccessIds");
        assert_eq!(Command::parse("reboot"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(format_ts(1_764_342_245_123), "2025-11-28T15:04:05.123Z");
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000Z");
    }
}
