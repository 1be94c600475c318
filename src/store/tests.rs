//! Tests of the store against real database files in a temp dir: migrations, the batching
//! writer and its duplicate check, queries, accounts, backup and file integrity.

use super::*;
use crate::model::{AccessEvent, Body, Incident, Message, Status, Telemetry};
use serde_json::{Map, Value, json};

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("rzmon.db")).expect("open store");
    (dir, store)
}

fn dev(id: &str) -> DeviceId {
    DeviceId::parse(id).expect("valid device id")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn telemetry(device: &str, ts_ms: i64, seq: Option<i64>, tmp: f64) -> Message {
    let mut payload = object(json!({ "tmp": tmp, "lf": 40.0, "locked": true }));
    if let Some(seq) = seq {
        payload.insert("seq".into(), seq.into());
    }
    Message {
        device: dev(device),
        ts_ms,
        body: Body::Telemetry(Telemetry {
            tmp: Some(tmp),
            lf: Some(40.0),
            locked: Some(true),
            seq,
            payload,
        }),
    }
}

fn incident(device: &str, ts_ms: i64, kind: &str, seq: Option<i64>) -> Message {
    let mut payload = object(json!({ "type": kind, "message": "door forced" }));
    if let Some(seq) = seq {
        payload.insert("seq".into(), seq.into());
    }
    Message {
        device: dev(device),
        ts_ms,
        body: Body::Incident(Incident {
            kind: kind.into(),
            payload,
        }),
    }
}

fn status(device: &str, ts_ms: i64, s: Status) -> Message {
    Message {
        device: dev(device),
        ts_ms,
        body: Body::Status(s),
    }
}

/// Runs a writer over `messages` and closes it; returns the metrics it updated.
fn write_all(store: &Store, messages: Vec<Message>) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    let writer = store.spawn_writer(metrics.clone()).expect("writer");
    let tx = writer.sender();
    for m in messages {
        tx.send(m).expect("writer accepts");
    }
    drop(tx);
    writer.close().expect("close flushes");
    metrics
}

fn all(device: Option<&str>) -> RangeQuery {
    RangeQuery {
        limit: 100_000,
        device: device.map(dev),
        ..RangeQuery::default()
    }
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .with_conn(|c| Ok(c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?))
        .expect("count")
}

