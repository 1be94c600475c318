//! Crash and shutdown: nothing committed is lost; graceful stop flushes; bad settings stop
//! startup clearly.

use crate::util::*;
use serde_json::json;

/// kill -9 after data is visible, then restart: everything is still there and the file is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_committed() {
    let mut app = TestApp::process().await;
    let token = app.login().await;
    let d = app.device("esp32-1").await;
    for seq in 0..500 {
        d.publish("telemetry", json!({"tmp": 21.0, "seq": seq}).to_string())
            .await;
    }
    assert!(app.wait_rows(&token, "esp32-1", 500).await);
    drop(d);
    app.kill9();
    let app = app.restart().await;
    let token = app.login().await;
    let (_, body) = app.get("/data?limit=10000", Some(&token)).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 500);
    let ok: String = app
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// SIGTERM right after the last PUBACK: exit 0 and every acknowledged message is in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes() {
    let mut app = TestApp::process().await;
    let d = app.device("esp32-1").await;
    for seq in 0..300 {
        d.publish("telemetry", json!({"tmp": 21.0, "seq": seq}).to_string())
            .await;
    }
    assert!(d.wait_pubacks(300).await);
    let status = app.sigterm();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        app.stderr()
    );
    assert_eq!(app.count("telemetry"), 300);
    assert!(app.stderr().contains("stopped cleanly"));
}

/// A bad setting or a port in use stops startup with a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_stop_startup_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env_clear()
            .env("RZMON_DATA_DIR", dir.path())
            .env("RZMON_ADMIN_PASSWORD", ADMIN_PASSWORD);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    for (var, value) in [
        ("RZMON_HTTP_ADDR", "nonsense"),
        ("RZMON_JWT_SECRET", "too-short"),
        ("RZMON_MQTT_MAX_PACKET", "-5"),
        ("RZMON_ALLOWED_ORIGINS", "*"),
    ] {
        let out = run(&[(var, value), ("RZMON_MQTT_ADDR", "127.0.0.1:0")]);
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var)
                || err.contains(
                    &var.trim_start_matches("RZMON_")
                        .to_lowercase()
                        .replace('_', "-")
                ),
            "{var}: {err}"
        );
    }
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = run(&[
        ("RZMON_HTTP_ADDR", &addr),
        ("RZMON_MQTT_ADDR", "127.0.0.1:0"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&addr) && err.contains("RZMON_HTTP_ADDR"),
        "{err}"
    );
}
