//! Gaps left by the other files: MQTT login lockout per IP, device re-key, online backup.

use crate::util::*;
use serde_json::{Value, json};

/// After 10 failed MQTT logins from one IP the next CONNACK is NotAuthorized, even with the right password.
#[tokio::test]
async fn mqtt_login_lockout_per_ip() {
    let app = TestApp::start().await;
    let pw = app.add_device("lock-1");
    for _ in 0..10 {
        let d = Device::connect(app.mqtt, "lock-1", Some(("lock-1", "wrong"))).await;
        let r = d.wait_connack().await;
        assert!(r.is_err(), "wrong password accepted");
    }
    let d = Device::connect(app.mqtt, "lock-1", Some(("lock-1", &pw))).await;
    let r = d.wait_connack().await;
    assert!(matches!(&r, Err(e) if e.contains("NotAuthorized")), "{r:?}");
}

/// `device passwd` re-keys a device: the live session is closed, the old password refused, the new one accepted.
#[tokio::test]
async fn device_passwd_rekeys_and_closes_session() {
    let app = TestApp::start().await;
    let d = app.device("rekey-1").await;
    let out = app.cli(&["device", "passwd", "rekey-1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("passwd --json");
    let new = v["password"].as_str().unwrap().to_owned();
    assert_ne!(new, d.password);
    assert!(
        d.wait_closed().await,
        "live session not closed after re-key"
    );
    let old = Device::connect(app.mqtt, "rekey-1", Some(("rekey-1", &d.password))).await;
    assert!(old.wait_connack().await.is_err());
    let ok = Device::connect(app.mqtt, "rekey-1", Some(("rekey-1", &new))).await;
    ok.wait_connack().await.expect("new password works");
}

/// `rzmon backup FILE` while the server runs writes a consistent copy that holds the stored rows.
#[tokio::test]
async fn backup_while_running() {
    let app = TestApp::start().await;
    let token = app.login().await;
    let d = app.device("bk-1").await;
    for i in 0..20 {
        d.publish(
            "telemetry",
            json!({"tmp": 21, "lf": 30, "locked": true, "seq": i}).to_string(),
        )
        .await;
    }
    assert!(d.wait_pubacks(20).await);
    assert!(app.wait_rows(&token, "bk-1", 20).await);
    let file = app.dir.path().join("backup.db");
    let out = app.cli(&["backup", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = rusqlite::Connection::open(&file).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let live = app.db();
    let tables: Vec<String> = live
        .prepare("SELECT name FROM sqlite_master WHERE type='table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in tables.iter().filter(|t| !t.starts_with("sqlite_")) {
        let n: i64 = db
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, app.count(&format!("\"{t}\"")), "table {t}");
    }
}
