//! rzmon: a server-room monitor and access controller for ESP32 devices in one process.
//!
//! ```text
//! ESP32 ──MQTT──▶ broker::gate ──loopback──▶ broker (rumqttd) ──local link──▶ ingest
//!                                                             ingest ──▶ store (one batching writer)
//!                                                             ingest ──▶ hub (broadcast)
//!                                                             ingest ──▶ commands (replies, presence)
//! browser ◀──HTTP/WS── api ◀── store (readers) + hub
//!                      api ──▶ commands ──▶ ingest's link ──▶ broker ──▶ ESP32 (msgID request/response)
//! ```
//!
//! Lower parts never import higher ones: `model` imports nothing of ours; `store` and `hub`
//! only `model`; `broker` never reaches into `store` (credentials are checked by a closure from
//! `device_auth`); `api` never touches rumqttd. `app` is the only module that knows every part.
//! (rustfmt keeps the list below alphabetical.)

pub mod admin;
pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod broker_config;
pub mod budget;
pub mod cidr;
pub mod cli;
pub mod commands;
pub mod config;
pub mod device_auth;
pub mod external;
pub mod ha;
pub mod health;
pub mod hub;
pub mod ingest;
pub mod lifecycle;
pub mod lockout;
pub mod metrics;
pub mod model;
pub mod mqtt_url;
pub mod notify;
pub mod presence;
pub mod secrets;
pub mod simulate;
pub mod store;
pub mod tls;
