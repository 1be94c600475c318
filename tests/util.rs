//! Test harness: starts the real `rzmon` binary on free ports with a temp data dir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "test-admin-password-123";
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough-0123456789";
pub const BIN: &str = env!("CARGO_BIN_EXE_rzmon");

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub child: Option<Child>,
    pub http: String,
    pub mqtt_addr: String,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("RZMON_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("RZMON_JWT_SECRET", JWT_SECRET),
            ("RZMON_HTTP_ADDR", "127.0.0.1:0"),
            ("RZMON_MQTT_ADDR", "127.0.0.1:0"),
            ("RZMON_MQTT_RATE", "0"),
            ("RZMON_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut app = TestApp {
            dir,
            env,
            child: None,
            http: String::new(),
            mqtt_addr: String::new(),
            stdout: Default::default(),
            stderr: Default::default(),
            client: reqwest::Client::new(),
        };
        app.spawn().await;
        app
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("rzmon.db")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear();
        if let Ok(p) = std::env::var("PATH") {
            c.env("PATH", p);
        }
        c.env("RZMON_DATA_DIR", self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.current_dir(self.dir.path());
        c
    }

    async fn spawn(&mut self) {
        let mut child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rzmon");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        self.stdout = Default::default();
        self.stderr = Default::default();
        let (o, e) = (self.stdout.clone(), self.stderr.clone());
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                o.lock().unwrap().push(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().unwrap().push(l);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (mut http, mut mqtt) = (None, None);
            for l in self.stdout.lock().unwrap().iter() {
                let t = l.trim();
                if let Some(r) = t.strip_prefix("Dashboard:") {
                    let r = r.trim().trim_start_matches("http://");
                    http = Some(r.trim_end_matches('/').to_string());
                }
                if let Some(r) = t.strip_prefix("MQTT:") {
                    mqtt = r.split_whitespace().next().map(str::to_string);
                }
            }
            if let (Some(h), Some(m)) = (http, mqtt) {
                self.http = format!("http://{h}");
                self.mqtt_addr = m;
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("rzmon exited early ({st}): {}", self.logs());
            }
            if Instant::now() > deadline {
                panic!("rzmon did not become ready in 30 s: {}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.http, path)
    }

    pub fn mqtt_host_port(&self) -> (String, u16) {
        let (h, p) = self.mqtt_addr.rsplit_once(':').unwrap();
        (h.to_string(), p.parse().unwrap())
    }

    pub async fn login(&self) -> String {
        self.login_as("admin", ADMIN_PASSWORD).await
    }

    pub async fn login_as(&self, user: &str, pass: &str) -> String {
        let r = self
            .post_json("/login", json!({"username": user, "password": pass}), None)
            .await;
        assert_eq!(r.status(), 200, "login failed {}", self.logs());
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rq = self.client.get(self.url(path));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().await.unwrap()
    }

    /// GET that must succeed with 200; returns the JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let r = self.get(path, Some(token)).await;
        let st = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(st, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut rq = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().await.unwrap()
    }

    /// Runs the CLI against the same data dir; returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.command().args(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "rzmon {args:?}: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Adds a device via the CLI; returns its password.
    pub fn add_device(&self, id: &str) -> String {
        let v = self.cli_json(&["device", "add", id, "--json"]);
        v["password"].as_str().unwrap().to_string()
    }

    pub fn mqtt_opts(&self, client_id: &str, user: Option<&str>, pass: Option<&str>) -> MqttOptions {
        let (h, p) = self.mqtt_host_port();
        let mut o = MqttOptions::new(client_id, h, p);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(100);
        o.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(u) = user {
            o.set_credentials(u, pass.unwrap_or(""));
        }
        o
    }

    pub async fn mqtt(&self, id: &str, password: &str) -> Mqtt {
        Mqtt::connect(self.mqtt_opts(id, Some(id), Some(password)))
    }

    /// Connects a device and waits for a successful CONNACK.
    pub async fn device(&self, id: &str) -> Mqtt {
        let pw = self.add_device(id);
        let m = self.mqtt(id, &pw).await;
        let rc = m.wait_connected().await;
        assert_eq!(rc, Some(ConnectReturnCode::Success), "{}", self.logs());
        m
    }

    pub async fn ws(&self, token: Option<&str>) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = self.http.replace("http://", "ws://") + "/ws";
        let mut rq = url.into_client_request().unwrap();
        if let Some(t) = token {
            rq.headers_mut()
                .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (s, _) = tokio_tungstenite::connect_async(rq).await.expect("ws connect");
        s
    }

    pub async fn metrics(&self, token: &str) -> Value {
        self.get_json("/metrics", token).await
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM and wait (bounded 20 s) for exit; returns the exit code.
    pub async fn sigterm(&mut self) -> Option<i32> {
        self.signal("-TERM");
        self.wait_exit(Duration::from_secs(20)).await
    }

    pub async fn wait_exit(&mut self, t: Duration) -> Option<i32> {
        let deadline = Instant::now() + t;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                panic!("rzmon did not exit: {}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn kill9(&mut self) {
        let c = self.child.as_mut().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Starts the server again on the same data dir (fresh ports).
    pub async fn restart(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if c.try_wait().unwrap().is_none() {
                c.kill().ok();
                c.wait().ok();
            }
        }
        self.spawn().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<
    tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
>;

/// Polls `f` every 20 ms until true or timeout; returns whether it became true.
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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

#[derive(Default, Debug)]
pub struct MqttState {
    pub connack: Option<ConnectReturnCode>,
    pub closed: bool,
    pub error: Option<String>,
    pub acks: usize,
    pub received: Vec<(String, Vec<u8>)>,
}

/// rumqttc client + a task polling the event loop. Stops at the first error (no reconnect).
pub struct Mqtt {
    pub client: AsyncClient,
    pub state: Arc<Mutex<MqttState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mqtt {
    pub fn connect(opts: MqttOptions) -> Mqtt {
        let (client, mut el) = AsyncClient::new(opts, 4000);
        let state: Arc<Mutex<MqttState>> = Default::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(c))) => st.lock().unwrap().connack = Some(c.code),
                    Ok(Event::Incoming(Packet::PubAck(_))) => st.lock().unwrap().acks += 1,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        st.lock().unwrap().received.push((p.topic.clone(), p.payload.to_vec()))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let mut s = st.lock().unwrap();
                        if let rumqttc::ConnectionError::ConnectionRefused(c) = &e {
                            s.connack = Some(*c);
                        }
                        s.error = Some(e.to_string());
                        s.closed = true;
                        return;
                    }
                }
            }
        });
        Mqtt { client, state, task }
    }

    /// Waits (≤10 s) for a CONNACK or an error; returns the CONNACK code if any.
    pub async fn wait_connected(&self) -> Option<ConnectReturnCode> {
        wait_until(Duration::from_secs(10), || async {
            let s = self.state.lock().unwrap();
            s.connack.is_some() || s.closed
        })
        .await;
        self.state.lock().unwrap().connack
    }

    /// Waits (≤ t) for the connection to be closed; returns whether it was.
    pub async fn wait_closed(&self, t: Duration) -> bool {
        wait_until(t, || async { self.state.lock().unwrap().closed }).await
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    pub fn acks(&self) -> usize {
        self.state.lock().unwrap().acks
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
    }

    /// Waits (≤ 20 s) until `n` PUBACKs were received.
    pub async fn wait_acks(&self, n: usize) -> bool {
        wait_until(Duration::from_secs(20), || async { self.acks() >= n }).await
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rows of GET /data for a query string (e.g. "?limit=10").
pub async fn data(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let v = app.get_json(&format!("/data{q}"), token).await;
    v["data"].as_array().unwrap().clone()
}

/// Waits until GET /data{q} returns at least n rows.
pub async fn wait_rows(app: &TestApp, token: &str, q: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let last = data(app, token, q).await;
        if last.len() >= n {
            return last;
        }
        if Instant::now() > deadline {
            panic!("expected {n} rows for {q}, got {}: {}", last.len(), app.logs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts an error response: status and a JSON {"error": sentence}.
pub async fn assert_error(r: reqwest::Response, status: u16) -> String {
    let st = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(st, status, "body: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: not JSON: {body}"));
    let e = v["error"].as_str().unwrap_or_else(|| panic!("no error field: {body}"));
    assert!(!e.is_empty());
    e.to_string()
}
