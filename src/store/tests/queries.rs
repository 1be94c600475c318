//! Range queries: inclusive bounds, newest first, device and type filters, limits, and that
//! they walk an index.

use super::*;

/// Ranges are inclusive, results newest first (ties by insertion order, newest first),
/// filtered by device and cut at `limit`.
#[test]
fn range_queries_filter_order_and_limit() {
    let (_dir, store) = temp_store();
    let mut messages: Vec<Message> = (0..10)
        .map(|i| {
            telemetry(
                if i % 2 == 0 { "a" } else { "b" },
                100 * i,
                None,
                f64::from(i as u8),
            )
        })
        .collect();
    messages.push(telemetry("a", 500, None, 99.0));
    write_all(&store, messages);

    let q = |start, end, limit, device: Option<&str>| RangeQuery {
        start_ms: Some(start),
        end_ms: Some(end),
        limit,
        device: device.map(dev),
    };
    let ts = |rows: Vec<TelemetryRow>| rows.iter().map(|r| r.ts_ms).collect::<Vec<_>>();
    assert_eq!(
        ts(store.telemetry(&q(200, 600, 100, None)).expect("q")),
        [600, 500, 500, 400, 300, 200]
    );
    assert_eq!(
        ts(store.telemetry(&q(200, 600, 3, None)).expect("q")),
        [600, 500, 500]
    );
    assert_eq!(
        ts(store.telemetry(&q(0, 900, 100, Some("b"))).expect("q")),
        [900, 700, 500, 300, 100]
    );
    let tie = store.telemetry(&q(500, 500, 100, None)).expect("q");
    assert_eq!(
        tie[0].data["tmp"],
        json!(99.0),
        "the later insert comes first"
    );
    assert_eq!(store.telemetry(&all(None)).expect("q").len(), 11);
    assert!(
        store
            .telemetry(&q(901, 2_000, 100, None))
            .expect("q")
            .is_empty()
    );
    assert!(store.telemetry(&all(Some("nobody"))).expect("q").is_empty());
}

/// Incidents filter by type, device and range.
#[test]
fn incidents_filter_by_type() {
    let (_dir, store) = temp_store();
    write_all(
        &store,
        vec![
            incident("a", 1, "unauthorized_access", None),
            incident("a", 2, "overheat", None),
            incident("b", 3, "overheat", None),
        ],
    );
    let kinds = |rows: Vec<IncidentRow>| {
        rows.into_iter()
            .map(|r| (r.device.to_string(), r.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(store.incidents(&all(None), Some("overheat")).expect("q")),
        [
            ("b".into(), "overheat".into()),
            ("a".into(), "overheat".into())
        ]
    );
    assert_eq!(
        kinds(
            store
                .incidents(&all(Some("a")), Some("overheat"))
                .expect("q")
        ),
        [("a".into(), "overheat".into())]
    );
    assert_eq!(store.incidents(&all(None), None).expect("q").len(), 3);
    assert_eq!(
        store.incidents(&all(None), None).expect("q")[0].data["message"],
        "door forced"
    );
}

/// The range queries walk an index in order: no full scan, no sort of the whole range.
#[test]
fn range_queries_use_indexes() {
    let (_dir, store) = temp_store();
    for by_device in [false, true] {
        for order in [Order::NewestFirst, Order::OldestFirst] {
            let sql = telemetry::page_sql(by_device, order);
            let plan: Vec<String> = store
                .with_conn(|c| {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let key = by_device.then_some(1);
                    let rows = stmt.query_map((0, i64::MAX, 10, key), |r| r.get(3))?;
                    Ok(rows.collect::<rusqlite::Result<_>>()?)
                })
                .expect("plan");
            let plan = plan.join(" | ");
            assert!(plan.contains("rowid>? AND rowid<?"), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
    for (device, kind) in [(Some("a"), Some("overheat")), (None, Some("overheat"))] {
        let q = RangeQuery {
            device: device.map(dev),
            limit: 10,
            ..RangeQuery::default()
        };
        let table = if kind.is_some() {
            "incidents"
        } else {
            "telemetry"
        };
        let sql = events::range_sql(
            &format!("SELECT payload FROM {table}"),
            &q,
            kind.map(|_| "type"),
        );
        let plan: Vec<String> = store
            .with_conn(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let params = rusqlite::params_from_iter(events::range_params(&q, kind));
                let rows = stmt.query_map(params, |r| r.get(3))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .expect("plan");
        let plan = plan.join(" | ");
        assert!(plan.contains("USING INDEX"), "{sql}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
    }
}

/// The devices overview: every registered device once, its newest telemetry row (ties by
/// insertion order), nothing for a device without rows, and the list version — also when
/// there are no devices at all.
#[test]
fn device_overview_in_one_query() {
    let (_dir, store) = temp_store();
    assert_eq!(store.device_overview().expect("empty").0, Vec::new());
    for id in ["b", "a"] {
        store.create_device(&dev(id), "hash").expect("device");
    }
    write_all(
        &store,
        vec![
            telemetry("a", 100, None, 1.0),
            telemetry("a", 300, None, 3.0),
            telemetry("a", 300, None, 4.0),
            telemetry("a", 200, None, 2.0),
            telemetry("ghost", 900, None, 9.0),
        ],
    );
    let version = store.add_access_id("04A1", "", "admin").expect("id");
    store.set_device_access_version("a", version).expect("sync");
    let (devices, v) = store.device_overview().expect("overview");
    assert_eq!(v, version);
    let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let (ts, data) = devices[0].last_telemetry.clone().expect("a has readings");
    assert_eq!((ts, data["tmp"].as_f64()), (300, Some(4.0)));
    assert_eq!(devices[0].access_version, Some(version));
    assert_eq!(devices[1].last_telemetry, None);
    assert_eq!(devices[1].access_version, None);

    let plan: Vec<String> = store
        .with_conn(|c| {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {}", overview::OVERVIEW_SQL))?;
            let rows = stmt.query_map([], |r| r.get(3))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .expect("plan");
    let plan = plan.join(" | ");
    assert!(plan.contains("telemetry_device"), "{plan}");
    assert!(!plan.contains("SCAN telemetry"), "{plan}");
}
