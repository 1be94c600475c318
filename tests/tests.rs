//! The one integration-test binary: every test starts the real `rzmon` binary (see `util`).

mod util;

mod api;
mod browser;
mod cli;
mod commands;
mod durability;
mod health;
mod lifecycle;
mod mqtt;
mod ws;
