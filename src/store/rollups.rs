//! 5-minute and hourly rollups per device (count, n/min/sum/max of `tmp` and `lf`, locked
//! share), kept up to date inside the writer's commit: a batch is aggregated in memory and
//! each touched (span, device, bucket) row is upserted once. Charts over long ranges read
//! these, so their cost does not grow with the number of raw rows.

use crate::model::Telemetry;
use rusqlite::{Connection, Transaction};
use std::collections::HashMap;

/// The rollup spans, finest first.
pub const SPANS_MS: [i64; 2] = [5 * 60 * 1000, 60 * 60 * 1000];

/// Aggregate of one field over a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stat {
    pub n: i64,
    pub min: f64,
    pub sum: f64,
    pub max: f64,
}

impl Stat {
    fn add(&mut self, v: f64) {
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
    }

    /// Merges another aggregate (a later rollup row of the same output bucket).
    pub fn merge(&mut self, o: &Stat) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.n += o.n;
        self.sum += o.sum;
    }

    /// `(min, avg, max)`, or `None` when no reading carried the field.
    pub fn triple(&self) -> Option<(f64, f64, f64)> {
        (self.n > 0).then(|| (self.min, self.sum / self.n as f64, self.max))
    }
}

/// Aggregate of a bucket: every reading counts, each field only where present.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Agg {
    pub count: i64,
    pub tmp: Stat,
    pub lf: Stat,
    pub locked_n: i64,
    pub locked_on: i64,
}

impl Agg {
    pub fn merge(&mut self, o: &Agg) {
        self.count += o.count;
        self.tmp.merge(&o.tmp);
        self.lf.merge(&o.lf);
        self.locked_n += o.locked_n;
        self.locked_on += o.locked_on;
    }

    /// Share of readings with the door locked, if any said.
    pub fn locked_share(&self) -> Option<f64> {
        (self.locked_n > 0).then(|| self.locked_on as f64 / self.locked_n as f64)
    }
}

/// What one batch adds to the rollups, keyed by (span, device key, bucket start).
#[derive(Debug, Default)]
pub struct Rollups {
    buckets: HashMap<(i64, i64, i64), Agg>,
}

impl Rollups {
    /// Counts one stored reading of device `key` at `ts_ms`.
    pub fn add(&mut self, key: i64, ts_ms: i64, t: &Telemetry) {
        for span in SPANS_MS {
            let a = self
                .buckets
                .entry((span, key, ts_ms.div_euclid(span) * span))
                .or_default();
            a.count += 1;
            if let Some(v) = t.tmp {
                a.tmp.add(v);
            }
            if let Some(v) = t.lf {
                a.lf.add(v);
            }
            if let Some(l) = t.locked {
                a.locked_n += 1;
                a.locked_on += i64::from(l);
            }
        }
    }

    /// Upserts every touched bucket inside the batch's transaction.
    pub fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        if self.buckets.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO rollups (span_ms, device_key, bucket_ms, count, tmp_n, tmp_min, tmp_sum,
                 tmp_max, lf_n, lf_min, lf_sum, lf_max, locked_n, locked_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (span_ms, device_key, bucket_ms) DO UPDATE SET
                 count = count + excluded.count,
                 tmp_min = CASE WHEN excluded.tmp_n = 0 THEN tmp_min WHEN tmp_n = 0
                     THEN excluded.tmp_min ELSE min(tmp_min, excluded.tmp_min) END,
                 tmp_max = CASE WHEN excluded.tmp_n = 0 THEN tmp_max WHEN tmp_n = 0
                     THEN excluded.tmp_max ELSE max(tmp_max, excluded.tmp_max) END,
                 tmp_sum = coalesce(tmp_sum, 0) + coalesce(excluded.tmp_sum, 0),
                 tmp_n = tmp_n + excluded.tmp_n,
                 lf_min = CASE WHEN excluded.lf_n = 0 THEN lf_min WHEN lf_n = 0
                     THEN excluded.lf_min ELSE min(lf_min, excluded.lf_min) END,
                 lf_max = CASE WHEN excluded.lf_n = 0 THEN lf_max WHEN lf_n = 0
                     THEN excluded.lf_max ELSE max(lf_max, excluded.lf_max) END,
                 lf_sum = coalesce(lf_sum, 0) + coalesce(excluded.lf_sum, 0),
                 lf_n = lf_n + excluded.lf_n,
                 locked_n = locked_n + excluded.locked_n,
                 locked_on = locked_on + excluded.locked_on",
        )?;
        let opt = |s: &Stat, v: f64| (s.n > 0).then_some(v);
        for ((span, key, bucket), a) in self.buckets.drain() {
            stmt.execute(rusqlite::params![
                span,
                key,
                bucket,
                a.count,
                a.tmp.n,
                opt(&a.tmp, a.tmp.min),
                opt(&a.tmp, a.tmp.sum),
                opt(&a.tmp, a.tmp.max),
                a.lf.n,
                opt(&a.lf, a.lf.min),
                opt(&a.lf, a.lf.sum),
                opt(&a.lf, a.lf.max),
                a.locked_n,
                a.locked_on,
            ])?;
        }
        Ok(())
    }
}

/// The rollup rows of `span_ms` with bucket start in `[start_ms, end_ms]`, optionally of one
/// device key, oldest first: `(bucket_ms, agg)`, one per device and bucket.
pub(super) fn read(
    c: &Connection,
    span_ms: i64,
    device_key: Option<i64>,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Vec<(i64, Agg)>> {
    let filter = if device_key.is_some() {
        "device_key = ?4"
    } else {
        "?4 IS NULL"
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT bucket_ms, count, tmp_n, tmp_min, tmp_sum, tmp_max, lf_n, lf_min, lf_sum,
                lf_max, locked_n, locked_on
         FROM rollups WHERE span_ms = ?1 AND {filter} AND bucket_ms BETWEEN ?2 AND ?3
         ORDER BY bucket_ms"
    ))?;
    let rows = stmt.query_map((span_ms, start_ms, end_ms, device_key), |r| {
        let stat = |i: usize| -> rusqlite::Result<Stat> {
            let n: i64 = r.get(i)?;
            Ok(if n == 0 {
                Stat::default()
            } else {
                Stat {
                    n,
                    min: r.get(i + 1)?,
                    sum: r.get(i + 2)?,
                    max: r.get(i + 3)?,
                }
            })
        };
        Ok((
            r.get(0)?,
            Agg {
                count: r.get(1)?,
                tmp: stat(2)?,
                lf: stat(6)?,
                locked_n: r.get(10)?,
                locked_on: r.get(11)?,
            },
        ))
    })?;
    rows.collect()
}
