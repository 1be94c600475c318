//! External-broker mode for the harness: Debian's mosquitto on a free port, configured with the
//! password file, ACL and `mosquitto.conf` lines that `rzmon broker-config mosquitto` printed,
//! and the app started with `RZMON_BROKER` pointing at it. `TestApp::add_device` then also
//! appends the device's password-file line (from `device add --broker-config mosquitto`) and
//! reloads mosquitto, so the same helpers (`device`, `simulator`, ...) work in both modes.

use super::{SOON, TestApp, wait_until};
use crate::mosquitto::{Mosquitto, free_port};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// rzmon's service account on the test broker.
pub const SERVICE_USER: &str = "rzmon-test";
pub const SERVICE_PASSWORD: &str = "service-password-0123456789";

/// The running external broker and its files.
pub struct External {
    pub mosquitto: Mosquitto,
    pub passwd: PathBuf,
    pub acl: PathBuf,
    _files: tempfile::TempDir,
}

impl External {
    /// Appends one password-file line and reloads mosquitto.
    pub fn add_line(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.passwd)
            .expect("open the password file");
        writeln!(f, "{line}").expect("append to the password file");
        self.mosquitto.reload();
    }
}

impl TestApp {
    /// Starts in-process against a fresh mosquitto (`RZMON_BROKER`), with `env` on top of the
    /// harness defaults; returns once rzmon is subscribed there (`/health` broker ok).
    pub async fn start_external(env: &[(&str, &str)]) -> Self {
        Self::start_external_with(env, false).await
    }

    /// `start_external`, rzmon connecting to mosquitto's TLS listener with `mqtts://...?ca=`
    /// (a private CA made in the test); devices still use the plain listener.
    pub async fn start_external_tls(env: &[(&str, &str)]) -> Self {
        Self::start_external_with(env, true).await
    }

    async fn start_external_with(env: &[(&str, &str)], tls: bool) -> Self {
        let (port, tls_port) = (free_port(), free_port());
        let files = tempfile::tempdir().expect("tempdir");
        let url = if tls {
            let ca = crate::mosquitto::make_ca(files.path()).ca_cert;
            format!(
                "mqtts://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{tls_port}?ca={}",
                ca.display()
            )
        } else {
            format!("mqtt://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{port}")
        };
        let mut pairs = env.to_vec();
        pairs.push(("RZMON_BROKER", &url));
        let mut app = Self::start_with(&pairs).await;
        let out = app.cli_stdin(
            &[
                "broker-config",
                "mosquitto",
                "--out",
                files.path().to_str().expect("utf-8 path"),
                "--service-user",
                SERVICE_USER,
                "--service-password-stdin",
            ],
            SERVICE_PASSWORD,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "broker-config: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The mosquitto.conf lines it printed, used as they are.
        let conf: String = stdout
            .split("mosquitto.conf:\n")
            .nth(1)
            .expect("broker-config prints mosquitto.conf lines")
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        // Running as root, mosquitto would drop to its own user and could not re-read the 0600
        // files on reload; `user root` keeps it as the test's user (ignored otherwise).
        let conf = format!("user root\n{conf}");
        let mosquitto = if tls {
            Mosquitto::start_on_tls(port, tls_port, files.path(), &conf).await
        } else {
            Mosquitto::start_on(port, &conf).await
        };
        app.mqtt = ([127, 0, 0, 1], port).into();
        app.external = Some(std::sync::Arc::new(External {
            mosquitto,
            passwd: files.path().join("rzmon.passwd"),
            acl: files.path().join("rzmon.acl"),
            _files: files,
        }));
        app.wait_subscribed().await;
        app
    }

    /// Waits until the in-process app reports its broker check ok.
    pub async fn wait_subscribed(&self) {
        let health = self.running().parts.health.clone();
        assert!(
            wait_until(SOON, || {
                let h = health.clone();
                async move { h.snapshot().get("broker").is_some_and(|c| c.is_ok()) }
            })
            .await,
            "rzmon did not subscribe on the external broker: {:?}",
            health.snapshot()
        );
    }

    /// Runs the CLI with `input` on stdin.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut child = Command::new(super::BIN)
            .args(args)
            .env_clear()
            .env("RZMON_DATA_DIR", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rzmon cli");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{input}").expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("rzmon cli output")
    }
}
