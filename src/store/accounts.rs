//! Users (dashboard logins) and devices (MQTT credentials): create, read, re-key, remove.
//! Hashes are computed by the callers; this file only stores them.

use super::{DeviceRow, Result, Store, StoreError, UserRow};
use crate::model::{DeviceId, now_ms};
use rusqlite::{OptionalExtension, Row, TransactionBehavior};

/// `Exists(name)` when `e` is a primary-key or unique violation, else the error itself.
pub(super) fn exists_or(e: rusqlite::Error, name: &str) -> StoreError {
    let duplicate = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    );
    if duplicate {
        StoreError::Exists(name.to_owned())
    } else {
        StoreError::Sqlite(e)
    }
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        username: r.get(0)?,
        password_hash: r.get(1)?,
        created_ms: r.get(2)?,
        uid: r.get(3)?,
        token_gen: r.get(4)?,
    })
}

const USER_COLUMNS: &str = "username, password_hash, created_ms, uid, token_gen";

fn device_row(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: super::device_at(r, 0)?,
        secret_hash: r.get(1)?,
        enabled: r.get(2)?,
        created_ms: r.get(3)?,
    })
}

impl Store {
    pub fn user(&self, username: &str) -> Result<Option<UserRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
            ))?;
            Ok(stmt.query_row([username], user_row).optional()?)
        })
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<UserRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))?;
            let rows = stmt.query_map([], user_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn user_count(&self) -> Result<u64> {
        self.with_conn(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// `Err(Exists)` if taken. The user gets a fresh id that no user ever had.
    pub fn create_user(&self, username: &str, password_hash: &str) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("INSERT INTO user_ids (username) VALUES (?1)", [username])?;
            let uid = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO users (username, password_hash, created_ms, uid) VALUES (?1, ?2, ?3, ?4)",
                (username, password_hash, now_ms(), uid),
            )
            .map_err(|e| exists_or(e, username))?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Sets the hash and ends every token of the user. `false` if there is no such user.
    pub fn set_user_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE users SET password_hash = ?2, token_gen = token_gen + 1 WHERE username = ?1",
                (username, password_hash),
            )?;
            Ok(n > 0)
        })
    }

    /// Ends every token of the user ("sign out everywhere"). `false` if there is no such user.
    pub fn end_sessions(&self, username: &str) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE users SET token_gen = token_gen + 1 WHERE username = ?1",
                [username],
            )?;
            Ok(n > 0)
        })
    }

    /// Ends one token (logout) until its expiry `exp_s` (epoch seconds); forgets tokens that
    /// have expired anyway, so the table holds at most the tokens of one token lifetime.
    pub fn revoke_token(&self, jti: &str, exp_s: u64, now_s: u64) -> Result<()> {
        self.with_conn(|c| {
            let (exp, now) = (
                exp_s.min(i64::MAX as u64) as i64,
                now_s.min(i64::MAX as u64) as i64,
            );
            c.execute("DELETE FROM revoked_tokens WHERE exp_s < ?1", [now])?;
            c.execute(
                "INSERT OR IGNORE INTO revoked_tokens (jti, exp_s) VALUES (?1, ?2)",
                (jti, exp),
            )?;
            Ok(())
        })
    }

    pub fn token_revoked(&self, jti: &str) -> Result<bool> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached("SELECT 1 FROM revoked_tokens WHERE jti = ?1")?;
            Ok(stmt.exists([jti])?)
        })
    }

    /// `false` if there is no such user.
    pub fn remove_user(&self, username: &str) -> Result<bool> {
        self.with_conn(|c| Ok(c.execute("DELETE FROM users WHERE username = ?1", [username])? > 0))
    }

    pub fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, secret_hash, enabled, created_ms FROM devices WHERE id = ?1",
            )?;
            Ok(stmt.query_row([id], device_row).optional()?)
        })
    }

    /// All devices, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, secret_hash, enabled, created_ms FROM devices ORDER BY id",
            )?;
            let rows = stmt.query_map([], device_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// `Err(Exists)` if taken. The device starts enabled.
    pub fn create_device(&self, id: &DeviceId, secret_hash: &str) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO devices (id, secret_hash, enabled, created_ms) VALUES (?1, ?2, 1, ?3)",
                (id.as_str(), secret_hash, now_ms()),
            )
            .map_err(|e| exists_or(e, id.as_str()))?;
            Ok(())
        })
    }

    /// `false` if there is no such device.
    pub fn set_device_secret(&self, id: &str, secret_hash: &str) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE devices SET secret_hash = ?2 WHERE id = ?1",
                (id, secret_hash),
            )?;
            Ok(n > 0)
        })
    }

    /// Removes the device's credentials and status; its telemetry, incidents and access
    /// events stay. `false` if there is no such device.
    pub fn remove_device(&self, id: &str) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM devices WHERE id = ?1", [id])?;
            tx.execute("DELETE FROM device_status WHERE device = ?1", [id])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
