//! The test harness. `TestApp::start*` runs the real server in-process (`app::start` on port 0,
//! on the test's own runtime, settings from explicit pairs, a temporary data directory) and
//! talks to it like the world does (HTTP, WebSocket, MQTT over TCP, the CLI, the SQLite file);
//! `running()` reaches its parts. `TestApp::process*` starts the `rzmon` binary instead, for
//! what needs the process: console output, the log, signals, kill -9. Every wait is bounded;
//! nothing sleeps and hopes.

#![allow(dead_code)]

pub mod browser;
mod device;
mod external;
mod history;
mod process;
pub mod sleepy;

pub use device::*;
pub use external::*;
pub use history::{write_incidents, write_readings};

use futures_util::{SinkExt, StreamExt};
use rzmon::app::{self, Listeners, Running};
use rzmon::config::ServeSettings;
use rzmon::simulate::{self, Credentials, SimOptions};
use rzmon::store::Store;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

pub const BIN: &str = env!("CARGO_BIN_EXE_rzmon");
pub const ADMIN_PASSWORD: &str = "integration-admin-pw";
pub const JWT_SECRET: &str = "integration-test-jwt-secret-0123456789abcdef";
/// Upper bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running server, in-process or as a child process.
pub struct TestApp {
    pub dir: Arc<tempfile::TempDir>,
    /// Plain HTTP and MQTT (the TLS ports when the plain ones are off).
    pub http: SocketAddr,
    pub mqtt: SocketAddr,
    /// HTTPS and MQTT over TLS, when TLS is on.
    pub https: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
    /// Console lines of a process app (an in-process app prints to the test's output).
    pub stdout: Arc<Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
    /// The external broker of `start_external` (`None`: the embedded broker).
    pub external: Option<Arc<External>>,
    mode: Mode,
}

enum Mode {
    /// `None` once shut down.
    InProcess(Option<Box<Running>>),
    Process {
        child: Option<Child>,
        stderr: Arc<Mutex<String>>,
    },
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The harness defaults (admin password, JWT secret, no rate limit) with `env` applied on top.
fn with_defaults(env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = vec![
        ("RZMON_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ("RZMON_JWT_SECRET".into(), JWT_SECRET.into()),
        ("RZMON_MQTT_RATE".into(), "0".into()),
    ];
    for (k, v) in env {
        all.retain(|(key, _)| key != k);
        all.push(((*k).into(), (*v).into()));
    }
    all
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // The server closes a kept-alive connection after 30 s idle (its header-read limit);
        // a client that reuses one at that moment gets "connection closed before message
        // completed", as browsers do and then retry. Not reusing idle ones past 10 s avoids it.
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// In-process apps log to the test output at the level of `RZMON_TEST_LOG` (default `error`).
fn init_test_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let level = std::env::var("RZMON_TEST_LOG").unwrap_or_else(|_| "error".into());
        let filter = rzmon::config::log_targets(&level).expect("RZMON_TEST_LOG is a valid filter");
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .finish()
            .with(filter)
            .try_init();
    });
}

