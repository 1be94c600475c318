//! The command line (clap definitions only): `serve` (default), `user …`, `device …`, `backup`.

use crate::config::{Common, ServeSettings};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// rzmon — server-room monitor and access controller for ESP32 devices, in one binary.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub serve: ServeSettings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance: MQTT broker, ingest, REST API, WebSocket and dashboard (default).
    Serve,
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices (MQTT credentials of ESP32s).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Write a consistent copy of the database to FILE while the server may be running.
    Backup {
        /// Destination file; must not exist.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a random password unless --password-stdin is given.
    Add {
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password; prints a random one unless --password-stdin is given.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove { username: String },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device; prints its MQTT username and password once.
    Add {
        /// Device id (1–64 of A-Z a-z 0-9 - _); also the MQTT username and client id.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a device a new MQTT password (its live connection is closed).
    Passwd {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List devices.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a device (its live connection is closed; its stored history stays).
    Remove { id: String },
}
