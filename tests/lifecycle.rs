//! The data lifecycle against the real server and its real SQLite file: retention keeps the
//! rollups and shrinks the file, scheduled backups are verified and rotated, downloads refuse
//! paths, restore takes good files and refuses damaged ones, CSV exports quote and stream.

use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Writes `n` readings of `device` every `step_ms` from `start_ms` through the library's own
/// writer into the server's database file.
fn write_history(app: &TestApp, device: &str, start_ms: i64, n: i64, step_ms: i64) {
    let readings = (0..n)
        .map(|i| {
            let tmp = 18.0 + (i % 113) as f64 * 0.07;
            let lf = 35.0 + (i % 17) as f64;
            let locked = i % 4 != 0;
            let payload = json!({"tmp": tmp, "lf": lf, "locked": locked, "seq": i});
            (start_ms + i * step_ms, payload)
        })
        .collect();
    write_readings(&app.db_path(), device, readings);
}

/// Hourly (count, min, avg, max of tmp) from the raw rows, by the test's own SQL.
fn raw_hours(app: &TestApp, start_ms: i64, end_ms: i64) -> Vec<(i64, i64, f64, f64, f64)> {
    let db = app.db();
    let mut stmt = db
        .prepare(
            "SELECT ((id >> 10) / 3600000) * 3600000 AS h, count(*), min(tmp), avg(tmp), max(tmp)
             FROM telemetry WHERE (id >> 10) BETWEEN ?1 AND ?2 GROUP BY h ORDER BY h",
        )
        .unwrap();
    stmt.query_map((start_ms, end_ms), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The API's hourly summary as (bucket start, count, min, avg, max of tmp).
async fn api_hours(
    app: &TestApp,
    token: &str,
    start_ms: i64,
    end_ms: i64,
) -> Vec<(i64, i64, f64, f64, f64)> {
    let hours = (end_ms + 1 - start_ms) / HOUR_MS;
    let path = format!(
        "/data/summary?device=old-1&start_date={}&end_date={}&buckets={hours}",
        start_ms / 1000,
        end_ms / 1000
    );
    let (status, v) = app.get(&path, Some(token)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["bucket_ms"], HOUR_MS, "{v}");
    v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let ts = rzmon::api::params::parse_instant(
                b["timestamp"].as_str().unwrap(),
                rzmon::api::params::Bound::Start,
            )
            .unwrap();
            let t = &b["tmp"];
            (
                ts,
                b["count"].as_i64().unwrap(),
                t["min"].as_f64().unwrap(),
                t["avg"].as_f64().unwrap(),
                t["max"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn assert_hours_match(a: &[(i64, i64, f64, f64, f64)], b: &[(i64, i64, f64, f64, f64)]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.0, x.1, x.2, x.4), (y.0, y.1, y.2, y.4));
        assert!((x.3 - y.3).abs() < 1e-9, "{x:?} vs {y:?}");
    }
}

fn pragma(app: &TestApp, name: &str) -> i64 {
    app.db()
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// Raw rows older than the retention are gone after the pruning pass at start; the rollups
/// still answer the 30-day chart with what the raw rows said; the file shrinks.
#[tokio::test]
async fn retention_prunes_raw_rows_keeps_rollups_and_shrinks_the_file() {
    let app = TestApp::start_with(&[
        ("RZMON_RETENTION_DAYS", "30"),
        ("RZMON_PRUNE_EVERY", "3600"),
        ("RZMON_BACKUP_EVERY", "off"),
    ])
    .await;
    let passes = |app: &TestApp| app.running().parts.metrics.prune_passes.get();
    assert!(
        wait_until(SOON, || async { passes(&app) >= 1 }).await,
        "no first pass"
    );
    let now = rzmon::model::now_ms();
    let old_start = (now - 40 * DAY_MS) / HOUR_MS * HOUR_MS;
    let recent_start = (now - DAY_MS) / HOUR_MS * HOUR_MS;
    write_history(&app, "old-1", old_start, 40_000, 9_000); // ~4.2 days, 40 days ago
    write_history(&app, "old-1", recent_start, 2_000, 10_000);
    let token = app.login().await;
    let old_end = old_start + 5 * DAY_MS;
    let raw = raw_hours(&app, old_start, old_end - 1);
    assert!(raw.len() > 90, "{}", raw.len());
    let before = api_hours(&app, &token, old_start, old_end - 1).await;
    assert_hours_match(&before, &raw);
    let pages_before = pragma(&app, "page_count");
    assert_eq!(pragma(&app, "auto_vacuum"), 2, "incremental auto-vacuum");

    let app = app.restart().await; // the first pass runs at start
    let token = app.login().await;
    assert!(
        wait_until(SOON, || async { passes(&app) >= 1 }).await,
        "no pass after restart"
    );
    let path = format!("/data?device=old-1&end_date={}", (old_end / 1000));
    let (_, v) = app.get(&path, Some(&token)).await;
    assert_eq!(v["data"], json!([]), "old raw rows still there");
    let left: i64 = app
        .db()
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 2_000, "recent rows stay");
    let after = api_hours(&app, &token, old_start, old_end - 1).await;
    assert_hours_match(&after, &raw);
    let shrunk = wait_until(SOON, || async {
        pragma(&app, "freelist_count") == 0 && pragma(&app, "page_count") < pages_before
    })
    .await;
    assert!(
        shrunk,
        "pages {} → {}, free {}",
        pages_before,
        pragma(&app, "page_count"),
        pragma(&app, "freelist_count")
    );
}

/// Sends a raw HTTP GET (no client-side path normalisation) and returns the status code.
async fn raw_get(app: &TestApp, path: &str, token: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(app.http).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// Scheduled backups happen, are verified, rotate beyond KEEP; one on demand too; downloads
/// need a token and refuse anything that is not a backup's name.
#[tokio::test]
async fn scheduled_backups_rotate_and_download_safely() {
    let app = TestApp::start_with(&[("RZMON_BACKUP_EVERY", "1"), ("RZMON_BACKUP_KEEP", "2")]).await;
    let token = app.login().await;
    let d = app.device("bk-1").await;
    d.publish("telemetry", r#"{"tmp": 21.5, "seq": 1}"#).await;
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let rotated = wait_until(SOON, || async {
        let (status, v) = app.get("/backups", Some(&token)).await;
        assert_eq!(status, 200, "{v}");
        let list = v["backups"].as_array().unwrap().clone();
        assert!(list.len() <= 2, "more than KEEP backups: {v}");
        let mut seen = seen.lock().unwrap();
        for b in &list {
            assert_eq!(b["verified"], true, "{b}");
            assert!(b["size"].as_u64().unwrap() > 0);
            seen.insert(b["name"].as_str().unwrap().to_owned());
        }
        seen.len() >= 3
    })
    .await;
    assert!(rotated, "saw {seen:?}: {}", app.stderr());

    let (status, v) = app.post("/backups", Some(&token), json!({})).await;
    assert!(status == 201 || status == 409, "{status} {v}");
    let (_, v) = app.get("/backups", Some(&token)).await;
    let name = v["backups"][0]["name"].as_str().unwrap().to_owned();

    let res = app
        .client
        .get(app.url(&format!("/backups/{name}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let copy = app.dir.path().join("downloaded.db");
    std::fs::write(&copy, &bytes).unwrap();
    let check = rzmon::store::check_backup(&copy).expect("downloaded backup is sound");
    assert_eq!(check.rows["devices"], 1);

    let (status, _) = app.get(&format!("/backups/{name}"), None).await;
    assert_eq!(status, 401);
    for bad in [
        "/backups/../rzmon.db",
        "/backups/..%2Frzmon.db",
        "/backups/%2e%2e%2frzmon.db",
        "/backups/..%2f..%2fetc%2fpasswd",
        "/backups/rzmon.db",
    ] {
        assert_eq!(raw_get(&app, bad, &token).await, 404, "{bad}");
    }
}

/// Restore: refused while the server runs; a damaged file is refused and the database stays
/// byte for byte; a good backup replaces the database, the old one is kept aside.
#[tokio::test]
async fn restore_takes_good_backups_and_refuses_damaged_ones() {
    let mut app = TestApp::process_with(&[("RZMON_BACKUP_EVERY", "off")]).await;
    let token = app.login().await;
    let d = app.device("rs-1").await;
    for i in 0..5 {
        d.publish("telemetry", format!(r#"{{"tmp": 20.{i}, "seq": {i}}}"#))
            .await;
    }
    assert!(app.wait_rows(&token, "rs-1", 5).await);
    let (status, v) = app.post("/backups", Some(&token), json!({})).await;
    assert_eq!(status, 201, "{v}");
    let name = v["backup"]["name"].as_str().unwrap().to_owned();
    let backup = app.dir.path().join("backups").join(&name);
    for i in 5..8 {
        d.publish("telemetry", format!(r#"{{"tmp": 21.{i}, "seq": {i}}}"#))
            .await;
    }
    assert!(app.wait_rows(&token, "rs-1", 8).await);

    let out = app.cli(&["restore", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running"), "{err}");
    drop(d);
    app.sigterm();

    let damaged = app.dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&backup).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0x5a);
    std::fs::write(&damaged, &bytes).unwrap();
    let db_before = std::fs::read(app.db_path()).unwrap();
    let out = app.cli(&["restore", damaged.to_str().unwrap()]);
    assert!(!out.status.success(), "damaged file restored");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        std::fs::read(app.db_path()).unwrap() == db_before,
        "database changed"
    );

    let out = app.cli(&["restore", backup.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = v["kept_aside"].as_str().unwrap();
    assert!(aside.contains("rzmon.db.before-restore-"), "{v}");
    assert!(std::path::Path::new(aside).exists());

    let app = app.restart().await;
    let token = app.login().await;
    let (_, v) = app.get("/data?device=rs-1", Some(&token)).await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        5,
        "the backup's rows: {v}"
    );
}

/// The CSV export: header, CRLF, RFC 4180 quoting of commas, quotes and newlines, the `/data`
/// filters, authentication.
#[tokio::test]
async fn csv_exports_quote_filter_and_need_a_token() {
    let app = TestApp::start_with(&[("RZMON_BACKUP_EVERY", "off")]).await;
    let token = app.login().await;
    let a = app.device("csv-a").await;
    let b = app.device("csv-b").await;
    a.publish(
        "telemetry",
        r#"{"tmp": 22.5, "lf": 40, "locked": true, "seq": 1, "note": "x,\"y\"\nz"}"#,
    )
    .await;
    b.publish("telemetry", r#"{"tmp": 19.25, "seq": 1}"#).await;
    a.publish(
        "incident",
        r#"{"type": "door", "message": "forced, \"hard\"\nagain"}"#,
    )
    .await;
    assert!(app.wait_rows(&token, "csv-a", 1).await && app.wait_rows(&token, "csv-b", 1).await);
    let incident = wait_until(SOON, || async {
        let (_, v) = app.get("/incidents", Some(&token)).await;
        v["incidents"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert!(incident);

    let get = |path: String| {
        let req = app.client.get(app.url(&path)).bearer_auth(&token);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/csv")
            );
            res.text().await.unwrap()
        }
    };
    let all = get("/data.csv".into()).await;
    assert!(
        all.starts_with("timestamp,device,tmp,lf,locked,seq,other\r\n"),
        "{all}"
    );
    assert!(all.ends_with("\r\n"));
    let mut r = csv::Reader::from_reader(all.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let row_a = rows.iter().find(|r| &r[1] == "csv-a").unwrap();
    assert_eq!(
        (&row_a[2], &row_a[3], &row_a[4], &row_a[5]),
        ("22.5", "40", "true", "1")
    );
    let other: Value = serde_json::from_str(&row_a[6]).unwrap();
    assert_eq!(other, json!({"note": "x,\"y\"\nz"}));
    assert!(row_a[0].ends_with('Z'));

    let only_b = get("/data.csv?device=csv-b".into()).await;
    assert_eq!(only_b.lines().count(), 2, "{only_b}");
    assert!(only_b.contains(",csv-b,19.25,"));
    let none = get("/data.csv?end_date=2000-01-01".into()).await;
    assert_eq!(none, "timestamp,device,tmp,lf,locked,seq,other\r\n");

    let inc = get("/incidents.csv?type=door".into()).await;
    let mut r = csv::Reader::from_reader(inc.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][3], "forced, \"hard\"\nagain");
    assert!(inc.contains("\"forced, \"\"hard\"\"\nagain\""), "{inc}");

    let res = app.client.get(app.url("/data.csv")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let (status, v) = app.get("/data.csv?start_date=nonsense", Some(&token)).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("start_date"));

    let out = app.cli(&["export", "--device", "csv-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("timestamp,device,"));
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count(),
        1
    );
}

/// A 300,000-row export (≈ 20 MB of CSV) streams: the server's memory stays within a few MiB
/// while the client reads it chunk by chunk.
#[tokio::test]
async fn large_csv_export_streams_in_bounded_memory() {
    let app = TestApp::process_with(&[("RZMON_BACKUP_EVERY", "off")]).await;
    let token = app.login().await;
    let n = 300_000;
    write_history(
        &app,
        "big-1",
        rzmon::model::now_ms() - 10 * DAY_MS,
        n,
        2_000,
    );
    let mut res = app
        .client
        .get(app.url("/data.csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let start = app.mem_kib("VmRSS");
    let (mut bytes, mut lines, mut peak) = (0usize, 0usize, start);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), res.chunk())
        .await
        .expect("export stalled")
        .unwrap()
    {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        peak = peak.max(app.mem_kib("VmRSS"));
    }
    assert_eq!(lines, n as usize + 1);
    assert!(bytes > 15_000_000, "{bytes}");
    let growth_mib = (peak.saturating_sub(start)) / 1024;
    assert!(
        growth_mib < 12,
        "memory grew {growth_mib} MiB for a {} MB export",
        bytes / 1_000_000
    );
}

/// A backup that cannot be written answers 500, fails the `backup` check of `/health` with the
/// reason (for a logged-in user) and raises the default "rzmon health" system alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_degrades_health_and_raises_an_alert() {
    let app = TestApp::start_with(&[("RZMON_BACKUP_EVERY", "off")]).await;
    let token = app.login().await;
    // A plain file where the backups directory belongs: no backup can be written.
    std::fs::write(app.db_path().with_file_name("backups"), b"not a directory").unwrap();
    let (status, v) = app.post("/backups", Some(&token), json!({})).await;
    assert_eq!(status, 500, "{v}");
    let (status, h) = app.get("/health", Some(&token)).await;
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["checks"]["backup"], "error", "{h}");
    assert!(
        h["details"]["backup"]
            .as_str()
            .is_some_and(|r| r.contains("backup failed")),
        "{h}"
    );
    let alerted = wait_until(Duration::from_secs(30), || async {
        let (_, v) = app.get("/alerts", Some(&token)).await;
        v["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("the backup check failed"))
            })
        })
    })
    .await;
    assert!(alerted, "no system alert for the failed backup");
}
