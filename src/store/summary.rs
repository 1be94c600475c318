//! Downsampled telemetry for charts: min/avg/max of temperature and humidity per time bucket.
//! Buckets of 5 minutes or more come from the rollups (their range and width aligned to the
//! rollup span), so a 30-day chart costs the same at any table size; finer ones from raw rows.

use super::rollups::{self, Agg, SPANS_MS};
use super::telemetry::{device_key, first_id, last_id};
use super::{Result, Store};
use rusqlite::Connection;
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

/// A summary as computed: the range and width actually used, and the non-empty buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub start_ms: i64,
    pub end_ms: i64,
    pub width_ms: i64,
    pub buckets: Vec<Bucket>,
}

/// Where a summary's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummarySource {
    /// Rollups when the bucket is at least one rollup span, else raw rows.
    Auto,
    /// Raw rows always (for comparisons).
    Raw,
}

/// The rollup span a bucket of `width_ms` can be built from, if any.
fn span_for(width_ms: i64) -> Option<i64> {
    SPANS_MS.iter().rev().copied().find(|s| width_ms >= *s)
}

/// Range and width aligned to `span`: start down, width up to a multiple, end up to the end
/// of its span, so every rollup bucket falls wholly into one output bucket.
fn align(start_ms: i64, end_ms: i64, width_ms: i64, span: i64) -> (i64, i64, i64) {
    let start = start_ms.div_euclid(span) * span;
    let width = (width_ms + span - 1) / span * span;
    let end = (end_ms.div_euclid(span) + 1) * span - 1;
    (start, end, width)
}

fn bucket(start_ms: i64, a: &Agg) -> Bucket {
    Bucket {
        start_ms,
        count: a.count,
        tmp: a.tmp.triple(),
        lf: a.lf.triple(),
        locked: a.locked_share(),
    }
}

/// Sums rollup rows (already in bucket order) into output buckets of `width` from `start`.
fn from_rollups(rows: Vec<(i64, Agg)>, start: i64, width: i64) -> Vec<Bucket> {
    let mut out: Vec<(i64, Agg)> = Vec::new();
    for (b, a) in rows {
        let at = start + (b - start).div_euclid(width) * width;
        match out.last_mut() {
            Some((s, acc)) if *s == at => acc.merge(&a),
            _ => out.push((at, a)),
        }
    }
    out.iter().map(|(s, a)| bucket(*s, a)).collect()
}

fn from_raw(
    c: &Connection,
    key: Option<i64>,
    start: i64,
    end: i64,
    width: i64,
) -> rusqlite::Result<Vec<Bucket>> {
    let filter = if key.is_some() {
        "device_key = ?4"
    } else {
        "?4 IS NULL"
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT ((id >> 10) - ?5) / ?3 AS b, count(*),
                min(tmp), avg(tmp), max(tmp), min(lf), avg(lf), max(lf), avg(locked)
         FROM telemetry
         WHERE id BETWEEN ?1 AND ?2 AND {filter}
         GROUP BY b ORDER BY b"
    ))?;
    let rows = stmt.query_map((first_id(start), last_id(end), width, key, start), |r| {
        let triple = |i: usize| -> rusqlite::Result<Option<(f64, f64, f64)>> {
            Ok(match (r.get(i)?, r.get(i + 1)?, r.get(i + 2)?) {
                (Some(a), Some(b), Some(c)) => Some((a, b, c)),
                _ => None,
            })
        };
        Ok(Bucket {
            start_ms: start + r.get::<_, i64>(0)? * width,
            count: r.get(1)?,
            tmp: triple(2)?,
            lf: triple(5)?,
            locked: r.get(8)?,
        })
    })?;
    rows.collect()
}

impl Store {
    /// Buckets of `width_ms` from `start_ms` to `end_ms` (inclusive), oldest first; empty
    /// buckets are left out. With `SummarySource::Auto` and a width of at least 5 minutes the range
    /// and width are aligned to the rollup span and the rollups answer.
    pub fn telemetry_summary(
        &self,
        device: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        width_ms: i64,
        source: SummarySource,
    ) -> Result<Summary> {
        let width = width_ms.max(1);
        let span = span_for(width);
        let (start, end, width) = match span {
            Some(s) => align(start_ms, end_ms, width, s),
            None => (start_ms, end_ms, width),
        };
        self.with_conn(|c| {
            let key = match device {
                Some(d) => match device_key(c, d)? {
                    Some(k) => Some(k),
                    None => {
                        return Ok(Summary {
                            start_ms: start,
                            end_ms: end,
                            width_ms: width,
                            buckets: Vec::new(),
                        });
                    }
                },
                None => None,
            };
            let buckets = match (span, source) {
                (Some(s), SummarySource::Auto) => {
                    from_rollups(rollups::read(c, s, key, start, end)?, start, width)
                }
                _ => from_raw(c, key, start, end, width)?,
            };
            Ok(Summary {
                start_ms: start,
                end_ms: end,
                width_ms: width,
                buckets,
            })
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
            .telemetry_summary(Some("d"), 1_000, 3_000, 1_000, SummarySource::Auto)
            .unwrap()
            .buckets;
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].start_ms, b[0].count, b[0].tmp),
            (1_000, 2, Some((20.0, 21.0, 22.0)))
        );
        assert_eq!((b[1].start_ms, b[1].tmp), (2_000, Some((30.0, 30.0, 30.0))));
        assert_eq!(b[0].lf, None);
        assert!(
            store
                .telemetry_summary(Some("x"), 0, 10_000, 1_000, SummarySource::Auto)
                .unwrap()
                .buckets
                .is_empty()
        );
    }
}
