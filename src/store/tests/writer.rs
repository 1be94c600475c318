//! The batching writer: flushing on close, duplicate handling, device status, retries on a
//! locked database, throughput.

use super::*;
use crate::model::{AccessEvent, AccessId};
use rusqlite::Connection;
use std::time::Duration;

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
    assert_eq!(rows[0].device.as_str(), "esp32-1");
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
    let later = 1_000 + crate::store::writer::DEDUP_WINDOW_MS + 1;
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
            access_id: AccessId::parse("04A1B2C3").expect("access id"),
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

/// Regression: the duplicate check must look rows up by `(device, seq)`; with the
/// `(device, ts_ms)` index it scanned ten minutes of rows per message (335 rows/s).
#[test]
fn duplicate_checks_use_the_seq_index() {
    let (_dir, store) = temp_store();
    let plan: Vec<String> = store
        .with_conn(|c| {
            let sql = crate::store::telemetry::DUPLICATE_TELEMETRY;
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let none: Option<f64> = None;
            let rows = stmt.query_map((1, 1, 0, none, none, none, none), |r| r.get(3))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .expect("plan");
    let plan = plan.join(" | ");
    assert!(
        plan.contains("_device_seq (device_key=? AND seq=?"),
        "{plan}"
    );
    for sql in [
        crate::store::writer::DUPLICATE_INCIDENT,
        crate::store::writer::DUPLICATE_ACCESS,
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
        device: dev(device),
        online,
        since_ms,
        last_seen_ms,
    };
    assert_eq!(
        rows,
        [expect("a", false, 400, 400), expect("b", true, 300, 300)]
    );
}

/// A commit that fails (another connection holds the write lock beyond the busy timeout) is
/// retried until it succeeds: nothing is dropped, nothing panics, and readers keep reading.
#[test]
fn failed_commits_are_retried_not_dropped() {
    let (_dir, store) = temp_store();
    let blocker = Connection::open(store.path()).expect("second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let metrics = Arc::new(Metrics::default());
    let writer = store
        .spawn_writer(metrics.clone(), Default::default())
        .expect("writer");
    writer
        .sender()
        .blocking_send(telemetry("a", 1, None, 20.0), None)
        .expect("send");
    std::thread::sleep(BUSY_TIMEOUT + Duration::from_millis(500));
    assert_eq!(metrics.store_committed.get(), 0, "first attempt timed out");
    let started = std::time::Instant::now();
    assert!(store.telemetry(&all(None)).expect("read").is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "WAL: a write lock never blocks readers"
    );
    blocker.execute_batch("COMMIT").expect("release the lock");
    writer.close().expect("close");
    assert_eq!(metrics.store_committed.get(), 1);
    assert_eq!(count(&store, "telemetry"), 1);
}

/// Writer throughput; run with
/// `cargo test --release --lib store::tests::writer::writer_throughput -- --ignored --nocapture`.
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
