//! Long-lived API tokens: stored as the hex SHA-256 of the secret (computed by the caller),
//! owned by a user id, listed without the secret, removed one by one or with their user.

use super::accounts::role_at;
use super::{ApiTokenRow, Result, Store, UserRow};
use crate::model::{Role, now_ms};
use rusqlite::{OptionalExtension, Row};

/// `last_used` is written at most this often per token, so scripts polling every second do
/// not turn every read into a database write.
const LAST_USED_EVERY_MS: i64 = 60_000;

fn token_row(r: &Row<'_>) -> rusqlite::Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: r.get(0)?,
        uid: r.get(1)?,
        name: r.get(2)?,
        role: role_at(r, 3)?,
        created_ms: r.get(4)?,
        last_used_ms: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "id, uid, name, role, created_ms, last_used_ms";

impl Store {
    /// Stores a token of user `uid`; returns the new row (its id is never reused).
    pub fn create_api_token(
        &self,
        uid: i64,
        name: &str,
        role: Role,
        hash: &str,
    ) -> Result<ApiTokenRow> {
        self.with_conn(|c| {
            let now = now_ms();
            c.execute(
                "INSERT INTO api_tokens (uid, name, hash, role, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                (uid, name, hash, role.as_str(), now),
            )?;
            Ok(ApiTokenRow {
                id: c.last_insert_rowid(),
                uid,
                name: name.to_owned(),
                role,
                created_ms: now,
                last_used_ms: None,
            })
        })
    }

    /// The tokens of user `uid`, oldest first.
    pub fn api_tokens(&self, uid: i64) -> Result<Vec<ApiTokenRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE uid = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map([uid], token_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The token with this hash and its owner; notes the use (at most once a minute).
    pub fn api_token_by_hash(&self, hash: &str) -> Result<Option<(ApiTokenRow, UserRow)>> {
        let Some(token) = self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))?;
            Ok(stmt.query_row([hash], token_row).optional()?)
        })?
        else {
            return Ok(None);
        };
        let Some(user) = self.user_by_uid(token.uid)? else {
            return Ok(None);
        };
        let now = now_ms();
        if token
            .last_used_ms
            .is_none_or(|t| now - t >= LAST_USED_EVERY_MS)
        {
            self.with_conn(|c| {
                c.execute(
                    "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
                    (token.id, now),
                )?;
                Ok(())
            })?;
        }
        Ok(Some((token, user)))
    }

    /// Whether token `id` of user `uid` still exists (open WebSockets ask).
    pub fn api_token_exists(&self, id: i64, uid: i64) -> Result<bool> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT 1 FROM api_tokens WHERE id = ?1 AND uid = ?2")?;
            Ok(stmt.exists((id, uid))?)
        })
    }

    /// Removes token `id` of user `uid`; `false` if that user has no such token.
    pub fn remove_api_token(&self, id: i64, uid: i64) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.execute(
                "DELETE FROM api_tokens WHERE id = ?1 AND uid = ?2",
                (id, uid),
            )? > 0)
        })
    }
}
