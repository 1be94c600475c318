//! The newest stored reading of every registered device as typed values (what `/metrics`
//! turns into per-device gauges and Home Assistant mirrors), taken from the one-query devices
//! overview; and the alert counts both show.

use super::overview::DeviceOverview;
use super::{Result, Store};

/// A registered device with its newest telemetry row's values and its last-seen time.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub device: String,
    pub tmp: Option<f64>,
    pub lf: Option<f64>,
    pub locked: Option<bool>,
    pub last_seen_ms: Option<i64>,
}

impl From<DeviceOverview> for LatestRow {
    fn from(d: DeviceOverview) -> Self {
        let data = d.last_telemetry.as_ref().map(|(_, v)| v);
        let number = |key: &str| data.and_then(|v| v[key].as_f64());
        Self {
            tmp: number("tmp"),
            lf: number("lf"),
            locked: data.and_then(|v| v["locked"].as_bool()),
            last_seen_ms: d.status.map(|(_, seen)| seen),
            device: d.id.as_str().to_owned(),
        }
    }
}

/// Unresolved alerts of one severity, acknowledged or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveAlerts {
    pub severity: String,
    pub acknowledged: bool,
    pub count: u64,
}

impl Store {
    /// Every registered device, by id, with its newest reading (if any).
    pub fn latest_readings(&self) -> Result<Vec<LatestRow>> {
        let (devices, _) = self.device_overview()?;
        Ok(devices.into_iter().map(LatestRow::from).collect())
    }

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

    /// Unresolved alerts (system alerts included) by severity and acknowledgement.
    pub fn active_alert_summary(&self) -> Result<Vec<ActiveAlerts>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT severity, acked_ms IS NOT NULL, count(*) FROM alerts
                 WHERE resolved_ms IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ActiveAlerts {
                    severity: r.get(0)?,
                    acknowledged: r.get(1)?,
                    count: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
