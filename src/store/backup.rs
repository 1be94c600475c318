//! Checking a database file that is not the live one (a fresh backup, a file to restore):
//! opened read-only, `integrity_check`, schema version, row counts; and the live newest row
//! ids that bound what a backup taken meanwhile must hold.

use super::{Result, Store, schema};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tables whose rows a backup check counts.
const COUNTED: [&str; 5] = [
    "telemetry",
    "incidents",
    "access_events",
    "users",
    "devices",
];

/// What the check of a database file found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupCheck {
    pub integrity: String,
    pub schema_version: i64,
    /// Rows per table.
    pub rows: std::collections::BTreeMap<String, i64>,
}

/// Newest row id of each event table: rows are only added while a backup runs (pruning
/// waits), so a snapshot's newest ids lie between the live ones before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds([i64; 3]);

const BOUNDED: [&str; 3] = ["telemetry", "incidents", "access_events"];

fn bounds(c: &Connection) -> rusqlite::Result<Bounds> {
    let mut b = [0; 3];
    for (slot, table) in b.iter_mut().zip(BOUNDED) {
        *slot = c.query_row(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
    }
    Ok(Bounds(b))
}

/// Checks the database file at `path` without changing it: a readable SQLite file of ours
/// that passes `integrity_check`. The sentence says what is wrong otherwise.
pub fn check_backup(path: &Path) -> std::result::Result<BackupCheck, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("{} cannot be opened: {e}", path.display()))?;
    let not_db =
        |e: rusqlite::Error| format!("{} is not a readable rzmon database: {e}", path.display());
    let problems: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(not_db)?;
    if problems != ["ok"] {
        let first: Vec<_> = problems.iter().take(3).cloned().collect();
        return Err(format!(
            "{} fails the integrity check: {}",
            path.display(),
            first.join("; ")
        ));
    }
    let schema_version = schema::current_version(&c).map_err(not_db)?;
    let mut rows = std::collections::BTreeMap::new();
    for table in COUNTED {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(not_db)?;
        rows.insert(table.to_owned(), n);
    }
    Ok(BackupCheck {
        integrity: "ok".into(),
        schema_version,
        rows,
    })
}

impl Store {
    /// The newest row ids now (see `Bounds`).
    pub fn backup_bounds(&self) -> Result<Bounds> {
        self.with_conn(|c| Ok(bounds(c)?))
    }

    /// Checks a backup just written: `check_backup`, the live schema version, and newest row
    /// ids between the live ones `before` and `after` the copy.
    pub fn verify_backup(
        path: &Path,
        schema_version: Option<i64>,
        before: Bounds,
        after: Bounds,
    ) -> std::result::Result<BackupCheck, String> {
        let check = check_backup(path)?;
        if schema_version.is_some_and(|v| v != check.schema_version) {
            return Err(format!(
                "the copy has schema version {}, the database {schema_version:?}",
                check.schema_version
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let copy = Connection::open_with_flags(path, flags)
            .and_then(|c| bounds(&c))
            .map_err(|e| format!("cannot read the copy: {e}"))?;
        for (i, table) in BOUNDED.iter().enumerate() {
            if copy.0[i] < before.0[i] || copy.0[i] > after.0[i] {
                return Err(format!(
                    "the copy of {table} ends at row {}, outside the live {}..{}",
                    copy.0[i], before.0[i], after.0[i]
                ));
            }
        }
        Ok(check)
    }
}
