//! SQLite persistence. INTERFACE STUB written by the lead: the store helper replaces the bodies
//! (and may split this into schema.rs / writer.rs / queries per table) but keeps these public
//! signatures, which the api, app and cli already call.

use crate::metrics::Metrics;
use crate::model::{DeviceId, Message};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A user or device with this name already exists.
    #[error("{0} already exists")]
    Exists(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Filters for `/data`, `/incidents` (and later `/access`): inclusive time range in epoch ms,
/// newest first, at most `limit` rows.
#[derive(Debug, Clone, Default)]
pub struct RangeQuery {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub limit: u32,
    pub device: Option<DeviceId>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TelemetryRow {
    pub ts_ms: i64,
    pub device: String,
    /// The full JSON object the device sent.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentRow {
    pub ts_ms: i64,
    pub device: String,
    pub kind: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserRow {
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceRow {
    pub id: String,
    /// Keyed hash of the device's MQTT password (see `broker::secret`); never printed.
    #[serde(skip)]
    pub secret_hash: String,
    pub enabled: bool,
    pub created_ms: i64,
}

/// Handle to the database file: cheap to clone; every read opens/borrows its own connection.
/// All methods block: call them from `spawn_blocking` (or the CLI).
#[derive(Clone)]
pub struct Store {
    #[allow(dead_code)]
    path: Arc<PathBuf>,
}

/// The running batch writer: send messages with `sender()`, then `close()` to commit the last
/// batch and join the thread.
pub struct Writer {
    #[allow(dead_code)]
    tx: tokio::sync::mpsc::UnboundedSender<Message>,
}

impl Writer {
    pub fn sender(&self) -> tokio::sync::mpsc::UnboundedSender<Message> {
        self.tx.clone()
    }
    /// Stops accepting, commits everything received, joins the writer thread. Blocks.
    pub fn close(self) -> Result<()> {
        unimplemented!()
    }
}

impl Store {
    /// Opens (creating) the database file, sets WAL/synchronous=FULL/busy timeout, runs
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let _ = path;
        unimplemented!()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Starts the one batching writer thread. `metrics.store_committed` / `store_duplicates`
    /// are updated per commit.
    pub fn spawn_writer(&self, metrics: Arc<Metrics>) -> Result<Writer> {
        let _ = metrics;
        unimplemented!()
    }
    /// `SELECT 1` on a reader connection: the database answers.
    pub fn ping(&self) -> Result<()> {
        unimplemented!()
    }
    pub fn telemetry(&self, q: &RangeQuery) -> Result<Vec<TelemetryRow>> {
        let _ = q;
        unimplemented!()
    }
    pub fn incidents(&self, q: &RangeQuery, kind: Option<&str>) -> Result<Vec<IncidentRow>> {
        let _ = (q, kind);
        unimplemented!()
    }
    pub fn user(&self, username: &str) -> Result<Option<UserRow>> {
        let _ = username;
        unimplemented!()
    }
    pub fn users(&self) -> Result<Vec<UserRow>> {
        unimplemented!()
    }
    pub fn user_count(&self) -> Result<u64> {
        unimplemented!()
    }
    /// `Err(Exists)` if taken.
    pub fn create_user(&self, username: &str, password_hash: &str) -> Result<()> {
        let _ = (username, password_hash);
        unimplemented!()
    }
    /// `false` if there is no such user.
    pub fn set_user_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        let _ = (username, password_hash);
        unimplemented!()
    }
    pub fn remove_user(&self, username: &str) -> Result<bool> {
        let _ = username;
        unimplemented!()
    }
    pub fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        let _ = id;
        unimplemented!()
    }
    pub fn devices(&self) -> Result<Vec<DeviceRow>> {
        unimplemented!()
    }
    /// `Err(Exists)` if taken.
    pub fn create_device(&self, id: &DeviceId, secret_hash: &str) -> Result<()> {
        let _ = (id, secret_hash);
        unimplemented!()
    }
    pub fn set_device_secret(&self, id: &str, secret_hash: &str) -> Result<bool> {
        let _ = (id, secret_hash);
        unimplemented!()
    }
    pub fn remove_device(&self, id: &str) -> Result<bool> {
        let _ = id;
        unimplemented!()
    }
    /// Consistent online copy (`VACUUM INTO`); fails if `dest` exists.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        let _ = dest;
        unimplemented!()
    }
}
