//! `GET /settings` (authenticated): the server's settings and rules the dashboard needs, so it
//! hard-codes none of them — how a device reaches the broker, the time limits of commands and
//! enrolment, the password minimum, size limits and the id rules in their one sentence each.

use super::Shared;
use super::auth_filter::Principal;
use super::error::json_response;
use super::routes::{Endpoints, Table, finish};
use crate::auth::policy::MIN_PASSWORD_LEN;
use crate::model::{ACCESS_ID_RULE, DEVICE_ID_RULE};
use serde::Serialize;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// How a device connects, as it should be configured (the bound public ports; `None` = that
/// port is not served).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSettings {
    /// The broker's host as devices reach it; `None` = the dashboard's own host (the embedded
    /// broker), the external broker's host with `RZMON_BROKER`.
    pub mqtt_host: Option<String>,
    /// Whether devices connect to an external broker (`RZMON_BROKER`), whose password file must
    /// list every device too.
    pub external_broker: bool,
    pub mqtt_port: Option<u16>,
    /// MQTT over TLS.
    pub mqtts_port: Option<u16>,
    /// The dashboard over HTTPS.
    pub https_port: Option<u16>,
    /// Where the generated CA certificate is downloaded (`/tls/ca.pem`).
    pub ca_url: Option<String>,
    pub topic_prefix: String,
    /// Largest MQTT packet accepted, in bytes.
    pub mqtt_max_packet: u32,
}

/// The body of `GET /settings`. New settings are new fields (clients ignore unknown ones).
#[derive(Serialize)]
struct Settings<'a> {
    #[serde(flatten)]
    device: &'a DeviceSettings,
    command_timeout_s: u64,
    enrol_timeout_s: u64,
    password_min_length: usize,
    body_limit: u64,
    device_id_rule: &'static str,
    access_id_rule: &'static str,
}

pub fn routes(t: &Table) -> Endpoints {
    finish(t.get("settings").and(t.state()).then(settings))
}

async fn settings(_user: Principal, state: Shared) -> Response {
    let c = &state.ctx.config;
    json_response(
        StatusCode::OK,
        &Settings {
            device: &c.device,
            command_timeout_s: c.command_timeout.as_secs(),
            enrol_timeout_s: c.enrol_timeout.as_secs(),
            password_min_length: MIN_PASSWORD_LEN,
            body_limit: c.body_limit,
            device_id_rule: DEVICE_ID_RULE,
            access_id_rule: ACCESS_ID_RULE,
        },
    )
}
