//! The one integration-test binary: every test starts the real `rzmon` binary (see `util`).

mod receiver;
mod util;

mod api;
mod browser;
mod cli;
mod commands;
mod delivery;
mod durability;
mod mqtt;
mod ws;
