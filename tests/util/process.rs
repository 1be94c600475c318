//! A `TestApp` that is the real `rzmon` binary: started with a cleared environment, its
//! addresses read from the console banner, stdout and stderr collected; signals and kill -9.

use super::{BIN, Mode, TestApp, http_client};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

impl TestApp {
    pub(super) async fn launch(dir: Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RZMON_DATA_DIR", dir.path())
            .env("RZMON_HTTP_ADDR", "127.0.0.1:0")
            .env("RZMON_MQTT_ADDR", "127.0.0.1:0")
            .env("RZMON_HTTPS_ADDR", "127.0.0.1:0")
            .env("RZMON_MQTTS_ADDR", "127.0.0.1:0")
            .env("RZMON_LOG", "info")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start rzmon");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let out = child.stdout.take().expect("stdout");
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let errs = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                errs.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (mut http, mut mqtt, mut https, mut mqtts) = (None, None, None, None);
        let setting = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // A generated CA's fingerprint is the banner's last line.
        let mut want_ca =
            setting("RZMON_TLS") == Some("auto") && setting("RZMON_TLS_CERT").is_none();
        let plain_off = setting("RZMON_TLS").is_some_and(|t| t != "off")
            && setting("RZMON_PLAIN") == Some("off");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while (http.is_none() && https.is_none())
            || (mqtt.is_none() && mqtts.is_none())
            || want_ca
            || (!plain_off && (http.is_none() || mqtt.is_none()))
        {
            let line = tokio::time::timeout_at(deadline, rx.recv()).await;
            let Ok(Some(line)) = line else {
                let _ = child.kill();
                panic!(
                    "rzmon did not print its addresses; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            };
            let line = line.trim();
            let first = |rest: &str| {
                rest.split_whitespace()
                    .next()
                    .and_then(|a| a.trim_end_matches('/').parse().ok())
            };
            if let Some(rest) = line.strip_prefix("Dashboard: http://") {
                http = first(rest);
            } else if let Some(rest) = line.strip_prefix("Dashboard: https://") {
                https = first(rest);
            } else if let Some(rest) = line.strip_prefix("HTTP:") {
                http = first(rest);
            } else if let Some(rest) = line.strip_prefix("MQTT/TLS:") {
                mqtts = first(rest);
            } else if let Some(rest) = line.strip_prefix("MQTT:") {
                mqtt = first(rest);
            } else if line.starts_with("CA SHA-256 fingerprint:") {
                want_ca = false;
            }
        }
        Self {
            dir,
            http: http.or(https).unwrap(),
            mqtt: mqtt.or(mqtts).unwrap(),
            https,
            mqtts,
            stdout,
            env,
            client: http_client(),
            external: None,
            mode: Mode::Process {
                child: Some(child),
                stderr,
            },
        }
    }

    fn child(&mut self) -> &mut Option<Child> {
        match &mut self.mode {
            Mode::Process { child, .. } => child,
            Mode::InProcess(_) => panic!("signals need a process app (TestApp::process)"),
        }
    }

    /// Sends SIGTERM and waits for the exit status (process apps).
    pub fn sigterm(&mut self) -> ExitStatus {
        let pid = self.child().as_ref().expect("running").id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        self.wait_exit()
    }

    /// Sends SIGHUP (process apps); does not wait.
    pub fn sighup(&mut self) {
        let pid = self.child().as_ref().expect("running").id();
        let s = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP");
        assert!(s.success(), "kill -HUP {pid}");
    }

    /// Whether the process is still running (process apps).
    pub fn alive(&mut self) -> bool {
        let child = self.child().as_mut().expect("started");
        child.try_wait().expect("wait").is_none()
    }

    /// kill -9 (process apps).
    pub fn kill9(&mut self) {
        let mut child = self.child().take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child().take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rzmon did not exit within 20 s; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
