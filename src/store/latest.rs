//! The newest stored reading of every registered device, in one query (what `/metrics` turns
//! into per-device gauges), and the number of active alerts per device (Home Assistant).

use super::{Result, Store};

/// A registered device with its newest telemetry row's typed columns and its last-seen time.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub device: String,
    pub tmp: Option<f64>,
    pub lf: Option<f64>,
    pub locked: Option<bool>,
    pub last_seen_ms: Option<i64>,
}

/// One index seek per device on `telemetry_device_ts` for its newest row.
pub(super) const LATEST: &str = "SELECT d.id, t.tmp, t.lf, t.locked, s.last_seen_ms
    FROM devices d
    LEFT JOIN device_status s ON s.device = d.id
    LEFT JOIN telemetry t ON t.id =
        (SELECT id FROM telemetry WHERE device = d.id ORDER BY ts_ms DESC, id DESC LIMIT 1)
    ORDER BY d.id";

impl Store {
    /// Unresolved alerts per device (system alerts, which have no device, are not counted).
    pub fn active_alert_counts(&self) -> Result<std::collections::HashMap<String, u32>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT device, count(*) FROM alerts
                 WHERE resolved_ms IS NULL AND device IS NOT NULL AND device != ''
                 GROUP BY device",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every registered device, by id, with its newest reading (if any).
    pub fn latest_readings(&self) -> Result<Vec<LatestRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(LATEST)?;
            let rows = stmt.query_map([], |r| {
                Ok(LatestRow {
                    device: r.get(0)?,
                    tmp: r.get(1)?,
                    lf: r.get(2)?,
                    locked: r.get(3)?,
                    last_seen_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
