//! Downsampled telemetry for charts: min/avg/max of temperature and humidity per time bucket,
//! computed in SQL, so a 30-day chart never downloads raw rows.

use super::{Result, Store};
use serde::Serialize;

/// One time bucket; `None` when no row of the bucket carried the field.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, epoch ms.
    pub start_ms: i64,
    pub count: i64,
    pub tmp: Option<(f64, f64, f64)>,
    pub lf: Option<(f64, f64, f64)>,
    /// Share of rows with the door locked (0..1), if any row said.
    pub locked: Option<f64>,
}

impl Store {
    /// Buckets of `width_ms` from `start_ms` to `end_ms` (inclusive), oldest first; empty
    /// buckets are left out.
    pub fn telemetry_summary(
        &self,
        device: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        width_ms: i64,
    ) -> Result<Vec<Bucket>> {
        let width = width_ms.max(1);
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT (ts_ms - ?1) / ?3 AS b, count(*),
                        min(tmp), avg(tmp), max(tmp), min(lf), avg(lf), max(lf), avg(locked)
                 FROM telemetry
                 WHERE ts_ms BETWEEN ?1 AND ?2 AND (?4 IS NULL OR device = ?4)
                 GROUP BY b ORDER BY b",
            )?;
            let rows = stmt.query_map((start_ms, end_ms, width, device), |r| {
                let triple = |i: usize| -> rusqlite::Result<Option<(f64, f64, f64)>> {
                    Ok(match (r.get(i)?, r.get(i + 1)?, r.get(i + 2)?) {
                        (Some(a), Some(b), Some(c)) => Some((a, b, c)),
                        _ => None,
                    })
                };
                Ok(Bucket {
                    start_ms: start_ms + r.get::<_, i64>(0)? * width,
                    count: r.get(1)?,
                    tmp: triple(2)?,
                    lf: triple(5)?,
                    locked: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::model::{Body, DeviceId, Message, Telemetry};
    use std::sync::Arc;

    #[test]
    fn buckets_aggregate_per_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let writer = store
            .spawn_writer(Arc::new(Metrics::default()), Default::default())
            .unwrap();
        let tx = writer.sender();
        for (ts, tmp) in [(1_000, 20.0), (1_500, 22.0), (2_100, 30.0), (9_000, 10.0)] {
            let payload = serde_json::json!({ "tmp": tmp })
                .as_object()
                .cloned()
                .unwrap();
            let m = Message {
                device: DeviceId::parse("d").unwrap(),
                ts_ms: ts,
                body: Body::Telemetry(Telemetry {
                    tmp: Some(tmp),
                    lf: None,
                    locked: None,
                    seq: None,
                    payload,
                }),
            };
            tx.blocking_send(m, None).unwrap();
        }
        drop(tx);
        writer.close().unwrap();
        let b = store
            .telemetry_summary(Some("d"), 1_000, 3_000, 1_000)
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].start_ms, b[0].count, b[0].tmp),
            (1_000, 2, Some((20.0, 21.0, 22.0)))
        );
        assert_eq!((b[1].start_ms, b[1].tmp), (2_000, Some((30.0, 30.0, 30.0))));
        assert_eq!(b[0].lf, None);
        assert!(
            store
                .telemetry_summary(Some("x"), 0, 10_000, 1_000)
                .unwrap()
                .is_empty()
        );
    }
}