impl TestApp {
    /// Starts in-process with the harness defaults.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts in-process with the defaults of the harness plus `env` (which may override them):
    /// `RZMON_*` settings of `rzmon serve`, parsed like the process environment but never read
    /// from it.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::launch_in_process(dir, with_defaults(env)).await
    }

    /// Starts the binary as a process with the harness defaults.
    pub async fn process() -> Self {
        Self::process_with(&[]).await
    }

    /// Starts the binary as a process with the harness defaults plus `env`.
    pub async fn process_with(env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::launch(dir, with_defaults(env)).await
    }

    /// Starts the binary without an admin password (first start prints a random one).
    pub async fn start_bare() -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::launch(dir, vec![]).await
    }

    async fn launch_in_process(dir: Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> Self {
        init_test_logging();
        let pairs = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([
            ("RZMON_HTTP_ADDR", "127.0.0.1:0"),
            ("RZMON_MQTT_ADDR", "127.0.0.1:0"),
            ("RZMON_HTTPS_ADDR", "127.0.0.1:0"),
            ("RZMON_MQTTS_ADDR", "127.0.0.1:0"),
        ]);
        let settings = ServeSettings::from_pairs(pairs).expect("settings");
        let path = dir.path().to_owned();
        let store = tokio::task::spawn_blocking(move || Store::open_in(&path))
            .await
            .expect("open task")
            .expect("open store");
        let listeners = Listeners::bind(&settings).await.expect("bind");
        let running = app::start(listeners, settings, store)
            .await
            .expect("app starts");
        Self {
            dir,
            http: running
                .http_addr
                .or(running.https_addr)
                .expect("an HTTP port"),
            // With an external broker, `start_external` sets its address.
            mqtt: running
                .mqtt_addr
                .or(running.mqtts_addr)
                .unwrap_or(([127, 0, 0, 1], 0).into()),
            https: running.https_addr,
            mqtts: running.mqtts_addr,
            stdout: Arc::default(),
            env,
            client: http_client(),
            external: None,
            mode: Mode::InProcess(Some(Box::new(running))),
        }
    }

    /// The log of a process app (empty for an in-process app, whose log goes to the test
    /// output: see `RZMON_TEST_LOG`).
    pub fn stderr(&self) -> String {
        match &self.mode {
            Mode::Process { stderr, .. } => stderr.lock().unwrap().clone(),
            Mode::InProcess(_) => String::new(),
        }
    }

    /// The in-process app: its parts (`running().parts.store`, `.metrics`, `.hub`, ...).
    pub fn running(&self) -> &Running {
        match &self.mode {
            Mode::InProcess(Some(r)) => r,
            Mode::InProcess(None) => panic!("the app was shut down"),
            Mode::Process { .. } => panic!("running() needs an in-process app (TestApp::start)"),
        }
    }

    /// Stops an in-process app as `serve` does at a signal; its result.
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        match &mut self.mode {
            Mode::InProcess(r) => r.take().expect("running").shutdown().await,
            Mode::Process { .. } => panic!("shutdown() is for in-process apps; use sigterm()"),
        }
    }

    /// Waits until the store writer has committed at least `n` messages (in-process).
    pub async fn wait_committed(&self, n: u64) -> bool {
        let metrics = self.running().parts.metrics.clone();
        wait_until(SOON, || {
            let m = metrics.clone();
            async move { m.store_committed.get() >= n }
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("rzmon.db")
    }

    /// A read-only connection to the real database file.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db")
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    pub async fn login(&self) -> String {
        let (status, body) = self
            .post(
                "/login",
                None,
                json!({"username": "admin", "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (s, v, _) = self.get_full(path, token).await;
        (s, v)
    }

    pub async fn get_full(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("GET");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    /// Any method with `token`, with a JSON body when given; (status, JSON or null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("POST");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Runs the CLI against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("RZMON_DATA_DIR", self.dir.path())
            .output()
            .expect("run rzmon cli")
    }

    /// Registers a device with the CLI; returns its password. With an external broker, also
    /// adds the device's line to the broker's password file and reloads it.
    pub fn add_device(&self, id: &str) -> String {
        let mut args = vec!["device", "add", id, "--json"];
        if self.external.is_some() {
            args.extend(["--broker-config", "mosquitto"]);
        }
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("device add --json");
        assert_eq!(v["device"], id);
        assert_eq!(v["username"], id);
        if let Some(ext) = &self.external {
            ext.add_line(v["mosquitto_passwd"].as_str().expect("password-file line"));
        }
        v["password"].as_str().expect("password").to_owned()
    }

    /// Registers `id` and connects it; waits for the CONNACK.
    pub async fn device(&self, id: &str) -> Device {
        let pw = self.add_device(id);
        let deadline = Instant::now() + SOON;
        loop {
            let mut d = Device::connect(self.mqtt, id, Some((id, &pw))).await;
            match d.wait_connack().await {
                Ok(()) => {
                    d.password = pw;
                    return d;
                }
                // An external broker takes the new password-file line once it has reloaded.
                Err(e) if self.external.is_some() && Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("device {id} does not connect: {e}"),
            }
        }
    }

    /// Registers `id` and runs `rzmon simulate` for it in-process (telemetry every `interval`
    /// seconds, no random access events or incidents) until the returned token is cancelled.
    pub fn simulator(&self, id: &str, interval: f64) -> CancellationToken {
        let password = self.add_device(id);
        let opts = SimOptions {
            host: self.mqtt.ip().to_string(),
            port: self.mqtt.port(),
            prefix: "rz".into(),
            interval,
            enrol_delay: 0.3,
            access_probability: 0.0,
            incident_probability: 0.0,
            count: 0,
            seed: 7,
            tls: None,
        };
        let stop = CancellationToken::new();
        let creds = vec![Credentials {
            device: id.into(),
            password,
        }];
        tokio::spawn(simulate::run(opts, creds, stop.clone()));
        stop
    }

    /// Like `simulator`, over MQTT/TLS to the MQTTS port, trusting the generated CA.
    pub fn simulator_tls(&self, id: &str, interval: f64) -> CancellationToken {
        let password = self.add_device(id);
        let mqtts = self.mqtts.expect("TLS is on");
        let ca = std::fs::read(self.dir.path().join("tls/ca.pem")).expect("generated CA");
        let opts = SimOptions {
            host: mqtts.ip().to_string(),
            port: mqtts.port(),
            prefix: "rz".into(),
            interval,
            enrol_delay: 0.3,
            access_probability: 0.0,
            incident_probability: 0.0,
            count: 0,
            seed: 7,
            tls: Some(rzmon::tls::client_config(&ca).expect("client config")),
        };
        let stop = CancellationToken::new();
        let creds = vec![Credentials {
            device: id.into(),
            password,
        }];
        tokio::spawn(simulate::run(opts, creds, stop.clone()));
        stop
    }

    /// Waits until `/data` (device filter) holds `n` rows.
    pub async fn wait_rows(&self, token: &str, device: &str, n: usize) -> bool {
        wait_until(SOON, || async {
            let (_, v) = self
                .get(&format!("/data?device={device}&limit=10000"), Some(token))
                .await;
            v["data"].as_array().map_or(0, Vec::len) >= n
        })
        .await
    }

    pub async fn ws(&self, token: Option<&str>) -> Ws {
        let mut req = format!("ws://{}/ws", self.http)
            .into_client_request()
            .expect("ws request");
        if let Some(t) = token {
            req.headers_mut()
                .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect")
            .0
    }

    /// A WebSocket authenticated by its first message; returns after `{"type":"ready"}`.
    pub async fn ws_ready(&self, token: &str) -> Ws {
        let mut ws = self.ws(None).await;
        ws.send(WsMessage::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await
        .expect("send auth");
        let ready = ws_json(&mut ws).await.expect("ready");
        assert_eq!(ready["type"], "ready");
        ws
    }

    /// A `/proc/<pid>/status` figure of the server in KiB (`VmRSS`, `VmHWM` = peak RSS):
    /// exact for a process app; an in-process app reads `/proc/self` (the whole test binary).
    pub fn mem_kib(&self, field: &str) -> u64 {
        let pid = match &self.mode {
            Mode::Process { child, .. } => child.as_ref().expect("running").id().to_string(),
            Mode::InProcess(_) => "self".to_owned(),
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    /// Starts again on the same data directory (new ports), the same way (in-process after a
    /// clean shutdown, or the binary again).
    pub async fn restart(mut self) -> Self {
        let (dir, env) = (self.dir.clone(), self.env.clone());
        let (external, mqtt) = (self.external.take(), self.mqtt);
        match &mut self.mode {
            Mode::InProcess(running) => {
                if let Some(r) = running.take() {
                    r.shutdown().await.expect("clean shutdown before restart");
                }
                drop(self);
                let mut app = Self::launch_in_process(dir, env).await;
                if external.is_some() {
                    app.external = external;
                    app.mqtt = mqtt;
                    app.wait_subscribed().await;
                }
                app
            }
            Mode::Process { .. } => {
                drop(self);
                Self::launch(dir, env).await
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // An in-process app's tasks end with the test's runtime.
        if let Mode::Process { child, .. } = &mut self.mode
            && let Some(mut c) = child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The next JSON text message (pings skipped), or `None` on close/timeout.
pub async fn ws_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(SOON, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// The next event of `kind` (others skipped).
pub async fn ws_event(ws: &mut Ws, kind: &str) -> Option<Value> {
    loop {
        let v = ws_json(ws).await?;
        if v["type"] == kind {
            return Some(v);
        }
    }
}
