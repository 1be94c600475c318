//! The devices page in one query: every registered device with its presence row, the access-list
//! version it confirmed, its newest telemetry row and the current list version, instead of one
//! telemetry query per device.

use super::{Result, Store, telemetry};
use crate::model::DeviceId;
use rusqlite::types::Type;

/// One registered device as `GET /devices` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceOverview {
    pub id: DeviceId,
    pub enabled: bool,
    pub created_ms: i64,
    /// `(since_ms, last_seen_ms)` of its presence row, if it was ever seen.
    pub status: Option<(i64, i64)>,
    /// The access-list version the device last confirmed.
    pub access_version: Option<i64>,
    /// Its newest telemetry row: `(ts_ms, payload)`.
    pub last_telemetry: Option<(i64, serde_json::Value)>,
}

/// The newest telemetry row per device is found through `telemetry_device` (one index probe
/// per device: the highest row id is the newest, ties by insertion order like `/data`). The
/// list version comes first so that even without devices there is one row.
pub(super) const OVERVIEW_SQL: &str = "
    SELECT v.value, d.id, d.enabled, d.created_ms, s.since_ms, s.last_seen_ms,
           y.access_version, t.id, t.seq, t.tmp, t.lf, t.locked, t.extra
    FROM counters v
    LEFT JOIN devices d ON 1
    LEFT JOIN device_status s ON s.device = d.id
    LEFT JOIN device_sync y ON y.device = d.id
    LEFT JOIN device_keys k ON k.name = d.id
    LEFT JOIN telemetry t ON t.id = (SELECT max(id) FROM telemetry WHERE device_key = k.id)
    WHERE v.name = 'access_version'
    ORDER BY d.id";

impl Store {
    /// Every registered device with what the devices page shows, and the current access-list
    /// version, from one query.
    pub fn device_overview(&self) -> Result<(Vec<DeviceOverview>, i64)> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(OVERVIEW_SQL)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, overview(r)?)))?;
            let mut version = 0;
            let mut devices = Vec::new();
            for row in rows {
                let (v, device) = row?;
                version = v;
                devices.extend(device);
            }
            Ok((devices, version))
        })
    }
}

/// The device part of an overview row; `None` in the one row of a store without devices.
fn overview(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<DeviceOverview>> {
    let bad = |column, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(column, Type::Text, e)
    };
    let Some(id) = r.get::<_, Option<String>>(1)? else {
        return Ok(None);
    };
    let id = DeviceId::parse(&id).ok_or_else(|| bad(1, id.into()))?;
    let status = match (r.get(4)?, r.get(5)?) {
        (Some(since), Some(seen)) => Some((since, seen)),
        _ => None,
    };
    let last_telemetry = match r.get::<_, Option<i64>>(7)? {
        Some(id) => Some(telemetry::reading_at(r, 8, id)?),
        None => None,
    };
    Ok(Some(DeviceOverview {
        id,
        enabled: r.get(2)?,
        created_ms: r.get(3)?,
        status,
        access_version: r.get(6)?,
        last_telemetry,
    }))
}
