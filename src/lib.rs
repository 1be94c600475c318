//! rzmon: a server-room monitor and access controller for ESP32 devices in one process.
//!
//! ```text
//! ESP32 ──MQTT──▶ broker::gate ──loopback──▶ broker (rumqttd) ──local link──▶ ingest
//!                                                             ingest ──▶ store (one batching writer)
//!                                                             ingest ──▶ hub (broadcast)
//! browser ◀──HTTP/WS── api ◀── store (readers) + hub
//! ```
//!
//! Modules are listed in the order data flows; a module only imports the ones above it.
//! `app` is the only module that knows every part.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod device_auth;
pub mod hub;
pub mod ingest;
pub mod lockout;
pub mod metrics;
pub mod model;
pub mod presence;
pub mod secrets;
pub mod simulate;
pub mod store;
