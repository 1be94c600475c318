//! The compact telemetry table: how a reading is written (row id = time, device as a small
//! key, typed columns, `extra` JSON only for what the columns cannot give back exactly) and
//! read back as the full object the device sent.
//!
//! Row id: `(ts_ms << ID_SHIFT) + n`, `n` counting rows within one millisecond, so the table's
//! own b-tree is the time index and `(device_key)` alone is the `(device, time)` index.

use super::rollups::Rollups;
use super::writer::Written;
use super::{RangeQuery, Result, Store, TelemetryRow};
use crate::model::{Message, Telemetry};
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Bits of the row id below the millisecond: up to 1024 readings per millisecond.
pub(super) const ID_SHIFT: u32 = 10;
const PER_MS: i64 = 1 << ID_SHIFT;

/// First row id of millisecond `ts_ms`.
pub(super) fn first_id(ts_ms: i64) -> i64 {
    ts_ms.clamp(0, i64::MAX >> ID_SHIFT) << ID_SHIFT
}

/// Last row id of millisecond `ts_ms`.
pub(super) fn last_id(ts_ms: i64) -> i64 {
    first_id(ts_ms) | (PER_MS - 1)
}

/// The millisecond a row id belongs to.
pub(super) fn ts_of(id: i64) -> i64 {
    id >> ID_SHIFT
}

/// "Is this a redelivery?": same device and seq within the window, and the same reading.
/// `INDEXED BY` pins `(device_key, seq)`; the planner would otherwise walk the device's rows.
pub(super) const DUPLICATE_TELEMETRY: &str = "SELECT EXISTS (SELECT 1 FROM telemetry
    INDEXED BY telemetry_device_seq
    WHERE device_key = ?1 AND seq = ?2 AND id >= ?3
      AND tmp IS ?4 AND lf IS ?5 AND locked IS ?6 AND extra IS ?7)";

/// Per-batch state of telemetry writing: device keys seen, the highest row id, the rollups
/// of what was stored. Lives for one transaction only, so a rolled-back batch leaves nothing.
#[derive(Default)]
pub(super) struct TelemetryBatch {
    keys: HashMap<String, i64>,
    last_id: Option<i64>,
    pub(super) rollups: Rollups,
}

