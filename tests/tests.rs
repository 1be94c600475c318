//! The one integration-test binary: tests start the real server in-process, or the real
//! `rzmon` binary where the process matters (see `util`).

mod receiver;
mod util;

mod acked;
mod alerts;
mod alerts_delivered;
mod api;
mod app;
mod bridge;
mod browse;
mod browser;
mod browser_backups;
mod browser_story;
mod browser_users;
mod channels;
mod cli;
mod commands;
mod damaged;
mod delivery;
mod disk_full;
mod durability;
mod external;
mod first_hour;
mod flow;
mod ha;
mod health;
mod lifecycle;
mod login_flood;
mod memory;
mod metrics;
mod mosquitto;
mod mqtt;
mod mqtt_budget;
mod mqtt_strict;
mod proxies;
mod readme;
mod roles;
mod sessions;
mod tls;
mod tls_reload;
mod users;
mod ws;
