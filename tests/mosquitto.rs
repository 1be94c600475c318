//! Debian's `mosquitto`, started by the tests on a free loopback port with a generated config
//! (the other side of the Home Assistant bridge, the upstream bridge and the external-broker
//! mode), optionally with a second, TLS listener whose certificate a CA made here (rzmon's own
//! generator) signed, and a watching MQTT client that records what arrives.

#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{SOON, wait_until};

const BIN: &str = "/usr/sbin/mosquitto";

/// A running mosquitto; killed on drop.
pub struct Mosquitto {
    pub port: u16,
    /// The TLS listener (`start_tls`), certificate for 127.0.0.1 signed by `ca_file()`.
    pub tls_port: Option<u16>,
    ca: Option<std::path::PathBuf>,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Mosquitto {
    /// Anonymous clients allowed, persistence in its temp dir; `extra` is appended to the
    /// config (e.g. `password_file` / `acl_file` lines).
    pub async fn start(extra: &str) -> Self {
        Self::start_on(free_port(), extra).await
    }

    /// `start` plus a TLS listener on another free port, its CA in the broker's directory
    /// (see `tls_url`).
    pub async fn start_tls(extra: &str) -> Self {
        Self::start_with(free_port(), extra, Some((free_port(), None))).await
    }

    /// `start` on a given port.
    pub async fn start_on(port: u16, extra: &str) -> Self {
        Self::start_with(port, extra, None).await
    }

    /// `start_on` plus a TLS listener on `tls_port` with the certificate of `ca` (`make_ca`).
    pub async fn start_on_tls(port: u16, tls_port: u16, ca: &Path, extra: &str) -> Self {
        Self::start_with(port, extra, Some((tls_port, Some(ca)))).await
    }

    async fn start_with(port: u16, extra: &str, tls: Option<(u16, Option<&Path>)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut tls_port, mut ca_file) = (None, None);
        let mut listeners = String::new();
        if let Some((p, ca)) = tls {
            let paths = make_ca(ca.unwrap_or(dir.path()));
            tls_port = Some(p);
            ca_file = Some(paths.ca_cert.clone());
            // `user root`: running as root, mosquitto would otherwise drop to its own user,
            // which cannot read the 0600 key in the 0700 directory (ignored when not root).
            let user = if extra.contains("user root") {
                ""
            } else {
                "user root\n"
            };
            listeners = format!(
                "{user}listener {p} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                paths.cert.display(),
                paths.key.display()
            );
        }
        let anonymous = if extra.contains("password_file") {
            "false"
        } else {
            "true"
        };
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous {anonymous}\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\nlog_dest stderr\n\
             log_type error\nlog_type warning\n{extra}\n{listeners}",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write config");
        let mut m = Self {
            port,
            tls_port,
            ca: ca_file,
            dir,
            child: None,
        };
        m.launch().await;
        m
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    async fn launch(&mut self) {
        let child = Command::new(BIN)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start /usr/sbin/mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(SOON, || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            })
            .await,
            "mosquitto did not listen on {port}"
        );
    }

    /// Stops it with SIGTERM (it saves its persistence file) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// SIGHUP: mosquitto reloads its password file and ACL.
    pub fn reload(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-HUP", &c.id().to_string()])
                .status();
        }
    }

    /// Starts it again on the same port with the same config and persistence.
    pub async fn start_again(&mut self) {
        self.launch().await;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the TLS listener's certificate (PEM).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.ca.clone().expect("started with a TLS listener")
    }

    /// `mqtts://127.0.0.1:<tls port>?ca=<ca_file>` (`start_tls` only).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with start_tls");
        format!("mqtts://127.0.0.1:{port}?ca={}", self.ca_file().display())
    }
}

/// A private CA in `dir` and a server certificate for 127.0.0.1 and localhost signed by it
/// (rzmon's own generator, as `RZMON_TLS=auto` uses it).
pub fn make_ca(dir: &Path) -> rzmon::tls::generate::Paths {
    let paths = rzmon::tls::generate::Paths::in_dir(dir);
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    rzmon::tls::generate::ensure(&paths, &names).expect("generate CA and certificate");
    paths
}

/// Last payload per topic, with its retain flag.
pub type Latest = Arc<Mutex<BTreeMap<String, (Vec<u8>, bool)>>>;
/// Every (topic, payload) in arrival order.
pub type Log = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An MQTT client subscribed to `filter` that records every message (the last payload per
/// topic, and every message in arrival order).
pub struct Watcher {
    pub client: AsyncClient,
    pub last: Latest,
    pub all: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// `session`: `Some(id)` keeps a persistent session under that client id (messages are
    /// queued while it is away or the broker restarts); it reconnects by itself.
    pub async fn start(
        port: u16,
        filter: &str,
        session: Option<&str>,
        login: Option<(&str, &str)>,
    ) -> Self {
        let id = session.map_or_else(|| format!("watch-{}", rand_id()), str::to_owned);
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(session.is_none())
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let last: Latest = Arc::default();
        let all: Log = Arc::default();
        let (l, a, c, f) = (last.clone(), all.clone(), client.clone(), filter.to_owned());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.subscribe(&f, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        l.lock()
                            .unwrap()
                            .insert(p.topic.clone(), (p.payload.to_vec(), p.retain));
                        a.lock().unwrap().push((p.topic, p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(SOON, ready_rx)
            .await
            .expect("watcher subscribed in time")
            .expect("watcher task");
        Self {
            client,
            last,
            all,
            task,
        }
    }

    /// The last payload on `topic` as JSON (`None` if nothing or not JSON).
    pub fn json(&self, topic: &str) -> Option<serde_json::Value> {
        let last = self.last.lock().unwrap();
        serde_json::from_slice(&last.get(topic)?.0).ok()
    }

    /// The last payload on `topic` and whether it came retained.
    pub fn raw(&self, topic: &str) -> Option<(Vec<u8>, bool)> {
        self.last.lock().unwrap().get(topic).cloned()
    }

    /// Waits until `f` holds for the recorded state.
    pub async fn wait(&self, f: impl Fn(&Self) -> bool) -> bool {
        wait_until(SOON, || async { f(self) }).await
    }

    pub fn count(&self) -> usize {
        self.all.lock().unwrap().len()
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}
