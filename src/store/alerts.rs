//! Alert rules, alerts and their timers: rules (the rule text is JSON owned by `alerts`), one
//! row per firing (open until `resolved_ms`), the pending timers that survive a restart, and the
//! notices handed to delivery. Rare writes on pooled connections, never on the ingest writer.

use super::accounts::exists_or;
use super::bridge::log_alert_event;
use super::events::{range_params, range_sql};
use super::{RangeQuery, Result, Store};
use crate::model::now_ms;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params_from_iter};
use std::collections::HashMap;

/// A stored rule; `spec` is the rule as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub spec: String,
    /// One of the rules created on first start.
    pub builtin: bool,
    pub snoozed_until_ms: Option<i64>,
    pub updated_ms: i64,
}

/// One firing of one rule for one subject (a device id, or a health check for system alerts).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub subject: String,
    /// `None` for alerts about rzmon itself.
    pub device: Option<String>,
    pub severity: String,
    pub summary: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub started_ms: i64,
    /// The newest event that kept it firing (event-like rules resolve a while after it).
    pub last_event_ms: i64,
    pub resolved_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
}

/// What a new alert row holds (its id is assigned by the database).
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub rule_id: i64,
    pub rule_name: String,
    pub subject: String,
    pub device: Option<String>,
    pub severity: String,
    pub summary: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub started_ms: i64,
    /// Written as an incident too, so the incident views show the alert.
    pub incident_type: String,
    pub incident_payload: String,
}

/// A `for` timer that started and has not fired yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub rule_id: i64,
    pub subject: String,
    pub since_ms: i64,
    pub value: Option<f64>,
}

/// Which alerts `GET /alerts` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Not resolved (firing, acknowledged or not).
    Active,
    /// Not resolved and not acknowledged.
    Firing,
    /// Not resolved and acknowledged.
    Acknowledged,
    Resolved,
}

/// Filters of `GET /alerts`: the time range applies to `started_ms`.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub range: RangeQuery,
    pub rule_id: Option<i64>,
    pub state: Option<AlertState>,
}

const ALERT_COLUMNS: &str = "id, rule_id, rule_name, subject, device, severity, summary, value,
    threshold, started_ms, last_event_ms, resolved_ms, acked_ms, acked_by";

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        rule_name: r.get(2)?,
        subject: r.get(3)?,
        device: r.get(4)?,
        severity: r.get(5)?,
        summary: r.get(6)?,
        value: r.get(7)?,
        threshold: r.get(8)?,
        started_ms: r.get(9)?,
        last_event_ms: r.get(10)?,
        resolved_ms: r.get(11)?,
        acked_ms: r.get(12)?,
        acked_by: r.get(13)?,
    })
}

const RULE_COLUMNS: &str = "id, name, enabled, spec, builtin, snoozed_until_ms, updated_ms";

