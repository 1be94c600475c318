//! Starting the release binary for a benchmark and looking at it from outside: RSS from /proc,
//! devices through the CLI, rows through a read-only connection.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_rzmon");

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub mqtt_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `rzmon` on `dir` (MQTT on `mqtt_port`, 0 = any) and waits for its banner.
    /// `RZMON_BENCH_WRAP` (e.g. `heaptrack`) is put in front of the command.
    pub fn start(dir: &Path, mqtt_port: u16) -> Self {
        let wrap = std::env::var("RZMON_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(words).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .env("RZMON_DATA_DIR", dir)
            .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
            .env("RZMON_MQTT_ADDR", format!("127.0.0.1:{mqtt_port}"))
            .env("RZMON_ADMIN_PASSWORD", "bench-password-1234")
            .env("RZMON_MQTT_RATE", "0")
            .env("RZMON_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rzmon");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mqtt_port = loop {
            let line = lines.next().expect("rzmon exited").expect("read stdout");
            if let Some(rest) = line.trim().strip_prefix("MQTT:") {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.rsplit(':').next().unwrap().parse().expect("port");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, mqtt_port }
    }

    /// RSS of the server in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Registers `id` with the CLI; returns its password.
pub fn add_device(dir: &Path, id: &str) -> String {
    let out = Command::new(BIN)
        .args(["device", "add", id, "--json"])
        .env("RZMON_DATA_DIR", dir)
        .output()
        .expect("device add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["password"].as_str().expect("password").to_owned()
}

/// Telemetry rows in the database of `dir`.
pub fn stored(dir: &Path) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("rzmon.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open db");
    conn.query_row("SELECT count(*) FROM telemetry", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}
