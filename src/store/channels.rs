//! Notification channels as rows: kind, settings (JSON with the channel's secrets; this file
//! never interprets them), delivery policy (JSON), mute and the last delivery result. Channels
//! from `RZMON_NOTIFY_URLS` carry an `env_key` and are replaced on every start.

use super::{Result, Store};
use crate::model::now_ms;
use rusqlite::{OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;

/// One channel. Deliberately neither `Debug` nor `Serialize`: `settings` holds secrets.
#[derive(Clone, PartialEq)]
pub struct ChannelRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// Kind-specific settings, secrets included.
    pub settings: Value,
    /// Delivery policy (group wait, storm cap, quiet hours, minimum severity).
    pub policy: Value,
    pub enabled: bool,
    /// Set for channels from `RZMON_NOTIFY_URLS` (read-only in the API).
    pub env_key: Option<String>,
    pub muted_until_ms: Option<i64>,
    /// The last delivery attempt: when, `sent`/`failed`/..., and the sentence.
    pub last: Option<(i64, String, Option<String>)>,
    pub created_ms: i64,
}

/// What a new or changed channel consists of.
#[derive(Clone)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: String,
    pub settings: Value,
    pub policy: Value,
    pub enabled: bool,
}

const COLUMNS: &str = "id, name, kind, settings, policy, enabled, env_key, muted_until_ms,
    last_ms, last_state, last_detail, created_ms";

fn channel_row(r: &Row<'_>) -> rusqlite::Result<ChannelRow> {
    let json = |i: usize| -> rusqlite::Result<Value> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let last_ms: Option<i64> = r.get(8)?;
    let last_state: Option<String> = r.get(9)?;
    Ok(ChannelRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        settings: json(3)?,
        policy: json(4)?,
        enabled: r.get(5)?,
        env_key: r.get(6)?,
        muted_until_ms: r.get(7)?,
        last: last_ms
            .zip(last_state)
            .map(|(ms, s)| (ms, s, r.get(10).ok().flatten())),
        created_ms: r.get(11)?,
    })
}

impl Store {
    /// Every channel, oldest first.
    pub fn channels(&self) -> Result<Vec<ChannelRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM channels ORDER BY id"))?;
            let rows = stmt.query_map([], channel_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn channel(&self, id: i64) -> Result<Option<ChannelRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM channels WHERE id = ?1"))?;
            Ok(stmt.query_row([id], channel_row).optional()?)
        })
    }

    /// Stores a new channel; its id.
    pub fn insert_channel(&self, spec: &ChannelSpec) -> Result<i64> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO channels (name, kind, settings, policy, enabled, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                (
                    &spec.name,
                    &spec.kind,
                    spec.settings.to_string(),
                    spec.policy.to_string(),
                    spec.enabled,
                    now_ms(),
                ),
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Replaces a channel's name, settings, policy and enabled flag (kind stays); false if
    /// there is no such channel.
    pub fn update_channel(&self, id: i64, spec: &ChannelSpec) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE channels SET name = ?2, settings = ?3, policy = ?4, enabled = ?5
                 WHERE id = ?1",
                (
                    id,
                    &spec.name,
                    spec.settings.to_string(),
                    spec.policy.to_string(),
                    spec.enabled,
                ),
            )?;
            Ok(n > 0)
        })
    }

    /// Removes a channel with its delivery rows; false if there was none.
    pub fn delete_channel(&self, id: i64) -> Result<bool> {
        self.with_conn(|c| Ok(c.execute("DELETE FROM channels WHERE id = ?1", [id])? > 0))
    }

    /// Mutes a channel until `until_ms` (`None` unmutes); false if there is no such channel.
    pub fn set_channel_mute(&self, id: i64, until_ms: Option<i64>) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE channels SET muted_until_ms = ?2 WHERE id = ?1",
                (id, until_ms),
            )?;
            Ok(n > 0)
        })
    }

    /// Records the result of the latest delivery attempt (or test) on a channel.
    pub fn set_channel_last(&self, id: i64, state: &str, detail: Option<&str>) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE channels SET last_ms = ?2, last_state = ?3, last_detail = ?4 WHERE id = ?1",
                (id, now_ms(), state, detail),
            )?;
            Ok(())
        })
    }

    /// Makes the environment's channels exactly `specs` (keyed by `env_key`): new keys are
    /// inserted, known ones updated (keeping their id, mute and delivery history), keys no
    /// longer configured removed.
    pub fn sync_env_channels(&self, specs: &[(String, ChannelSpec)]) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let keys: Vec<String> = {
                let mut stmt = tx.prepare("SELECT env_key FROM channels WHERE env_key IS NOT NULL")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            for key in keys.iter().filter(|k| !specs.iter().any(|(s, _)| s == *k)) {
                tx.execute("DELETE FROM channels WHERE env_key = ?1", [key])?;
            }
            for (key, spec) in specs {
                tx.execute(
                    "INSERT INTO channels (name, kind, settings, policy, enabled, env_key, created_ms)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
                     ON CONFLICT (env_key) DO UPDATE SET name = ?1, kind = ?2, settings = ?3,
                        policy = ?4, enabled = 1",
                    (
                        &spec.name,
                        &spec.kind,
                        spec.settings.to_string(),
                        spec.policy.to_string(),
                        key,
                        now_ms(),
                    ),
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}
