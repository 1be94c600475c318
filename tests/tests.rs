//! The one integration-test binary: tests start the real server in-process, or the real
//! `rzmon` binary where the process matters (see `util`).

mod util;

mod alerts;
mod api;
mod app;
mod bridge;
mod browser;
mod cli;
mod commands;
mod durability;
mod first_hour;
mod flow;
mod ha;
mod health;
mod login_flood;
mod metrics;
mod mosquitto;
mod mqtt;
mod mqtt_budget;
mod mqtt_strict;
mod proxies;
mod readme;
mod sessions;
mod ws;
