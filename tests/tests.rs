//! The one integration-test binary: tests start the real server in-process, or the real
//! `rzmon` binary where the process matters (see `util`).

mod util;

mod alerts;
mod api;
mod browser;
mod cli;
mod commands;
mod durability;
mod flow;
mod health;
mod lifecycle;
mod login_flood;
mod mqtt;
mod mqtt_strict;
mod proxies;
mod sessions;
mod ws;
