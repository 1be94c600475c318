//! What the benchmarks share: the release binary as a child process, Debian's mosquitto on a
//! free loopback port, a store seeded through the real writer, bounded waits.

#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet};
use rzmon::model::{Body, DeviceId, Message, Telemetry};
use rzmon::store::Store;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rzmon");
/// Runs another rzmon binary than the one cargo built (e.g. a copy of main's, for a before/after
/// comparison under the same conditions).
const BIN_OVERRIDE: &str = "RZMON_BENCH_BIN";

/// The rzmon binary the benchmarks start: `RZMON_BENCH_BIN` if set, else cargo's.
pub fn bin() -> String {
    std::env::var(BIN_OVERRIDE).unwrap_or_else(|_| BIN.to_owned())
}
pub const ADMIN_PASSWORD: &str = "bench-password-1234";

/// The rzmon process; killed on drop.
pub struct Server {
    pub child: Child,
    pub http: String,
    /// The embedded broker's port (`None` with `RZMON_BROKER`).
    pub mqtt_port: Option<u16>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rzmon serve` on free ports over `dir` with `env`; returns once it printed its banner.
pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(bin());
    cmd.env("RZMON_DATA_DIR", dir)
        .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
        .env("RZMON_MQTT_ADDR", "127.0.0.1:0")
        .env("RZMON_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RZMON_MQTT_RATE", "0")
        // Every bench device connects from 127.0.0.1.
        .env("RZMON_MQTT_PER_ADDRESS", "100000")
        .env("RZMON_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start rzmon");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut http = String::new();
    let mqtt_port = loop {
        let line = lines.next().expect("rzmon exited").expect("read stdout");
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Dashboard: ") {
            http = rest.trim_end_matches('/').to_owned();
        }
        if let Some(rest) = line.strip_prefix("MQTT:") {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            break addr.rsplit(':').next().and_then(|p| p.parse().ok());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        http,
        mqtt_port,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Debian's mosquitto with persistence in its own directory; killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Mosquitto {
    /// Listens on `port` with `extra` config lines (anonymous unless a password file is set);
    /// returns once the port accepts connections.
    pub fn start(port: u16, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let anonymous = !extra.contains("password_file");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous {anonymous}\nuser root\n\
             persistence true\npersistence_location {}/\n\
             max_queued_messages 0\nlog_dest stderr\nlog_type error\n{extra}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        let mut m = Self {
            child: None,
            port,
            dir,
        };
        m.launch();
        m
    }

    /// Starts it again with the same config and persistence (after `stop`).
    pub fn launch(&mut self) {
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "mosquitto did not listen"
        );
    }

    /// SIGTERM (it saves sessions and queued messages) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// Runs the CLI on `dir`, with `stdin` if given; its stdout.
pub fn cli(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .env("RZMON_DATA_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rzmon cli");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        writeln!(input, "{s}").expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("cli output");
    assert!(
        out.status.success(),
        "rzmon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 10 ms until it holds or `limit` passes.
pub fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// `/health`'s checks as JSON.
pub async fn health(http: &str) -> serde_json::Value {
    match reqwest::get(format!("{http}/health")).await {
        Ok(res) => res.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Opens the database read-only and counts `table`.
pub fn count(db: &Path, table: &str) -> u64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(0, |n| n as u64)
}

/// `devices` registered devices (`rack-0000`...), each with `rows` telemetry rows, written
/// through the store's own writer into a new database at `db`.
pub fn seed(db: &Path, devices: usize, rows: usize) {
    let store = Store::open(db).expect("open store");
    let metrics = Arc::new(rzmon::metrics::Metrics::default());
    let writer = store
        .spawn_writer(metrics, rzmon::health::Health::new())
        .expect("writer");
    let tx = writer.sender();
    for i in 0..devices {
        let id = DeviceId::parse(&format!("rack-{i:04}")).expect("id");
        store.create_device(&id, "not-a-login").expect("device");
        for n in 0..rows {
            let tmp = 20.0 + (i % 10) as f64 + (n % 10) as f64 / 10.0;
            let locked = n % 2 == 0;
            let payload = serde_json::json!({"tmp": tmp, "lf": 40.0, "locked": locked});
            let serde_json::Value::Object(payload) = payload else {
                unreachable!()
            };
            let msg = Message {
                device: id.clone(),
                ts_ms: 1_764_000_000_000 + n as i64 * 1000,
                body: Body::Telemetry(Telemetry {
                    tmp: Some(tmp),
                    lf: Some(40.0),
                    locked: Some(locked),
                    seq: None,
                    payload,
                }),
            };
            tx.blocking_send(msg, None).expect("send");
        }
    }
    drop(tx);
    writer.close().expect("commit");
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `RssAnon`, ...); 0 if unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Samples the VmRSS of `pid` every `every` on its own thread until `stop`.
pub struct RssSampler {
    samples: Arc<std::sync::Mutex<Vec<(Duration, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut next = t0;
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                s.lock()
                    .expect("samples")
                    .push((t0.elapsed(), status_kib(pid, "VmRSS")));
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The samples so far: (time since start, VmRSS KiB).
    pub fn samples(&self) -> Vec<(Duration, u64)> {
        self.samples.lock().expect("samples").clone()
    }

    /// Stops sampling; every sample taken.
    pub fn stop(mut self) -> Vec<(Duration, u64)> {
        self.halt();
        self.samples()
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Registers `n` devices `{prefix}-{i}` directly in the database of `dir` (before the server
/// starts; faster than `n` CLI runs); their (id, password).
pub fn register(dir: &Path, prefix: &str, n: usize) -> Vec<(String, String)> {
    let store = Store::open_in(dir).expect("open store");
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let pw = format!("{id}-bench-secret");
            let hash = rzmon::secrets::hash_device_secret(&pw).expect("hash");
            store
                .create_device(&DeviceId::parse(&id).expect("id"), &hash)
                .expect("device");
            (id, pw)
        })
        .collect()
}

/// The telemetry payload of message `seq` of a bench device (`{tmp, lf, locked, seq}`).
pub fn telemetry(seq: usize) -> String {
    format!(
        r#"{{"tmp":{:.1},"lf":{:.1},"locked":{},"seq":{seq}}}"#,
        20.0 + (seq % 100) as f64 / 10.0,
        40.0 + (seq % 50) as f64 / 10.0,
        seq.is_multiple_of(2)
    )
}

/// A device's MQTT client on 127.0.0.1:`port` with up to `inflight` messages in flight;
/// returns after its CONNACK.
pub async fn connect(port: u16, id: &str, pw: &str, inflight: u16) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_credentials(id, pw)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(inflight)
        .set_request_channel_capacity(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("{id}: cannot connect: {e}"),
        }
    }
    (client, eventloop)
}

/// Drives `eventloop` until `n` PUBACKs arrived; their number.
pub async fn await_acks(eventloop: &mut EventLoop, id: &str, n: usize) -> usize {
    let mut acked = 0;
    while acked < n {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("{id}: MQTT error {e}"),
        }
    }
    acked
}
