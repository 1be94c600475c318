//! SQLite persistence: opens the database file (WAL, `synchronous=FULL`), runs migrations and
//! lends reader connections from a small pool. The one batching writer lives in `writer`,
//! queries per table in `events`, `accounts`, `control` and `alerts`.

mod accounts;
mod alerts;
mod backup;
mod bridge;
mod broker_auth;
mod browse;
mod channels;
mod check;
mod control;
mod events;
mod latest;
mod outbox;
mod overview;
mod prune;
mod rollups;
mod schema;
mod summary;
mod telemetry;
mod tokens;
mod writer;

pub use alerts::{AlertQuery, AlertRow, AlertState, NewAlert, PendingRow, RuleRow};
pub use backup::{BackupCheck, Bounds, check_backup};
pub use bridge::{BridgeRow, Cursor, Source};
pub use browse::{AccessFilter, AccessPage, DoorChange, ReadingAt};
pub use channels::{ChannelRow, ChannelSpec};
pub use check::{Damage, check_file, is_corruption};
pub use control::{AccessIdRow, AuditRow, ConfigChangeRow};
pub use events::{AccessRow, DeviceStatusRow};
pub use latest::{ActiveAlerts, LatestRow};
pub use outbox::{DeliveryChange, DeliveryRow, NewNotice, OpenDelivery};
pub use overview::DeviceOverview;
pub use prune::{Kept, Space};
pub use rollups::SPANS_MS as ROLLUP_SPANS_MS;
pub use summary::{Bucket, Summary, SummarySource};
pub use telemetry::Order;
pub use writer::{QUEUE as WRITER_QUEUE, Stopped, Writer, WriterTx};

use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::model::{DeviceId, Role};
use crate::secrets::JWT_SECRET_FILE;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection waits for another one's write lock before giving up. The writer
/// commits within milliseconds, so 5 s only runs out when something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "rzmon.db";

/// Idle reader connections kept open; more are opened under load and closed after use.
const MAX_IDLE_READERS: usize = 4;

/// Page cache per reader connection, in KiB. SQLite's default (2 MiB each) never shrinks,
/// so memory would creep up with the file's size; queries go through indexes and the
/// operating system caches the file anyway.
const READER_CACHE_KIB: i64 = 1024;
/// The writer touches only the right edge of each b-tree (appends) and recent `seq`s: a small
/// cache holds that working set, so RSS does not grow with every appended page.
const WRITER_CACHE_KIB: i64 = 512;

/// Errors a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A user or device with this name already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// The change would leave no user with the admin role.
    #[error("{0} is the last admin")]
    LastAdmin(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
    /// The file is damaged or from a newer rzmon; it was not changed.
    #[error(transparent)]
    Damaged(#[from] Damage),
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
    pub device: DeviceId,
    /// The full JSON object the device sent.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentRow {
    pub ts_ms: i64,
    pub device: DeviceId,
    pub kind: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserRow {
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_ms: i64,
    /// Never reused, so a re-created name is another user to every old token.
    #[serde(skip)]
    pub uid: i64,
    /// Tokens carry the generation they were issued under; bumping it ends them all.
    #[serde(skip)]
    pub token_gen: i64,
    pub role: Role,
}

/// A long-lived API token as listed (its secret is never stored, only its hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiTokenRow {
    pub id: i64,
    /// The owner's user id.
    #[serde(skip)]
    pub uid: i64,
    pub name: String,
    /// The most the token may do; it never exceeds its owner's current role.
    pub role: Role,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceRow {
    pub id: DeviceId,
    /// Keyed hash of the device's MQTT password (see `broker::secret`); never printed.
    #[serde(skip)]
    pub secret_hash: String,
    pub enabled: bool,
    pub created_ms: i64,
}

/// The schema version this binary writes.
pub fn latest_schema_version() -> i64 {
    schema::latest_version()
}

/// The device id in column `idx`: stored ids obey the rule, so one that does not is a
/// conversion error, not a second parse at every caller.
pub(crate) fn device_at(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DeviceId> {
    let text: String = r.get(idx)?;
    DeviceId::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("{text:?} is not a device id").into(),
        )
    })
}

/// Handle to the database file: cheap to clone; every read opens/borrows its own connection.
/// All methods block: call them from `spawn_blocking` (or the CLI).
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    /// Idle reader connections. WAL lets them read while the writer commits.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Told when a read finds the file damaged (`health::INTEGRITY`).
    health: Health,
}

impl Store {
    /// Opens (creating) the database file, sets WAL/synchronous=FULL/busy timeout, runs
    /// pending migrations. An existing file is first checked read-only (`check_file`): a
    /// damaged one or one from a newer rzmon is refused (`StoreError::Damaged`) untouched.
    pub fn open(path: &Path) -> Result<Self> {
        check_file(path)?;
        create_private(path)?;
        let mut conn = open_connection(path)?;
        // Takes effect only on a new file (before the first table); older files are
        // converted once by `incremental_vacuum_on` below.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        schema::migrate(&mut conn)?;
        incremental_vacuum_on(&conn);
        Ok(Self {
            path: Arc::new(path.to_owned()),
            readers: Arc::new(Mutex::new(vec![conn])),
            health: Health::new(),
        })
    }

