//! Tests of the store against real database files in a temp dir: migrations, accounts, backup
//! and file integrity here; the writer and the queries in their own files. Shared fixtures
//! build messages as ingest would.

mod prune;
mod queries;
mod rollups;
mod writer;

use super::*;
use crate::model::{Body, Incident, Message, Status, Telemetry};
use serde_json::{Map, Value, json};

pub(super) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("rzmon.db")).expect("open store");
    (dir, store)
}

pub(super) fn dev(id: &str) -> DeviceId {
    DeviceId::parse(id).expect("valid device id")
}

pub(super) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

pub(super) fn telemetry(device: &str, ts_ms: i64, seq: Option<i64>, tmp: f64) -> Message {
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

pub(super) fn incident(device: &str, ts_ms: i64, kind: &str, seq: Option<i64>) -> Message {
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

pub(super) fn status(device: &str, ts_ms: i64, s: Status) -> Message {
    Message {
        device: dev(device),
        ts_ms,
        body: Body::Status(s),
    }
}

/// Runs a writer over `messages` and closes it; returns the metrics it updated.
pub(super) fn write_all(store: &Store, messages: Vec<Message>) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    let writer = store
        .spawn_writer(metrics.clone(), Default::default())
        .expect("writer");
    let tx = writer.sender();
    for m in messages {
        tx.blocking_send(m, None).expect("writer accepts");
    }
    drop(tx);
    writer.close().expect("close flushes");
    metrics
}

pub(super) fn all(device: Option<&str>) -> RangeQuery {
    RangeQuery {
        limit: 100_000,
        device: device.map(dev),
        ..RangeQuery::default()
    }
}

pub(super) fn count(store: &Store, table: &str) -> i64 {
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
    assert!(matches!(
        store.remove_user("admin"),
        Err(StoreError::LastAdmin(_))
    ));
    store
        .create_user_as("eve", "h", Role::Viewer)
        .expect("viewer");
    assert!(matches!(
        store.remove_user("admin"),
        Err(StoreError::LastAdmin(_))
    ));
    assert!(matches!(
        store.set_user_role("admin", Role::Viewer),
        Err(StoreError::LastAdmin(_))
    ));
    assert!(store.set_user_role("eve", Role::Admin).expect("promote"));
    assert!(store.set_user_role("admin", Role::Viewer).expect("demote"));
    assert_eq!(
        store.user("admin").expect("get").map(|u| u.role),
        Some(Role::Viewer)
    );
    assert!(!store.set_user_role("ghost", Role::Viewer).expect("role"));
    assert!(store.remove_user("admin").expect("remove"));
    assert!(!store.remove_user("admin").expect("remove"));
    assert_eq!(store.user_count().expect("count"), 1);

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

/// An interrupted backup (shutdown) ends early with an error and leaves no file behind.
#[test]
fn interrupted_backup_leaves_nothing() {
    let (dir, store) = temp_store();
    // ~40 MiB of rows, so the copy takes long enough to be caught running.
    store
        .with_conn(|c| {
            c.execute_batch(
                "CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
                 INSERT INTO filler SELECT randomblob(1000) FROM n;",
            )?;
            Ok(())
        })
        .expect("filler");
    let dest = dir.path().join("backup.db");
    let (tx, rx) = std::sync::mpsc::channel();
    let copier = {
        let (store, dest) = (store.clone(), dest.clone());
        std::thread::spawn(move || {
            store.backup_interruptible(&dest, |h| tx.send(h).expect("handle"))
        })
    };
    let handle = rx.recv().expect("the copy started");
    // The statement may not run yet when the handle arrives: interrupt until it ended.
    while !copier.is_finished() {
        handle.interrupt();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let result = copier.join().expect("copier");
    assert!(result.is_err(), "the copy was not interrupted");
    assert!(!dest.exists(), "an interrupted backup left a file");
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
