//! The one integration-test binary: tests start the real server in-process, or the real
//! `rzmon` binary where the process matters (see `util`).

mod util;

mod alerts;
mod api;
mod app;
mod browser;
mod cli;
mod commands;
mod durability;
mod first_hour;
mod flow;
mod health;
mod lifecycle;
mod login_flood;
mod mqtt;
mod mqtt_budget;
mod mqtt_strict;
mod proxies;
mod readme;
mod sessions;
mod ws;
