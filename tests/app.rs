//! `app::start` / `Running::shutdown` in-process: a clean stop commits every acknowledged
//! message and reports success; a restart on the same directory serves it.

use crate::util::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_commits_everything_acknowledged() {
    let mut app = TestApp::start_with(&[("RZMON_TOPIC_PREFIX", "rz")]).await;
    assert_eq!(app.running().parts.settings.topic_prefix, "rz");
    let d = app.device("esp32-1").await;
    for seq in 0..300 {
        d.publish("telemetry", json!({"tmp": 21.0, "seq": seq}).to_string())
            .await;
    }
    assert!(d.wait_pubacks(300).await);
    // A stage that overran its limit would make this an error.
    app.shutdown().await.expect("a clean stop reports success");
    assert_eq!(app.count("telemetry"), 300);
    assert!(d.wait_closed().await, "devices were disconnected");

    let mut app = app.restart().await;
    let token = app.login().await;
    assert!(app.wait_rows(&token, "esp32-1", 300).await);
    assert!(app.running().parts.health.is_ok());
    app.shutdown().await.expect("second stop");
}
