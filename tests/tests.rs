//! The one integration-test binary: every test starts the real `rzmon` binary (see `util`).

mod util;

mod acked;
mod api;
mod browser;
mod cli;
mod commands;
mod damaged;
mod disk_full;
mod durability;
mod health;
mod memory;
mod mqtt;
mod mqtt_strict;
mod ws;
