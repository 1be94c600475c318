//! Compact telemetry and rollups: the v2 → v3 migration keeps every payload, summaries from
//! rollups equal summaries from raw rows, new and old files get incremental auto-vacuum.

use super::*;
use crate::store::summary::{Summary, SummarySource};

const MIN: i64 = 60_000;
const T0: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z

/// Asserts two summaries agree: same buckets, counts, min/max; averages to 1e-9.
fn assert_same(a: &Summary, b: &Summary) {
    assert_eq!(
        (a.start_ms, a.end_ms, a.width_ms, a.buckets.len()),
        (b.start_ms, b.end_ms, b.width_ms, b.buckets.len())
    );
    let close = |x: Option<(f64, f64, f64)>, y: Option<(f64, f64, f64)>| match (x, y) {
        (Some(x), Some(y)) => x.0 == y.0 && x.2 == y.2 && (x.1 - y.1).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    for (x, y) in a.buckets.iter().zip(&b.buckets) {
        assert_eq!((x.start_ms, x.count), (y.start_ms, y.count));
        assert!(close(x.tmp, y.tmp), "{x:?} vs {y:?}");
        assert!(close(x.lf, y.lf), "{x:?} vs {y:?}");
        match (x.locked, y.locked) {
            (Some(p), Some(q)) => assert!((p - q).abs() < 1e-12),
            (p, q) => assert_eq!(p, q),
        }
    }
}

/// Readings of two devices over six hours, written in many batches, some without `tmp`.
fn six_hours(store: &Store) {
    let mut messages = Vec::new();
    for i in 0..2_000i64 {
        let device = if i % 3 == 0 { "b" } else { "a" };
        let mut m = telemetry(
            device,
            T0 + i * 11_000,
            Some(i),
            15.0 + (i % 97) as f64 * 0.13,
        );
        if let Body::Telemetry(t) = &mut m.body {
            if i % 7 == 0 {
                t.tmp = None;
                t.payload.remove("tmp");
            }
            t.locked = Some(i % 5 != 0);
            t.payload.insert("locked".into(), (i % 5 != 0).into());
        }
        messages.push(m);
    }
    for chunk in messages.chunks(150) {
        write_all(store, chunk.to_vec());
    }
}

/// For 5-minute, 10-minute, hourly and 2-hour buckets, per device and for all devices, the
/// rollups give what the raw rows give.
#[test]
fn summary_from_rollups_equals_summary_from_raw() {
    let (_dir, store) = temp_store();
    six_hours(&store);
    for width in [5 * MIN, 10 * MIN, 60 * MIN, 120 * MIN, 7 * MIN + 13] {
        for device in [None, Some("a"), Some("b")] {
            let (start, end) = (T0 - 17 * MIN - 5, T0 + 7 * 60 * MIN);
            let auto = store
                .telemetry_summary(device, start, end, width, SummarySource::Auto)
                .expect("rollup summary");
            let raw = store
                .telemetry_summary(device, start, end, width, SummarySource::Raw)
                .expect("raw summary");
            assert!(!auto.buckets.is_empty());
            assert_eq!(auto.width_ms % (5 * MIN), 0, "aligned to the span");
            assert_same(&auto, &raw);
            let total: i64 = auto.buckets.iter().map(|b| b.count).sum();
            let want = match device {
                None => 2_000,
                Some("b") => 667,
                Some(_) => 1_333,
            };
            assert_eq!(total, want, "{device:?} {width}");
        }
    }
}

/// A version-2 file (full JSON in every row) is converted: every payload comes back exactly,
/// integers stay integers, extra fields stay, and the rollups cover the old rows.
#[test]
fn migration_to_compact_rows_keeps_every_payload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rzmon.db");
    let payloads = [
        json!({"tmp": 23.5, "lf": 41.25, "locked": true, "seq": 1}),
        json!({"tmp": 23, "lf": 40.0, "locked": false, "seq": 2, "rssi": -61}),
        json!({"lf": 39.5, "note": "a \"b\", c"}),
        json!({"tmp": 0.1, "locked": true}),
    ];
    {
        let mut c = open_connection(&path).expect("open");
        schema::migrate_to(&mut c, 2).expect("v2");
        for (i, p) in payloads.iter().enumerate() {
            let m = p.as_object().unwrap();
            c.execute(
                "INSERT INTO telemetry (device, ts_ms, seq, tmp, lf, locked, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    if i == 3 { "b" } else { "a" },
                    T0 + i as i64 * 1000,
                    m.get("seq").and_then(Value::as_i64),
                    m.get("tmp").and_then(Value::as_f64),
                    m.get("lf").and_then(Value::as_f64),
                    m.get("locked").and_then(Value::as_bool),
                    serde_json::to_string(m).unwrap(),
                ],
            )
            .expect("old row");
        }
    }
    let store = Store::open(&path).expect("migrates");
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    let mut rows = store.telemetry(&all(None)).expect("rows");
    rows.reverse();
    let got: Vec<Value> = rows.iter().map(|r| r.data.clone()).collect();
    assert_eq!(got, payloads.to_vec());
    assert_eq!(rows[1].ts_ms, T0 + 1000);
    let extra: i64 = store
        .with_conn(|c| Ok(c.query_row("SELECT count(extra) FROM telemetry", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(
        extra, 2,
        "only the rows with fields beyond the columns keep JSON"
    );
    let s = store
        .telemetry_summary(Some("a"), T0, T0 + 60 * MIN, 60 * MIN, SummarySource::Auto)
        .unwrap();
    assert_eq!(s.buckets.len(), 1);
    assert_eq!(s.buckets[0].count, 3);
    assert_eq!(s.buckets[0].tmp, Some((23.0, 23.25, 23.5)));
    assert_eq!(s.buckets[0].locked, Some(0.5));
}

/// New files are created with incremental auto-vacuum; an old file is converted on open.
#[test]
fn files_get_incremental_auto_vacuum() {
    let (dir, store) = temp_store();
    let mode = |s: &Store| {
        s.with_conn(|c| Ok(c.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))?))
            .unwrap()
    };
    assert_eq!(mode(&store), 2);
    let old = dir.path().join("old.db");
    {
        let mut c = open_connection(&old).expect("open");
        schema::migrate_to(&mut c, 2).expect("v2");
        let m: i64 = c
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(m, 0);
    }
    assert_eq!(mode(&Store::open(&old).expect("reopen")), 2);
}
