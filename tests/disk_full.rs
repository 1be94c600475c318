//! A full disk: the data directory on a 4 MiB tmpfs this test mounts (we run as root; without
//! permission to mount, the test says so and skips). Nothing that could not be stored is
//! acknowledged, `/health` says why, freed space lets the held and the re-sent messages in, and
//! SIGTERM still ends the process in time.

use crate::acked::assert_acked_stored_once;
use crate::util::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_owned()))
    }

    /// Writes a file until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // The last partial chunk may leave a few bytes; fill them too.
        while f.write_all(&[0u8; 512]).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A device that keeps every unacknowledged message and, after reconnecting (to the same
/// address) to a server that lost the session, publishes them again, as ESP32 firmware with
/// an outbox does. (rumqttc itself drops them when the CONNACK says "no session".)
struct Persistent {
    client: AsyncClient,
    state: Arc<Mutex<Sent>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the device sent and what came back.
#[derive(Default)]
struct Sent {
    /// Every seq published, in order.
    published: Vec<i64>,
    acked: Vec<i64>,
    /// Seqs queued in rumqttc, not yet on the wire (then they get a packet id).
    queued: VecDeque<i64>,
    by_pkid: HashMap<u16, i64>,
}

fn payload(seq: i64) -> String {
    format!(r#"{{"tmp":21.5,"seq":{seq}}}"#)
}

const TOPIC: &str = "rz/esp32-1/telemetry";

impl Persistent {
    fn connect(mqtt: std::net::SocketAddr, id: &str, password: &str) -> Self {
        let mut opts = MqttOptions::new(id, mqtt.ip().to_string(), mqtt.port());
        opts.set_credentials(id, password)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let state = Arc::new(Mutex::new(Sent::default()));
        let (st, again) = (state.clone(), client.clone());
        let task = tokio::spawn(async move {
            let mut connected_before = false;
            loop {
                let event = eventloop.poll().await;
                let mut s = st.lock().unwrap();
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if connected_before {
                            s.by_pkid.clear();
                            let acked: std::collections::HashSet<i64> =
                                s.acked.iter().copied().collect();
                            let resend: Vec<i64> = s
                                .published
                                .iter()
                                .copied()
                                .filter(|q| !acked.contains(q))
                                .collect();
                            s.queued = resend.iter().copied().collect();
                            for seq in resend {
                                again
                                    .try_publish(TOPIC, QoS::AtLeastOnce, false, payload(seq))
                                    .unwrap();
                            }
                        }
                        connected_before = true;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(seq) = s.queued.pop_front() {
                            s.by_pkid.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = s.by_pkid.remove(&ack.pkid) {
                            s.acked.push(seq);
                        }
                    }
                    Ok(_) => {}
                    // The server is away: rumqttc reconnects on the next poll.
                    Err(_) => {
                        drop(s);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Self {
            client,
            state,
            task,
        }
    }

    async fn publish(&self, seqs: std::ops::Range<i64>) {
        for seq in seqs {
            {
                let mut s = self.state.lock().unwrap();
                s.published.push(seq);
                s.queued.push_back(seq);
            }
            self.client
                .publish(TOPIC, QoS::AtLeastOnce, false, payload(seq))
                .await
                .unwrap();
        }
    }

    fn acked(&self) -> Vec<i64> {
        self.state.lock().unwrap().acked.clone()
    }

    async fn wait_acked(&self, n: usize) -> bool {
        wait_until(SOON, || async { self.acked().len() >= n }).await
    }
}

impl Drop for Persistent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn degraded(app: &TestApp) -> bool {
    wait_until(SOON, || async { app.get("/health", None).await.0 == 503 }).await
}

/// Regression for "8,577 PUBACKs while nothing could be written, /health ok, SIGTERM hung":
/// while the disk is full no message is acknowledged and `/health` is degraded with the
/// reason; freeing space lets every held message in; SIGTERM on a full disk ends the process
/// within 10 s, and after a restart the device's re-sent messages are stored; every
/// acknowledged message is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_means_no_acknowledgement_and_degraded_health() {
    let mount_point = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(mount_point.path(), "4m") else {
        eprintln!("SKIPPED full_disk test: cannot mount a tmpfs here (needs root)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mqtt_addr = format!("127.0.0.1:{port}");
    let data = mount_point.path().to_str().unwrap();
    let mut app =
        TestApp::process_with(&[("RZMON_DATA_DIR", data), ("RZMON_MQTT_ADDR", &mqtt_addr)]).await;
    let token = app.login().await;
    let out = Command::new(BIN)
        .args(["device", "add", "esp32-1", "--json"])
        .env_clear()
        .env("RZMON_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let password = added["password"].as_str().unwrap().to_owned();
    let device = Persistent::connect(app.mqtt, "esp32-1", &password);
    device.publish(0..50).await;
    assert!(
        device.wait_acked(50).await,
        "acknowledged while there is space"
    );

    fs.fill();
    device.publish(50..250).await;
    let ok = degraded(&app).await;
    assert!(ok, "/health stayed ok on a full disk");
    let (_, body) = app.get("/health", Some(&token)).await;
    assert_eq!(body["checks"]["database"], "error", "{body}");
    let reason = body["details"]["database"].as_str().unwrap_or_default();
    assert!(reason.contains("full"), "{body}");
    let while_full = device.acked().len();
    for _ in 0..20 {
        assert_eq!(app.get("/health", None).await.0, 503);
    }
    assert_eq!(
        device.acked().len(),
        while_full,
        "acknowledged on a full disk"
    );
    assert!(
        while_full < 250,
        "everything was acknowledged on a full disk"
    );

    fs.free();
    assert!(
        device.wait_acked(250).await,
        "held messages stored after freeing space"
    );
    assert!(
        wait_until(SOON, || async { app.get("/health", None).await.0 == 200 }).await,
        "/health recovers"
    );

    fs.fill();
    device.publish(250..350).await;
    assert!(degraded(&app).await);
    let started = Instant::now();
    let _ = app.sigterm();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    fs.free();
    let app = app.restart().await;
    assert!(
        device.wait_acked(350).await,
        "re-sent messages stored after the restart ({} acknowledged)",
        device.acked().len()
    );
    let db = rusqlite::Connection::open_with_flags(
        Path::new(data).join("rzmon.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    assert_acked_stored_once(&db, &device.acked());
    drop(app);
    drop(db);
}
