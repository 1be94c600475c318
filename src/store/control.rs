//! What the backend tells devices and who did what: access ids with the access-list version,
//! each device's confirmed list version, the last config each device reported with the history
//! of changes, and the audit log. All rare writes on pooled connections (not the ingest writer).

use super::accounts::exists_or;
use super::{Result, Store};
use crate::model::{AuditAction, ConfigOutcome, DeviceId, now_ms};
use rusqlite::{OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessIdRow {
    pub access_id: String,
    pub name: String,
    pub added_by: String,
    pub added_ms: i64,
}

/// One attempted config change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigChangeRow {
    pub device: DeviceId,
    pub ts_ms: i64,
    pub username: String,
    pub old: Option<Value>,
    pub new: Value,
    /// Confirmed, or why not (the `confirmed` column is derived from it).
    pub outcome: ConfigOutcome,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRow {
    pub ts_ms: i64,
    pub username: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

const BUMP_VERSION: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'access_version' RETURNING value";

impl Store {
    /// Every known access id, newest first.
    pub fn access_ids(&self) -> Result<Vec<AccessIdRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT access_id, name, added_by, added_ms FROM access_ids
                 ORDER BY added_ms DESC, access_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(AccessIdRow {
                    access_id: r.get(0)?,
                    name: r.get(1)?,
                    added_by: r.get(2)?,
                    added_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Stores a new access id and bumps the list version (returned). `Err(Exists)` if known.
    pub fn add_access_id(&self, access_id: &str, name: &str, added_by: &str) -> Result<i64> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO access_ids (access_id, name, added_by, added_ms) VALUES (?1, ?2, ?3, ?4)",
                (access_id, name, added_by, now_ms()),
            )
            .map_err(|e| exists_or(e, access_id))?;
            let version: i64 = tx.query_row(BUMP_VERSION, [], |r| r.get(0))?;
            tx.commit()?;
            Ok(version)
        })
    }

    /// Removes an access id; the new list version, or `None` if it was not known.
    pub fn remove_access_id(&self, access_id: &str) -> Result<Option<i64>> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if tx.execute("DELETE FROM access_ids WHERE access_id = ?1", [access_id])? == 0 {
                return Ok(None);
            }
            let version: i64 = tx.query_row(BUMP_VERSION, [], |r| r.get(0))?;
            tx.commit()?;
            Ok(Some(version))
        })
    }

    /// The current access-list version and its ids (what `syncAccessIds` sends).
    pub fn access_list(&self) -> Result<(i64, Vec<String>)> {
        self.with_conn(|c| {
            let tx = c.transaction()?;
            let version: i64 = tx.query_row(
                "SELECT value FROM counters WHERE name = 'access_version'",
                [],
                |r| r.get(0),
            )?;
            let ids = {
                let mut stmt =
                    tx.prepare_cached("SELECT access_id FROM access_ids ORDER BY access_id")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?
            };
            tx.commit()?;
            Ok((version, ids))
        })
    }

    /// Records that `device` confirmed list `version`.
    pub fn set_device_access_version(&self, device: &str, version: i64) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO device_sync (device, access_version, synced_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device) DO UPDATE SET access_version = ?2, synced_ms = ?3",
                (device, version, now_ms()),
            )?;
            Ok(())
        })
    }

    /// Confirmed access-list version per device.
    pub fn device_access_versions(&self) -> Result<HashMap<String, i64>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached("SELECT device, access_version FROM device_sync")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The last config `device` reported, with when.
    pub fn device_config(&self, device: &str) -> Result<Option<(Value, i64)>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT config, reported_ms FROM device_config WHERE device = ?1",
            )?;
            let row = stmt
                .query_row([device], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.map(|(text, ts)| (parse_json(&text), ts)))
        })
    }

    /// Keeps the config `device` just reported.
    pub fn set_device_config(&self, device: &str, config: &Value) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO device_config (device, config, reported_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device) DO UPDATE SET config = ?2, reported_ms = ?3",
                (device, config.to_string(), now_ms()),
            )?;
            Ok(())
        })
    }

    pub fn add_config_change(&self, change: &ConfigChangeRow) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO config_history (device, ts_ms, username, old, new, confirmed, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    change.device.as_str(),
                    change.ts_ms,
                    &change.username,
                    change.old.as_ref().map(Value::to_string),
                    change.new.to_string(),
                    change.outcome.is_confirmed(),
                    change.outcome.as_str(),
                ),
            )?;
            Ok(())
        })
    }

    /// Config changes, newest first, optionally of one device.
    pub fn config_history(&self, device: Option<&str>, limit: u32) -> Result<Vec<ConfigChangeRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT device, ts_ms, username, old, new, confirmed, outcome FROM config_history
                 WHERE ?1 IS NULL OR device = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map((device, limit), |r| {
                Ok(ConfigChangeRow {
                    device: super::device_at(r, 0)?,
                    ts_ms: r.get(1)?,
                    username: r.get(2)?,
                    old: r.get::<_, Option<String>>(3)?.map(|t| parse_json(&t)),
                    new: parse_json(&r.get::<_, String>(4)?),
                    outcome: ConfigOutcome::parse(r.get_ref(6)?.as_str()?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Marks every device offline (at startup: no device is connected to a new process).
    pub fn reset_presence(&self) -> Result<usize> {
        self.with_conn(|c| {
            Ok(c.execute(
                "UPDATE device_status SET online = 0, since_ms = ?1 WHERE online = 1",
                [now_ms()],
            )?)
        })
    }

    /// Records an administrative action.
    pub fn audit(
        &self,
        username: &str,
        action: AuditAction,
        target: &str,
        detail: &Value,
    ) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO audit (ts_ms, username, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                (now_ms(), username, action.as_str(), target, detail.to_string()),
            )?;
            Ok(())
        })
    }

    /// The audit log, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT ts_ms, username, action, target, detail FROM audit
                 ORDER BY ts_ms DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(AuditRow {
                    ts_ms: r.get(0)?,
                    username: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    detail: parse_json(&r.get::<_, String>(4)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn access_ids_bump_the_version_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        assert_eq!(s.access_list().unwrap(), (0, vec![]));
        assert_eq!(s.add_access_id("04A1", "Ann", "admin").unwrap(), 1);
        assert!(matches!(
            s.add_access_id("04A1", "x", "admin"),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(s.add_access_id("04B2", "", "admin").unwrap(), 2);
        assert_eq!(
            s.access_list().unwrap(),
            (2, vec!["04A1".into(), "04B2".into()])
        );
        assert_eq!(s.remove_access_id("04A1").unwrap(), Some(3));
        assert_eq!(s.remove_access_id("04A1").unwrap(), None);
        s.set_device_access_version("d", 3).unwrap();
        assert_eq!(s.device_access_versions().unwrap()["d"], 3);
    }

    #[test]
    fn config_and_history_and_audit_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        s.set_device_config("d", &serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(s.device_config("d").unwrap().unwrap().0["a"], 1);
        let change = ConfigChangeRow {
            device: DeviceId::parse("d").expect("device id"),
            ts_ms: 5,
            username: "admin".into(),
            old: Some(serde_json::json!({"a": 1})),
            new: serde_json::json!({"a": 2}),
            outcome: ConfigOutcome::Confirmed,
        };
        s.add_config_change(&change).unwrap();
        assert_eq!(s.config_history(Some("d"), 10).unwrap(), vec![change]);
        assert!(s.config_history(Some("e"), 10).unwrap().is_empty());
        s.audit("admin", AuditAction::Login, "admin", &serde_json::json!({}))
            .unwrap();
        assert_eq!(s.audit_log(10).unwrap()[0].action, "login");
    }
}