impl TelemetryBatch {
    /// Stores one reading unless it is a redelivery within `dedup_window_ms`.
    pub(super) fn insert(
        &mut self,
        tx: &Transaction<'_>,
        m: &Message,
        t: &Telemetry,
        dedup_window_ms: i64,
    ) -> rusqlite::Result<Written> {
        let Some(extra) = extra_json(t) else {
            tracing::error!(device = %m.device, "payload not serializable, message NOT stored");
            return Ok(Written::Unserializable);
        };
        let key = self.key(tx, m.device.as_str())?;
        if let Some(seq) = t.seq {
            let since = first_id(m.ts_ms.saturating_sub(dedup_window_ms));
            let seen: bool = tx
                .prepare_cached(DUPLICATE_TELEMETRY)?
                .query_row((key, seq, since, t.tmp, t.lf, t.locked, &extra), |r| {
                    r.get(0)
                })?;
            if seen {
                return Ok(Written::Duplicate);
            }
        }
        let id = self.next_id(tx, m.ts_ms)?;
        tx.prepare_cached(
            "INSERT INTO telemetry (id, device_key, seq, tmp, lf, locked, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute((id, key, t.seq, t.tmp, t.lf, t.locked, &extra))?;
        self.rollups.add(key, ts_of(id), t);
        Ok(Written::Stored)
    }

    /// The device's key, created on its first reading; never deleted, so history outlives
    /// the device registration.
    fn key(&mut self, tx: &Transaction<'_>, device: &str) -> rusqlite::Result<i64> {
        if let Some(k) = self.keys.get(device) {
            return Ok(*k);
        }
        tx.prepare_cached("INSERT OR IGNORE INTO device_keys (name) VALUES (?1)")?
            .execute([device])?;
        let k: i64 = tx
            .prepare_cached("SELECT id FROM device_keys WHERE name = ?1")?
            .query_row([device], |r| r.get(0))?;
        self.keys.insert(device.to_owned(), k);
        Ok(k)
    }

    /// A free row id in millisecond `ts_ms` (or the next free one after it when 1024 rows
    /// already share that millisecond). The usual case — time moved on — needs no query.
    fn next_id(&mut self, tx: &Transaction<'_>, ts_ms: i64) -> rusqlite::Result<i64> {
        let last = match self.last_id {
            Some(l) => l,
            None => tx
                .prepare_cached("SELECT max(id) FROM telemetry")?
                .query_row([], |r| r.get::<_, Option<i64>>(0))?
                .unwrap_or(0),
        };
        let mut ms = ts_ms;
        let id = loop {
            let candidate = if first_id(ms) > last {
                first_id(ms)
            } else if ts_of(last) == ms {
                last + 1
            } else {
                // The clock went back: find the highest id used in that millisecond.
                tx.prepare_cached("SELECT max(id) FROM telemetry WHERE id BETWEEN ?1 AND ?2")?
                    .query_row((first_id(ms), last_id(ms)), |r| r.get::<_, Option<i64>>(0))?
                    .map_or(first_id(ms), |m| m + 1)
            };
            if ts_of(candidate) == ms {
                break candidate;
            }
            ms += 1;
        };
        self.last_id = Some(last.max(id));
        Ok(id)
    }
}

/// The payload fields the typed columns cannot reproduce exactly, as JSON text (`None` inside
/// `Some` when there are none). The outer `None` only if serialization fails.
fn extra_json(t: &Telemetry) -> Option<Option<String>> {
    let mut rest: Map<String, Value> = Map::new();
    for (k, v) in &t.payload {
        if typed_value(t, k).as_ref() != Some(v) {
            rest.insert(k.clone(), v.clone());
        }
    }
    if rest.is_empty() {
        return Some(None);
    }
    serde_json::to_string(&rest).ok().map(Some)
}

/// The JSON value a typed column gives back for field `key`, if it has one.
fn typed_value(t: &Telemetry, key: &str) -> Option<Value> {
    match key {
        "tmp" => t.tmp.map(Value::from),
        "lf" => t.lf.map(Value::from),
        "locked" => t.locked.map(Value::from),
        "seq" => t.seq.map(Value::from),
        _ => None,
    }
}

/// The object the device sent, from the typed columns and `extra` (which wins: it holds a
/// field exactly as sent whenever the column's value would differ, e.g. `23` vs `23.0`).
fn rebuild(
    extra: Option<&str>,
    seq: Option<i64>,
    tmp: Option<f64>,
    lf: Option<f64>,
    locked: Option<bool>,
) -> std::result::Result<Value, serde_json::Error> {
    let mut m: Map<String, Value> = match extra {
        Some(text) => serde_json::from_str(text)?,
        None => Map::new(),
    };
    let typed = [
        ("tmp", tmp.map(Value::from)),
        ("lf", lf.map(Value::from)),
        ("locked", locked.map(Value::from)),
        ("seq", seq.map(Value::from)),
    ];
    for (k, v) in typed {
        if let Some(v) = v {
            m.entry(k).or_insert(v);
        }
    }
    Ok(Value::Object(m))
}

/// Columns every telemetry read selects, in the order `row` expects.
const COLUMNS: &str = "SELECT t.id, k.name, t.seq, t.tmp, t.lf, t.locked, t.extra FROM telemetry t \
     JOIN device_keys k ON k.id = t.device_key";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TelemetryRow> {
    let (ts_ms, data) = reading_at(r, 2, r.get(0)?)?;
    Ok(TelemetryRow {
        ts_ms,
        device: super::device_at(r, 1)?,
        data,
    })
}

/// `(ts_ms, payload)` of the reading with row id `id` whose columns `seq, tmp, lf, locked,
/// extra` are columns `first..first + 5` of `r`.
pub(super) fn reading_at(
    r: &rusqlite::Row<'_>,
    first: usize,
    id: i64,
) -> rusqlite::Result<(i64, Value)> {
    let extra: Option<String> = r.get(first + 4)?;
    let data = rebuild(
        extra.as_deref(),
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
    )
    .map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            first + 4,
            rusqlite::types::Type::Text,
            Box::new(e),
        )
    })?;
    Ok((ts_of(id), data))
}

/// Which way a page of rows runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// The key of a device that sent telemetry, `None` if it never did.
pub(super) fn device_key(c: &Connection, device: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM device_keys WHERE name = ?1")?
        .query_row([device], |r| r.get(0))
        .optional()
}

/// The statement of `page`: `?1..?2` row-id range, `?3` limit, `?4` device key or NULL.
pub(super) fn page_sql(by_device: bool, order: Order) -> String {
    let dir = match order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    let filter = if by_device {
        "AND t.device_key = ?4"
    } else {
        "AND ?4 IS NULL"
    };
    format!("{COLUMNS} WHERE t.id BETWEEN ?1 AND ?2 {filter} ORDER BY t.id {dir} LIMIT ?3")
}