    /// Reports damage found by reads to `health` (call before cloning the store).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Creates the data directory (mode 0700) if needed and opens `DB_FILE` in it. A damaged
    /// database, or a missing/empty one in a directory that was used before (the JWT secret
    /// file exists), is refused with `StoreError::Damaged`; nothing is changed then.
    pub fn open_in(data_dir: &Path) -> Result<Self> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let evidence = data_dir.join(JWT_SECRET_FILE);
        let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        if empty && evidence.exists() {
            return Err(Damage::EmptyButUsed {
                path,
                evidence: evidence.display().to_string(),
            }
            .into());
        }
        Self::open(&path).map_err(|e| match e {
            StoreError::Damaged(_) => e,
            e => StoreError::Task(format!("cannot open the database {}: {e}", path.display())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the one batching writer thread. `metrics.store_committed` / `store_duplicates`
    /// are updated per commit; `health`'s database check fails while commits fail.
    pub fn spawn_writer(&self, metrics: Arc<Metrics>, health: Health) -> Result<Writer> {
        let conn = open_connection(&self.path)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        Writer::spawn(conn, metrics, health)
    }

    /// `SELECT 1` on a reader connection: the database answers.
    pub fn ping(&self) -> Result<()> {
        self.with_conn(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .map(drop)
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64> {
        self.with_conn(|c| Ok(schema::current_version(c)?))
    }

    /// Consistent online copy (`VACUUM INTO`); fails if `dest` exists.
    ///
    /// `dest` is created empty first (0600, refusing an existing file, which `VACUUM INTO`
    /// accepts), so the copy of the password hashes is never readable by others.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        self.backup_interruptible(dest, |_| {})
    }

    /// `backup`, handing the copying connection's interrupt handle to `started` first:
    /// `interrupt()` on it ends the copy at once (it then fails and leaves no file), so a
    /// shutdown need not wait for a large database to be copied.
    pub fn backup_interruptible(
        &self,
        dest: &Path,
        started: impl FnOnce(rusqlite::InterruptHandle),
    ) -> Result<()> {
        let name = dest
            .to_str()
            .ok_or_else(|| rusqlite::Error::InvalidPath(dest.to_owned()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(dest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(dest.display().to_string()));
            }
            Err(e) => return Err(io_error(dest, &e)),
        }
        let copied = self.with_conn(|c| {
            started(c.get_interrupt_handle());
            Ok(c.execute("VACUUM INTO ?1", [name])?)
        });
        if copied.is_err() {
            // Leave no empty or partial file that looks like a backup.
            let _ = std::fs::remove_file(dest);
        }
        copied.map(drop)
    }

    /// Runs `f` on a pooled connection, returning it to the pool afterwards unless it was
    /// left inside a transaction.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = f(&mut conn);
        if let Err(StoreError::Sqlite(e)) = &out
            && is_corruption(e)
        {
            report_damage(&self.health, &self.path, e);
        }
        if conn.is_autocommit() {
            let mut idle = self
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| {
        StoreError::Task(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })
}

/// Creates the database file with mode 0600 if it does not exist, and tightens an existing
/// one: it holds password hashes. SQLite gives the `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| io_error(path, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(path, &e))?;
    }
    Ok(())
}

/// `auto_vacuum=INCREMENTAL`, so pruned pages can be handed back to the file system. A file
/// created without it needs one full `VACUUM` (rewrites the file; needs its size free once).
/// A failure (another process holds the file, disk too full) is logged and retried at the
/// next start: the file then only keeps its freed pages for reuse.
fn incremental_vacuum_on(conn: &Connection) {
    let mode = conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0));
    if matches!(mode, Ok(2)) {
        return;
    }
    tracing::info!("converting the database to incremental auto-vacuum (one full VACUUM)");
    let converted = conn
        .pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .and_then(|()| conn.execute_batch("VACUUM"));
    if let Err(e) = converted {
        tracing::warn!(error = %e, "cannot convert the database to incremental auto-vacuum yet");
    }
}

/// Opens one connection with the settings every connection needs. `journal_mode` is stored
/// in the file; `synchronous`, `busy_timeout` and `foreign_keys` are per connection.
fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `PRAGMA journal_mode` answers with a row, so it cannot go through `execute`.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Task(format!(
            "{}: SQLite refused WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Negative: KiB rather than pages.
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Marks the integrity check failed; it stays failed until a restart checks the file again.
fn report_damage(health: &Health, path: &Path, e: &rusqlite::Error) {
    tracing::error!(path = %path.display(), error = %e, "the database reports damage");
    health.set_failed(
        health::INTEGRITY,
        format!(
            "{} reports damage ({e}); stop rzmon and restore a backup (rzmon restore FILE)",
            path.display()
        ),
    );
}

fn io_error(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Task(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
