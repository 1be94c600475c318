//! A damaged database is never made worse: at start it stops startup with a sentence naming the
//! file (the file keeps its exact bytes); while running, damage makes `/health` degraded; a
//! clean stop leaves everything in `rzmon.db` itself.

use crate::util::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A stopped server's data directory whose database holds 5,000 telemetry rows (about 1 MiB).
async fn used_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let mut app = TestApp::process().await;
    assert!(app.sigterm().success());
    let path = app.db_path();
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Recent readings (older ones would be pruned by the retention pass at start).
    let start_ms = rzmon::model::now_ms() - 3_600_000;
    conn.execute_batch(&format!(
        "INSERT INTO device_keys (name) VALUES ('esp32-1');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO telemetry (id, device_key, seq, tmp, lf, locked, extra)
         SELECT ({start_ms} + i) << 10, 1, i, 21.5, 40.0, 1, '{{\"pad\":\"' || hex(randomblob(60)) || '\"}}' FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
    drop(conn);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rzmon.db");
    std::fs::copy(&path, &db).unwrap();
    (dir, db)
}

/// Runs `rzmon` on `dir` and returns (exit success, stderr); fails the test if it keeps running.
fn serve(dir: &Path) -> (bool, String) {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("RZMON_DATA_DIR", dir)
        .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
        .env("RZMON_MQTT_ADDR", "127.0.0.1:0")
        .env("RZMON_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + SOON;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rzmon started on a damaged database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

/// Garbage in the middle, a truncated file, a zero-byte file beside an existing JWT secret and
/// a file from a newer schema each stop startup (exit ≠ 0) with a sentence naming the file and
/// what to do; the file's bytes are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_database_stops_startup_and_stays_untouched() {
    let (dir, db) = used_data_dir().await;
    let good = std::fs::read(&db).unwrap();
    let mid = good.len() / 2 / 4096 * 4096;
    let mut garbage = good.clone();
    garbage[mid..mid + 4096].fill(0x5A);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage in the middle", garbage, "restore a backup"),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "restore a backup",
        ),
        ("zero bytes beside a jwt_secret", vec![], "jwt_secret"),
        (
            "not SQLite at all",
            b"PK\x03\x04 this is a zip file".to_vec(),
            "not an SQLite database",
        ),
    ];
    for (case, bytes, says) in cases {
        std::fs::write(&db, &bytes).unwrap();
        let secret = dir.path().join("jwt_secret");
        if bytes.is_empty() {
            std::fs::write(&secret, [7u8; 32]).unwrap();
        }
        let before = sha256(&db);
        let (ok, err) = serve(dir.path());
        assert!(!ok, "{case}: rzmon started");
        assert!(err.contains(&db.display().to_string()), "{case}: {err}");
        assert!(
            err.to_lowercase().contains(&says.to_lowercase()),
            "{case}: {err}"
        );
        assert_eq!(sha256(&db), before, "{case}: the file was changed");
        let _ = std::fs::remove_file(&secret);
    }

    std::fs::write(&db, &good).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO schema_migrations VALUES (999, 0); PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let before = sha256(&db);
    let (ok, err) = serve(dir.path());
    assert!(!ok, "a newer schema was accepted");
    assert!(err.contains("newer rzmon") && err.contains("999"), "{err}");
    assert_eq!(sha256(&db), before);
}

/// After SIGTERM `rzmon.db` alone (copied without its -wal) holds every acknowledged row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_the_main_file_alone_is_complete() {
    let mut app = TestApp::process().await;
    let d = app.device("esp32-1").await;
    for seq in 0..3000 {
        d.publish("telemetry", json!({"tmp": 21.0, "seq": seq}).to_string())
            .await;
    }
    assert!(d.wait_pubacks(3000).await);
    drop(d);
    assert!(app.sigterm().success(), "{}", app.stderr());
    let copy = tempfile::tempdir().unwrap();
    let alone = copy.path().join("rzmon.db");
    std::fs::copy(app.db_path(), &alone).unwrap();
    let conn = rusqlite::Connection::open(&alone).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3000, "rows missing from the main file");
    let wal = app.dir.path().join("rzmon.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the WAL still holds data"
    );
}

/// Damage found while running (a read of an overwritten page) makes `/health` degraded, with
/// the reason for a logged-in user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_found_while_running_degrades_health() {
    let (dir, db) = used_data_dir().await;
    let app = TestApp::process_with(&[("RZMON_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let token = app.login().await;
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    // Overwrite the second half (the telemetry pages no reader has cached yet).
    let from = len / 2 / 4096 * 4096;
    bytes[from..].fill(0x33);
    std::fs::write(&db, &bytes).unwrap();
    let degraded = wait_until(SOON, || async {
        let _ = app.get("/data?limit=10000", Some(&token)).await;
        app.get("/health", None).await.0 == 503
    })
    .await;
    assert!(degraded, "/health stayed ok on a damaged file");
    let (_, body) = app.get("/health", Some(&token)).await;
    assert_eq!(body["checks"]["integrity"], "error", "{body}");
    assert!(
        body["details"]["integrity"]
            .as_str()
            .is_some_and(|r| r.contains("restore")),
        "{body}"
    );
}