/// Up to `limit` rows of `q`'s range strictly beyond row id `after` in `order`; with the
/// row id of the last one, for the next page.
fn page(
    c: &Connection,
    q: &RangeQuery,
    order: Order,
    after: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<(i64, TelemetryRow)>> {
    let mut lo = first_id(q.start_ms.unwrap_or(0));
    let mut hi = last_id(q.end_ms.unwrap_or(i64::MAX >> ID_SHIFT));
    match (order, after) {
        (Order::NewestFirst, Some(a)) => hi = hi.min(a - 1),
        (Order::OldestFirst, Some(a)) => lo = lo.max(a + 1),
        (_, None) => {}
    }
    let key = match &q.device {
        Some(d) => match device_key(c, d.as_str())? {
            Some(k) => Some(k),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let mut stmt = c.prepare_cached(&page_sql(key.is_some(), order))?;
    let rows = stmt.query_map((lo, hi, limit, key), |r| Ok((r.get(0)?, row(r)?)))?;
    rows.collect()
}

/// Rows fetched per page when streaming an export.
const EXPORT_PAGE: u32 = 1_000;

impl Store {
    /// `/data`: the newest `q.limit` readings of the range.
    pub fn telemetry(&self, q: &RangeQuery) -> Result<Vec<TelemetryRow>> {
        self.with_conn(|c| {
            Ok(page(c, q, Order::NewestFirst, None, q.limit)?
                .into_iter()
                .map(|(_, r)| r)
                .collect())
        })
    }

    /// The newest reading of every device with a status row (one index probe per device).
    pub fn newest_telemetry_per_device(&self) -> Result<Vec<TelemetryRow>> {
        self.with_conn(|c| {
            // CROSS JOIN keeps device_keys outside: one probe of `(device_key)` per device.
            let mut stmt = c.prepare_cached(
                "SELECT t.id, k.name, t.seq, t.tmp, t.lf, t.locked, t.extra
                 FROM device_keys k CROSS JOIN telemetry t
                 ON t.id = (SELECT max(id) FROM telemetry WHERE device_key = k.id)
                 WHERE k.name IN (SELECT device FROM device_status) ORDER BY k.name",
            )?;
            let rows = stmt.query_map([], row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every reading of `q`'s range (at most `q.limit` when it is not 0) in `order`, handed
    /// to `each` page by page: memory stays at one page whatever the row count, and no read
    /// transaction is held while `each` runs. `each` returning `false` stops.
    pub fn telemetry_each(
        &self,
        q: &RangeQuery,
        order: Order,
        mut each: impl FnMut(Vec<TelemetryRow>) -> bool,
    ) -> Result<()> {
        let mut after = None;
        let mut left = if q.limit == 0 {
            u64::MAX
        } else {
            u64::from(q.limit)
        };
        while left > 0 {
            let want = u32::try_from(left.min(u64::from(EXPORT_PAGE))).unwrap_or(EXPORT_PAGE);
            let rows = self.with_conn(|c| Ok(page(c, q, order, after, want)?))?;
            let Some((last, _)) = rows.last() else {
                return Ok(());
            };
            after = Some(*last);
            left -= rows.len() as u64;
            let full = rows.len() == want as usize;
            if !each(rows.into_iter().map(|(_, r)| r).collect()) || !full {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reading(v: Value) -> Telemetry {
        let payload = v.as_object().cloned().unwrap();
        let num = |k: &str| payload.get(k).and_then(Value::as_f64);
        Telemetry {
            tmp: num("tmp"),
            lf: num("lf"),
            locked: payload.get("locked").and_then(Value::as_bool),
            seq: payload.get("seq").and_then(Value::as_i64),
            payload,
        }
    }

    /// Typed fields leave the JSON only when the column gives them back identically.
    #[test]
    fn extra_keeps_only_what_columns_cannot_reproduce() {
        let plain = reading(json!({"tmp": 23.5, "lf": 41.0, "locked": true, "seq": 7}));
        assert_eq!(extra_json(&plain), Some(None));
        let odd = reading(json!({"tmp": 23, "lf": 41.0, "note": "a,b", "seq": 3}));
        let extra = extra_json(&odd).unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&extra).unwrap(),
            json!({"tmp": 23, "note": "a,b"})
        );
        for t in [plain, odd] {
            let extra = extra_json(&t).unwrap();
            let back = rebuild(extra.as_deref(), t.seq, t.tmp, t.lf, t.locked).unwrap();
            assert_eq!(back, Value::Object(t.payload.clone()));
        }
    }

    #[test]
    fn ids_carry_the_millisecond() {
        let ts = 1_795_860_000_123;
        assert_eq!(ts_of(first_id(ts)), ts);
        assert_eq!(ts_of(last_id(ts)), ts);
        assert_eq!(ts_of(last_id(ts) + 1), ts + 1);
    }
}