/// Re-opening an existing file applies no migration twice and keeps the data.
#[test]
fn migrations_are_idempotent() {
    let (dir, store) = temp_store();
    store.create_user("admin", "hash").expect("user");
    for _ in 0..2 {
        let again = Store::open(&dir.path().join("rzmon.db")).expect("reopen");
        assert_eq!(
            again.schema_version().expect("version"),
            schema::latest_version()
        );
        assert_eq!(again.user_count().expect("count"), 1);
    }
    assert_eq!(count(&store, "schema_migrations"), schema::latest_version());
    let mode: String = store
        .with_conn(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

/// The database file holds password hashes: only its owner may read it.
#[cfg(unix)]
#[test]
fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = temp_store();
    let mode = std::fs::metadata(store.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Everything sent before `close()` is committed, more than one batch's worth, and counted.
#[test]
fn close_flushes_every_message() {
    let (_dir, store) = temp_store();
    let n = 1_234;
    let messages = (0..n)
        .map(|i| telemetry("esp32-1", 1_000 + i, None, 20.0))
        .collect();
    let metrics = write_all(&store, messages);
    assert_eq!(count(&store, "telemetry"), n);
    assert_eq!(metrics.store_committed.get(), 1_234);
    assert_eq!(metrics.store_duplicates.get(), 0);
}

/// Typed columns are filled from the decoded message; the payload comes back as sent.
#[test]
fn telemetry_round_trips() {
    let (_dir, store) = temp_store();
    write_all(&store, vec![telemetry("esp32-1", 5_000, Some(7), 23.5)]);
    let rows = store.telemetry(&all(None)).expect("query");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].device, "esp32-1");
    assert_eq!(rows[0].ts_ms, 5_000);
    assert_eq!(
        rows[0].data,
        json!({"tmp": 23.5, "lf": 40.0, "locked": true, "seq": 7})
    );
    let typed: (f64, f64, bool, i64) = store
        .with_conn(|c| {
            Ok(
                c.query_row("SELECT tmp, lf, locked, seq FROM telemetry", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?,
            )
        })
        .expect("typed columns");
    assert_eq!(typed, (23.5, 40.0, true, 7));
}

/// A QoS 1 redelivery (same device, seq and payload) is stored once, within one batch and
/// across batches; a rebooted device reusing a seq with a new reading, another device's seq,
/// or a match older than the window are stored.
#[test]
fn duplicates_are_ignored_but_new_readings_kept() {
    let (_dir, store) = temp_store();
    let first = write_all(
        &store,
        vec![
            telemetry("a", 1_000, Some(1), 20.0),
            telemetry("a", 1_001, Some(1), 20.0),
            telemetry("a", 1_002, Some(1), 21.0),
            telemetry("b", 1_003, Some(1), 20.0),
            telemetry("a", 1_004, None, 20.0),
            telemetry("a", 1_005, None, 20.0),
        ],
    );
    assert_eq!(first.store_committed.get(), 5);
    assert_eq!(first.store_duplicates.get(), 1);
    let later = 1_000 + writer::DEDUP_WINDOW_MS + 1;
    let second = write_all(
        &store,
        vec![
            telemetry("a", 2_000, Some(1), 21.0),
            telemetry("a", later, Some(1), 20.0),
        ],
    );
    assert_eq!(second.store_duplicates.get(), 1);
    assert_eq!(second.store_committed.get(), 1);
    assert_eq!(count(&store, "telemetry"), 6);
}

/// Incidents and access events carrying `seq` in their payload are de-duplicated too.
#[test]
fn incident_and_access_duplicates_are_ignored() {
    let (_dir, store) = temp_store();
    let access = |ts_ms| Message {
        device: dev("a"),
        ts_ms,
        body: Body::Access(AccessEvent {
            access_id: "04A1B2C3".into(),
            granted: true,
            payload: object(json!({"access_id": "04A1B2C3", "granted": true, "seq": 9})),
        }),
    };
    let metrics = write_all(
        &store,
        vec![
            incident("a", 1_000, "unauthorized_access", Some(3)),
            incident("a", 1_001, "unauthorized_access", Some(3)),
            access(1_002),
            access(1_003),
        ],
    );
    assert_eq!(metrics.store_duplicates.get(), 2);
    assert_eq!(count(&store, "incidents"), 1);
    let log = store
        .access_events(&all(None), Some("04A1B2C3"))
        .expect("access log");
    assert_eq!(log.len(), 1);
    assert!(log[0].granted);
}

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
            .map(|r| (r.device, r.kind))
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
    for (device, kind) in [(None, None), (Some("a"), None), (None, Some("overheat"))] {
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

/// Regression: the duplicate check must look rows up by `(device, seq)`; with the
/// `(device, ts_ms)` index it scanned ten minutes of rows per message (335 rows/s).
#[test]
fn duplicate_checks_use_the_seq_index() {
    let (_dir, store) = temp_store();
    for sql in [
        writer::DUPLICATE_TELEMETRY,
        writer::DUPLICATE_INCIDENT,
        writer::DUPLICATE_ACCESS,
    ] {
        let plan: Vec<String> = store
            .with_conn(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map(("a", 1, 0, "{}"), |r| r.get(3))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .expect("plan");
        let plan = plan.join(" | ");
        assert!(plan.contains("_device_seq (device=? AND seq=?)"), "{plan}");
    }
}

/// Status messages set online/offline; `since_ms` moves only on a change; every message bumps
/// `last_seen_ms`.
#[test]
fn device_status_tracks_state_and_last_seen() {
    let (_dir, store) = temp_store();
    write_all(
        &store,
        vec![
            status("a", 100, Status::Online),
            telemetry("a", 150, None, 20.0),
            status("a", 200, Status::Online),
            telemetry("b", 300, None, 20.0),
        ],
    );
    let rows = store.device_statuses().expect("statuses");
    assert_eq!(
        (rows[0].online, rows[0].since_ms, rows[0].last_seen_ms),
        (true, 100, 200)
    );
    write_all(&store, vec![status("a", 400, Status::Offline)]);
    let rows = store.device_statuses().expect("statuses");
    let expect = |device: &str, online, since_ms, last_seen_ms| DeviceStatusRow {
        device: device.into(),
        online,
        since_ms,
        last_seen_ms,
    };
    assert_eq!(
        rows,
        [expect("a", false, 400, 400), expect("b", true, 300, 300)]
    );
}

/// Creating a taken user or device name is `Exists`; updates and removals report a miss.
#[test]
fn accounts_crud_and_exists() {
    let (_dir, store) = temp_store();
    store.create_user("admin", "h1").expect("create");
    assert!(matches!(store.create_user("admin", "h2"), Err(StoreError::Exists(n)) if n == "admin"));
    assert!(store.set_user_password("admin", "h3").expect("passwd"));
    assert!(!store.set_user_password("ghost", "h3").expect("passwd"));
    assert_eq!(
        store.user("admin").expect("get").map(|u| u.password_hash),
        Some("h3".into())
    );
    assert_eq!(store.users().expect("list").len(), 1);
    assert!(store.remove_user("admin").expect("remove"));
    assert!(!store.remove_user("admin").expect("remove"));
    assert_eq!(store.user_count().expect("count"), 0);

    store.create_device(&dev("esp32-1"), "s1").expect("create");
    assert!(matches!(
        store.create_device(&dev("esp32-1"), "s2"),
        Err(StoreError::Exists(_))
    ));
    assert!(store.set_device_secret("esp32-1", "s3").expect("rekey"));
    assert!(!store.set_device_secret("ghost", "s3").expect("rekey"));
    let d = store.device("esp32-1").expect("get").expect("exists");
    assert_eq!((d.secret_hash.as_str(), d.enabled), ("s3", true));
    write_all(&store, vec![telemetry("esp32-1", 1, None, 20.0)]);
    assert!(store.remove_device("esp32-1").expect("remove"));
    assert!(!store.remove_device("esp32-1").expect("remove"));
    assert!(store.devices().expect("list").is_empty());
    assert!(store.device_statuses().expect("statuses").is_empty());
    assert_eq!(
        store.telemetry(&all(None)).expect("history").len(),
        1,
        "history stays"
    );
}

/// A backup is a complete, readable database; an existing destination is never overwritten.
#[test]
fn backup_copies_and_refuses_existing_file() {
    let (dir, store) = temp_store();
    store.create_user("admin", "h").expect("user");
    write_all(&store, vec![telemetry("a", 1, None, 20.0)]);
    let dest = dir.path().join("backup.db");
    store.backup(&dest).expect("backup");
    let copy = Store::open(&dest).expect("open backup");
    assert_eq!(copy.user_count().expect("users"), 1);
    assert_eq!(copy.telemetry(&all(None)).expect("rows").len(), 1);
    assert!(matches!(store.backup(&dest), Err(StoreError::Exists(_))));
    assert_eq!(
        copy.user_count().expect("users"),
        1,
        "refused backup left the copy alone"
    );
}

/// Many batches of every kind leave a file that SQLite itself calls intact.
#[test]
fn integrity_check_after_writes() {
    let (_dir, store) = temp_store();
    let messages = (0..3_000)
        .map(|i| match i % 3 {
            0 => telemetry("a", i, Some(i), 20.0),
            1 => incident("b", i, "overheat", Some(i)),
            _ => status(
                "c",
                i,
                if i % 2 == 0 {
                    Status::Online
                } else {
                    Status::Offline
                },
            ),
        })
        .collect();
    write_all(&store, messages);
    let check: String = store
        .with_conn(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
        .expect("integrity check");
    assert_eq!(check, "ok");
    store.ping().expect("ping");
}

/// Writer throughput; run with
/// `cargo test --release --lib store::tests::writer_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn writer_throughput() {
    let (_dir, store) = temp_store();
    let n: i64 = 200_000;
    let messages: Vec<Message> = (0..n)
        .map(|i| telemetry(&format!("esp32-{}", i % 10), 1_000 + i, Some(i / 10), 23.5))
        .collect();
    let started = std::time::Instant::now();
    let metrics = write_all(&store, messages);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(metrics.store_committed.get(), 200_000);
    println!(
        "{n} telemetry rows in {secs:.2} s = {:.0} rows/s",
        n as f64 / secs
    );
}
