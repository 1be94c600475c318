//! Read queries for the dashboard's access log and timeline: the access log filtered by card,
//! result and range with keyset paging and a total count, door lock changes derived from the
//! telemetry, and each device's reading in force at a moment.

use super::events::AccessRow;
use super::telemetry::{first_id, last_id, ts_of};
use super::{RangeQuery, Result, Store};
use crate::model::DeviceId;
use rusqlite::params_from_iter;
use rusqlite::types::ToSqlOutput;
use serde::Serialize;

/// The filters of one access-log page. `before` is the keyset cursor `(ts_ms, id)` of the last
/// row of the previous page: the page holds the rows strictly older than it.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub range: RangeQuery,
    pub access_id: Option<String>,
    pub granted: Option<bool>,
    pub before: Option<(i64, i64)>,
}

/// One page of the access log, newest first, with the row id for the next cursor.
#[derive(Debug, Clone)]
pub struct AccessPage {
    pub rows: Vec<(i64, AccessRow)>,
    /// Rows matching the filters on every page (the cursor left out).
    pub total: i64,
}

/// A lock state a device reported: the first in the window (`changed` false) and each change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DoorChange {
    pub ts_ms: i64,
    pub device: DeviceId,
    pub locked: bool,
    pub changed: bool,
}

/// A device's newest reading at or before a moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReadingAt {
    pub ts_ms: i64,
    pub device: DeviceId,
    pub tmp: Option<f64>,
    pub lf: Option<f64>,
    pub locked: Option<bool>,
}

/// ` WHERE ...` for the access filters (without the cursor) and its bound values.
fn access_where(f: &AccessFilter) -> (String, Vec<ToSqlOutput<'_>>) {
    let mut sql = String::from(" WHERE ts_ms BETWEEN ?1 AND ?2");
    let mut params = vec![
        ToSqlOutput::from(f.range.start_ms.unwrap_or(i64::MIN)),
        ToSqlOutput::from(f.range.end_ms.unwrap_or(i64::MAX)),
    ];
    if let Some(d) = &f.range.device {
        params.push(ToSqlOutput::from(d.as_str()));
        sql.push_str(&format!(" AND device = ?{}", params.len()));
    }
    if let Some(id) = &f.access_id {
        params.push(ToSqlOutput::from(id.as_str()));
        sql.push_str(&format!(" AND access_id = ?{}", params.len()));
    }
    if let Some(g) = f.granted {
        params.push(ToSqlOutput::from(g));
        sql.push_str(&format!(" AND granted = ?{}", params.len()));
    }
    (sql, params)
}

impl Store {
    /// One page of the access log (at most `range.limit` rows) and the number of matching rows.
    pub fn access_page(&self, f: &AccessFilter) -> Result<AccessPage> {
        let (filter, params) = access_where(f);
        let count_sql = format!("SELECT count(*) FROM access_events{filter}");
        let mut page_sql = format!(
            "SELECT id, ts_ms, device, access_id, granted, payload FROM access_events{filter}"
        );
        let mut page_params = params.clone();
        if let Some((ts, id)) = f.before {
            page_params.push(ToSqlOutput::from(ts));
            let n = page_params.len();
            page_params.push(ToSqlOutput::from(id));
            page_sql.push_str(&format!(
                " AND (ts_ms < ?{n} OR (ts_ms = ?{n} AND id < ?{}))",
                n + 1
            ));
        }
        page_params.push(ToSqlOutput::from(i64::from(f.range.limit)));
        page_sql.push_str(&format!(
            " ORDER BY ts_ms DESC, id DESC LIMIT ?{}",
            page_params.len()
        ));
        self.with_conn(|c| {
            let total = c
                .prepare_cached(&count_sql)?
                .query_row(params_from_iter(params), |r| r.get(0))?;
            let mut stmt = c.prepare_cached(&page_sql)?;
            let rows = stmt.query_map(params_from_iter(page_params), |r| {
                Ok((
                    r.get(0)?,
                    AccessRow {
                        ts_ms: r.get(1)?,
                        device: super::device_at(r, 2)?,
                        access_id: r.get(3)?,
                        granted: r.get(4)?,
                        data: super::events::json(r.get_ref(5)?.as_str()?, 5)?,
                    },
                ))
            })?;
            Ok(AccessPage {
                rows: rows.collect::<rusqlite::Result<_>>()?,
                total,
            })
        })
    }

    /// The lock states reported within `[start_ms, end_ms]`, oldest first: per device the
    /// first one and then each change (at most `limit` rows).
    pub fn door_changes(
        &self,
        device: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        limit: u32,
    ) -> Result<Vec<DoorChange>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, locked, prev IS NOT NULL FROM (
                     SELECT t.id, k.name, t.locked,
                            lag(t.locked) OVER (PARTITION BY t.device_key ORDER BY t.id) AS prev
                     FROM telemetry t JOIN device_keys k ON k.id = t.device_key
                     WHERE t.id BETWEEN ?1 AND ?2 AND t.locked IS NOT NULL
                       AND (?3 IS NULL OR k.name = ?3))
                 WHERE prev IS NULL OR prev != locked
                 ORDER BY id LIMIT ?4",
            )?;
            let (lo, hi) = (first_id(start_ms), last_id(end_ms));
            let rows = stmt.query_map((lo, hi, device, limit), |r| {
                Ok(DoorChange {
                    ts_ms: ts_of(r.get(0)?),
                    device: super::device_at(r, 1)?,
                    locked: r.get(2)?,
                    changed: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per device, the newest reading within `[start_ms, at_ms]`.
    pub fn readings_at(
        &self,
        device: Option<&str>,
        start_ms: i64,
        at_ms: i64,
    ) -> Result<Vec<ReadingAt>> {
        self.with_conn(|c| {
            // SQLite takes the bare columns from the row that holds max(id), the newest.
            let mut stmt = c.prepare_cached(
                "SELECT max(t.id), k.name, t.tmp, t.lf, t.locked
                 FROM telemetry t JOIN device_keys k ON k.id = t.device_key
                 WHERE t.id BETWEEN ?1 AND ?2 AND (?3 IS NULL OR k.name = ?3)
                 GROUP BY t.device_key ORDER BY k.name",
            )?;
            let rows = stmt.query_map((first_id(start_ms), last_id(at_ms), device), |r| {
                Ok(ReadingAt {
                    ts_ms: ts_of(r.get(0)?),
                    device: super::device_at(r, 1)?,
                    tmp: r.get(2)?,
                    lf: r.get(3)?,
                    locked: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
