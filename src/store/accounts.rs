//! Users (dashboard logins) and devices (MQTT credentials): create, read, re-key, remove.
//! Hashes are computed by the callers; this file only stores them.

use super::{DeviceRow, Result, Store, StoreError, UserRow};
use crate::model::{DeviceId, Role, now_ms};
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
        role: role_at(r, 5)?,
    })
}

/// The role in column `idx` (the schema's CHECK allows only known names).
pub(super) fn role_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Role> {
    let text: String = r.get(idx)?;
    Role::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown role {text:?}").into(),
        )
    })
}

const USER_COLUMNS: &str = "username, password_hash, created_ms, uid, token_gen, role";

/// `LastAdmin` when `username` is an admin and no other admin would be left.
fn guard_last_admin(c: &rusqlite::Connection, username: &str) -> Result<()> {
    let (is_admin, others): (bool, i64) = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1 AND role = 'admin'), \
                (SELECT COUNT(*) FROM users WHERE role = 'admin' AND username <> ?1)",
        [username],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if is_admin && others == 0 {
        return Err(StoreError::LastAdmin(username.to_owned()));
    }
    Ok(())
}

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

    /// The user with this id (ids are never reused).
    pub fn user_by_uid(&self, uid: i64) -> Result<Option<UserRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE uid = ?1"))?;
            Ok(stmt.query_row([uid], user_row).optional()?)
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

    /// An admin; `Err(Exists)` if taken.
    pub fn create_user(&self, username: &str, password_hash: &str) -> Result<()> {
        self.create_user_as(username, password_hash, Role::Admin)
    }

    /// `Err(Exists)` if taken. The user gets a fresh id that no user ever had.
    pub fn create_user_as(&self, username: &str, password_hash: &str, role: Role) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("INSERT INTO user_ids (username) VALUES (?1)", [username])?;
            let uid = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO users (username, password_hash, created_ms, uid, role) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                (username, password_hash, now_ms(), uid, role.as_str()),
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

    /// Sets the role; `Err(LastAdmin)` when it would demote the last admin, `false` if there
    /// is no such user. Takes effect on the user's next request (roles are read per request).
    pub fn set_user_role(&self, username: &str, role: Role) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if role != Role::Admin {
                guard_last_admin(&tx, username)?;
            }
            let n = tx.execute(
                "UPDATE users SET role = ?2 WHERE username = ?1",
                (username, role.as_str()),
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// Removes the user and its API tokens (its sessions end: the user id is gone for good).
    /// `Err(LastAdmin)` for the last admin, `false` if there is no such user.
    pub fn remove_user(&self, username: &str) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(uid) = tx
                .query_row(
                    "SELECT uid FROM users WHERE username = ?1",
                    [username],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
            else {
                return Ok(false);
            };
            guard_last_admin(&tx, username)?;
            tx.execute("DELETE FROM api_tokens WHERE uid = ?1", [uid])?;
            tx.execute("DELETE FROM users WHERE username = ?1", [username])?;
            tx.commit()?;
            Ok(true)
        })
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