fn rule_row(r: &Row<'_>) -> rusqlite::Result<RuleRow> {
    Ok(RuleRow {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get(2)?,
        spec: r.get(3)?,
        builtin: r.get(4)?,
        snoozed_until_ms: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

/// Counter row that records that the default rules were created (so deleting one is final).
const SEEDED: &str = "alert_rules_seeded";

impl Store {
    /// Creates `rules` (name, enabled, spec) once per database; `false` if that happened before.
    pub fn seed_alert_rules(&self, rules: &[(String, bool, String)]) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let seeded = tx.execute(
                "INSERT OR IGNORE INTO counters (name, value) VALUES (?1, 1)",
                [SEEDED],
            )? == 0;
            if seeded {
                return Ok(false);
            }
            for (name, enabled, spec) in rules {
                tx.execute(
                    "INSERT OR IGNORE INTO alert_rules (name, enabled, spec, builtin, updated_ms)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                    (name, enabled, spec, now_ms()),
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    /// Every rule, by id.
    pub fn alert_rules(&self) -> Result<Vec<RuleRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id"
            ))?;
            let rows = stmt.query_map([], rule_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn alert_rule(&self, id: i64) -> Result<Option<RuleRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"
            ))?;
            Ok(stmt.query_row([id], rule_row).optional()?)
        })
    }

    /// `Err(Exists(name))` if another rule has this name.
    pub fn insert_alert_rule(&self, name: &str, enabled: bool, spec: &str) -> Result<RuleRow> {
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO alert_rules (name, enabled, spec, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                (name, enabled, spec, now_ms()),
            )
            .map_err(|e| exists_or(e, name))?;
            Ok(c.last_insert_rowid())
        })?;
        self.alert_rule(id)?
            .ok_or_else(|| super::StoreError::Task("the new rule vanished".into()))
    }

    /// `Ok(None)` if there is no such rule; `Err(Exists(name))` if another rule has this name.
    pub fn update_alert_rule(
        &self,
        id: i64,
        name: &str,
        enabled: bool,
        spec: &str,
    ) -> Result<Option<RuleRow>> {
        let n = self.with_conn(|c| {
            c.execute(
                "UPDATE alert_rules SET name = ?2, enabled = ?3, spec = ?4, updated_ms = ?5
                 WHERE id = ?1",
                (id, name, enabled, spec, now_ms()),
            )
            .map_err(|e| exists_or(e, name))
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.alert_rule(id)
    }

    /// Removes a rule and its pending timers; its alerts stay as history. `false` if unknown.
    pub fn delete_alert_rule(&self, id: i64) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM alert_rules WHERE id = ?1", [id])?;
            tx.execute("DELETE FROM alert_pending WHERE rule_id = ?1", [id])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// Sets (or with `None` ends) a rule's snooze; `Ok(None)` if there is no such rule.
    pub fn snooze_alert_rule(&self, id: i64, until_ms: Option<i64>) -> Result<Option<RuleRow>> {
        let n = self.with_conn(|c| {
            Ok(c.execute(
                "UPDATE alert_rules SET snoozed_until_ms = ?2, updated_ms = ?3 WHERE id = ?1",
                (id, until_ms, now_ms()),
            )?)
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.alert_rule(id)
    }

    /// Opens an alert: inserts its row, its incident and its `firing` change and ends its
    /// pending timer, in one transaction. Returns the new id.
    pub fn open_alert(&self, a: &NewAlert) -> Result<i64> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO alerts (rule_id, rule_name, subject, device, severity, summary, value,
                     threshold, started_ms, last_event_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                rusqlite::params![
                    a.rule_id,
                    a.rule_name,
                    a.subject,
                    a.device,
                    a.severity,
                    a.summary,
                    a.value,
                    a.threshold,
                    a.started_ms
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO incidents (device, ts_ms, type, payload) VALUES (?1, ?2, ?3, ?4)",
                (
                    a.device.as_deref().unwrap_or(""),
                    a.started_ms,
                    &a.incident_type,
                    &a.incident_payload,
                ),
            )?;
            tx.execute(
                "DELETE FROM alert_pending WHERE rule_id = ?1 AND subject = ?2",
                (a.rule_id, &a.subject),
            )?;
            log_alert_event(&tx, id, "firing", a.started_ms)?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Marks an alert resolved at `at_ms` and logs the change (no-op if it already is).
    pub fn resolve_alert(&self, id: i64, at_ms: i64) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE alerts SET resolved_ms = ?2 WHERE id = ?1 AND resolved_ms IS NULL",
                (id, at_ms),
            )?;
            if n > 0 {
                log_alert_event(&tx, id, "resolved", at_ms)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A new event kept an event-like alert firing; `summary` and `value` describe it.
    pub fn touch_alert(
        &self,
        id: i64,
        at_ms: i64,
        summary: &str,
        value: Option<f64>,
    ) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE alerts SET last_event_ms = ?2, summary = ?3, value = COALESCE(?4, value)
                 WHERE id = ?1",
                (id, at_ms, summary, value),
            )?;
            Ok(())
        })
    }

    /// Acknowledges an alert (keeping the first acknowledgement, the only one logged as a
    /// change); `Ok(None)` if unknown.
    pub fn ack_alert(&self, id: i64, username: &str, at_ms: i64) -> Result<Option<AlertRow>> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE alerts SET acked_ms = ?2, acked_by = ?3 WHERE id = ?1 AND acked_ms IS NULL",
                (id, at_ms, username),
            )?;
            if n > 0 {
                log_alert_event(&tx, id, "acknowledged", at_ms)?;
            }
            tx.commit()?;
            Ok(())
        })?;
        self.alert(id)
    }

    pub fn alert(&self, id: i64) -> Result<Option<AlertRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?;
            Ok(stmt.query_row([id], alert_row).optional()?)
        })
    }

    /// Alerts not yet resolved, oldest first.
    pub fn active_alerts(&self) -> Result<Vec<AlertRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE resolved_ms IS NULL ORDER BY id"
            ))?;
            let rows = stmt.query_map([], alert_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Alerts by start time, newest first, with the `/incidents` filters plus rule and state.
    pub fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRow>> {
        let mut select =
            format!("SELECT {ALERT_COLUMNS} FROM (SELECT *, started_ms AS ts_ms FROM alerts");
        select.push_str(match q.state {
            None => "",
            Some(AlertState::Active) => " WHERE resolved_ms IS NULL",
            Some(AlertState::Firing) => " WHERE resolved_ms IS NULL AND acked_ms IS NULL",
            Some(AlertState::Acknowledged) => " WHERE resolved_ms IS NULL AND acked_ms IS NOT NULL",
            Some(AlertState::Resolved) => " WHERE resolved_ms IS NOT NULL",
        });
        select.push(')');
        let rule = q.rule_id.map(|r| r.to_string());
        let sql = range_sql(&select, &q.range, rule.as_ref().map(|_| "rule_id"));
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut params = range_params(&q.range, None);
            if let Some(r) = q.rule_id {
                // `range_params` puts `limit` last; the rule id goes before it.
                let limit = params.pop();
                params.push(r.into());
                params.extend(limit);
            }
            let rows = stmt.query_map(params_from_iter(params), alert_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Records started (`Some`) and ended (`None`) `for` timers of (rule, subject), in one
    /// transaction.
    pub fn sync_alert_pending(
        &self,
        changes: &[((i64, String), Option<PendingRow>)],
    ) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for ((rule_id, subject), row) in changes {
                match row {
                    Some(p) => tx.prepare_cached(
                        "INSERT INTO alert_pending (rule_id, subject, since_ms, value) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (rule_id, subject) DO UPDATE SET since_ms = excluded.since_ms, value = excluded.value",
                    )?
                    .execute((rule_id, subject, p.since_ms, p.value))?,
                    None => tx
                        .prepare_cached("DELETE FROM alert_pending WHERE rule_id = ?1 AND subject = ?2")?
                        .execute((rule_id, subject))?,
                };
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub fn alert_pending(&self) -> Result<Vec<PendingRow>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT rule_id, subject, since_ms, value FROM alert_pending")?;
            let rows = stmt.query_map([], |r| {
                Ok(PendingRow {
                    rule_id: r.get(0)?,
                    subject: r.get(1)?,
                    since_ms: r.get(2)?,
                    value: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The notices handed to delivery per alert, oldest first.
    pub fn alert_notices(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<(String, i64)>>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, at_ms FROM alert_notices WHERE alert_id = ?1 ORDER BY id",
            )?;
            let mut out = HashMap::new();
            for id in ids {
                let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                out.insert(*id, rows.collect::<rusqlite::Result<_>>()?);
            }
            Ok(out)
        })
    }

    /// Each device's newest telemetry payload (what the rule engine re-reads after it lagged).
    pub fn latest_telemetry(&self) -> Result<Vec<(String, i64, serde_json::Value)>> {
        Ok(self
            .newest_telemetry_per_device()?
            .into_iter()
            .map(|r| (r.device.to_string(), r.ts_ms, r.data))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, s)
    }

    fn new_alert(rule_id: i64, subject: &str, at: i64) -> NewAlert {
        NewAlert {
            rule_id,
            rule_name: "r".into(),
            subject: subject.into(),
            device: Some(subject.into()),
            severity: "warning".into(),
            summary: "s".into(),
            value: Some(31.0),
            threshold: Some(30.0),
            started_ms: at,
            incident_type: "alert:r".into(),
            incident_payload: "{}".into(),
        }
    }

    /// Default rules are created once; deleting one is final.
    #[test]
    fn seeding_happens_once() {
        let (_d, s) = store();
        let rules = vec![("a".to_owned(), true, "{}".to_owned())];
        assert!(s.seed_alert_rules(&rules).unwrap());
        let id = s.alert_rules().unwrap()[0].id;
        assert!(s.delete_alert_rule(id).unwrap());
        assert!(!s.seed_alert_rules(&rules).unwrap());
        assert!(s.alert_rules().unwrap().is_empty());
    }

    /// One open alert per rule and subject; state filters and the rule filter select rows.
    #[test]
    fn alerts_open_resolve_ack_and_filter() {
        let (_d, s) = store();
        let a = s.open_alert(&new_alert(1, "d1", 100)).unwrap();
        assert!(
            s.open_alert(&new_alert(1, "d1", 101)).is_err(),
            "one active per subject"
        );
        let b = s.open_alert(&new_alert(2, "d1", 102)).unwrap();
        s.resolve_alert(a, 200).unwrap();
        let acked = s.ack_alert(b, "ann", 300).unwrap().unwrap();
        assert_eq!(acked.acked_by.as_deref(), Some("ann"));
        let again = s.ack_alert(b, "bob", 400).unwrap().unwrap();
        assert_eq!(
            (again.acked_by.as_deref(), again.acked_ms),
            (Some("ann"), Some(300))
        );
        let q = |state, rule_id| AlertQuery {
            range: RangeQuery {
                limit: 10,
                ..RangeQuery::default()
            },
            rule_id,
            state,
        };
        let ids = |q: AlertQuery| {
            s.alerts(&q)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(q(None, None)), vec![b, a]);
        assert_eq!(ids(q(Some(AlertState::Resolved), None)), vec![a]);
        assert_eq!(ids(q(Some(AlertState::Acknowledged), None)), vec![b]);
        assert!(ids(q(Some(AlertState::Firing), None)).is_empty());
        assert_eq!(ids(q(None, Some(1))), vec![a]);
        assert_eq!(
            s.incidents(&q(None, None).range, Some("alert:r"))
                .unwrap()
                .len(),
            2
        );
        let c = s.open_alert(&new_alert(1, "d1", 500)).unwrap();
        assert_eq!(
            s.active_alerts()
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            vec![b, c]
        );
        // Every change is logged once, in order, for the bridge (the second ack is no change).
        let changes: Vec<(i64, String, i64)> = s
            .bridge_rows(&super::super::Cursor::default(), 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.source == super::super::Source::Alert)
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
                (r.ts_ms, r.kind.unwrap(), v["alert_id"].as_i64().unwrap())
            })
            .collect();
        let at = |ms: i64, state: &str, id| (ms, state.to_owned(), id);
        assert_eq!(
            changes,
            [
                at(100, "firing", a),
                at(102, "firing", b),
                at(200, "resolved", a),
                at(300, "acknowledged", b),
                at(500, "firing", c)
            ]
        );
    }
}
