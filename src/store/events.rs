//! Read queries over what devices sent: incidents and access events (telemetry has its own
//! file) ("newest N in a
//! time range", optionally per device) and the per-device online status.

use super::{IncidentRow, RangeQuery, Result, Store};
use crate::model::DeviceId;
use rusqlite::params_from_iter;
use rusqlite::types::ToSqlOutput;
use serde::Serialize;

/// One card presented at a device's reader.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessRow {
    pub ts_ms: i64,
    pub device: DeviceId,
    pub access_id: String,
    pub granted: bool,
    pub data: serde_json::Value,
}

/// What the store knows about a device's connection: its last announced state (`online`
/// since `since_ms`) and the receive time of its newest message of any kind.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceStatusRow {
    pub device: DeviceId,
    pub online: bool,
    pub since_ms: i64,
    pub last_seen_ms: i64,
}

/// `SELECT <columns> FROM <table>` plus the range filter, an optional extra equality filter,
/// newest first. The statement text depends only on which filters are present, so the
/// statement cache holds a handful of variants, and each can use the matching index
/// (`(device, ts_ms)`, `(type, ts_ms)` or `ts_ms`) rather than an `(? IS NULL OR ...)` that
/// the planner cannot resolve.
pub(super) fn range_sql(select: &str, q: &RangeQuery, extra: Option<&str>) -> String {
    let mut sql = format!("{select} WHERE ts_ms BETWEEN ?1 AND ?2");
    let mut n = 3;
    if q.device.is_some() {
        sql.push_str(" AND device = ?3");
        n += 1;
    }
    if let Some(column) = extra {
        sql.push_str(&format!(" AND {column} = ?{n}"));
        n += 1;
    }
    sql.push_str(&format!(" ORDER BY ts_ms DESC, id DESC LIMIT ?{n}"));
    sql
}

/// The bound values matching `range_sql`, in the same order.
pub(super) fn range_params<'a>(q: &'a RangeQuery, extra: Option<&'a str>) -> Vec<ToSqlOutput<'a>> {
    let mut params = vec![
        ToSqlOutput::from(q.start_ms.unwrap_or(i64::MIN)),
        ToSqlOutput::from(q.end_ms.unwrap_or(i64::MAX)),
    ];
    if let Some(device) = &q.device {
        params.push(ToSqlOutput::from(device.as_str()));
    }
    if let Some(value) = extra {
        params.push(ToSqlOutput::from(value));
    }
    params.push(ToSqlOutput::from(i64::from(q.limit)));
    params
}

/// A stored payload back as JSON. The writer only stores what `serde_json` produced, so a
/// parse failure means the file was edited by hand: report it as a conversion error.
pub(super) fn json(text: &str, column: usize) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Store {
    pub fn incidents(&self, q: &RangeQuery, kind: Option<&str>) -> Result<Vec<IncidentRow>> {
        let extra = kind.map(|_| "type");
        let sql = range_sql(
            "SELECT ts_ms, device, type, payload FROM incidents",
            q,
            extra,
        );
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(range_params(q, kind)), |r| {
                Ok(IncidentRow {
                    ts_ms: r.get(0)?,
                    device: super::device_at(r, 1)?,
                    kind: r.get(2)?,
                    data: json(r.get_ref(3)?.as_str()?, 3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every incident of `q`'s range (and `kind`), oldest first, page by page (see
    /// `telemetry_each`); `each` returning `false` stops.
    pub fn incidents_each(
        &self,
        q: &RangeQuery,
        kind: Option<&str>,
        mut each: impl FnMut(Vec<IncidentRow>) -> bool,
    ) -> Result<()> {
        const PAGE: i64 = 1_000;
        let mut after = (q.start_ms.unwrap_or(i64::MIN), i64::MIN);
        let end = q.end_ms.unwrap_or(i64::MAX);
        let device = q.device.as_ref().map(|d| d.as_str());
        loop {
            let rows = self.with_conn(|c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, ts_ms, device, type, payload FROM incidents INDEXED BY incidents_ts
                     WHERE ts_ms BETWEEN ?1 AND ?2 AND (ts_ms > ?1 OR id > ?3)
                       AND (?4 IS NULL OR device = ?4) AND (?5 IS NULL OR type = ?5)
                     ORDER BY ts_ms, id LIMIT ?6",
                )?;
                let rows = stmt.query_map((after.0, end, after.1, device, kind, PAGE), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        IncidentRow {
                            ts_ms: r.get(1)?,
                            device: super::device_at(r, 2)?,
                            kind: r.get(3)?,
                            data: json(r.get_ref(4)?.as_str()?, 4)?,
                        },
                    ))
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })?;
            let Some((id, last)) = rows.last() else {
                return Ok(());
            };
            after = (last.ts_ms, *id);
            let full = rows.len() as i64 == PAGE;
            if !each(rows.into_iter().map(|(_, r)| r).collect()) || !full {
                return Ok(());
            }
        }
    }

    /// The access log, optionally for one card (`access_id`), newest first.
    pub fn access_events(&self, q: &RangeQuery, access_id: Option<&str>) -> Result<Vec<AccessRow>> {
        let extra = access_id.map(|_| "access_id");
        let sql = range_sql(
            "SELECT ts_ms, device, access_id, granted, payload FROM access_events",
            q,
            extra,
        );
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(range_params(q, access_id)), |r| {
                Ok(AccessRow {
                    ts_ms: r.get(0)?,
                    device: super::device_at(r, 1)?,
                    access_id: r.get(2)?,
                    granted: r.get(3)?,
                    data: json(r.get_ref(4)?.as_str()?, 4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every device that ever sent something, by id. Removing a device removes its status.
    pub fn device_statuses(&self) -> Result<Vec<DeviceStatusRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT device, online, since_ms, last_seen_ms FROM device_status ORDER BY device",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(DeviceStatusRow {
                    device: super::device_at(r, 0)?,
                    online: r.get(1)?,
                    since_ms: r.get(2)?,
                    last_seen_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
