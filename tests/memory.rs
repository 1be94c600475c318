//! Memory stays flat: connect-publish-disconnect sessions (what a battery ESP32 does after
//! every deep sleep) leave the server's RSS where it was.

use crate::util::*;

/// Regression for "+35 MiB per 4,000 sessions": after a warm-up, 4,000
/// connect-publish-disconnect sessions leave the server's RSS within 2 MiB of where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_leave_rss_flat() {
    let app = TestApp::process().await;
    // 8 devices for 4 workers: worker w uses devices w and w + 4 only, so no session
    // takes over another one of the same device.
    let devices: Vec<(String, String)> = (0..8)
        .map(|i| {
            let id = format!("sleepy-{i}");
            let pw = app.add_device(&id);
            (id, pw)
        })
        .collect();
    sleepy::sessions(app.mqtt, &devices, 0, 1_000).await;
    let before = app.mem_kib("VmRSS");
    sleepy::sessions(app.mqtt, &devices, 1_000, 4_000).await;
    assert!(wait_until(SOON, || async { app.count("telemetry") == 5_000 }).await);
    let after = app.mem_kib("VmRSS");
    eprintln!("RSS after warm-up {before} KiB, after 4,000 more sessions {after} KiB");
    assert!(
        after <= before + 2 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
