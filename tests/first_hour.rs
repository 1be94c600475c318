//! The first hour of a new user, at the process level: administrative commands never create a
//! database in the wrong place and say which one they use, bad settings name the variable and
//! never echo a secret, `simulate` names the address it cannot reach, and the first-start
//! password file goes away once it is no longer needed.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

/// Runs the binary with a clean environment plus `env`, in `cwd`.
fn rzmon(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rzmon")
}

/// Regression: run from another folder, `device add` created a new empty ./data and
/// registered the device there. Now it refuses, names where it looked and creates nothing.
#[test]
fn admin_commands_refuse_to_create_a_database() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["device", "list"][..],
        &["device", "add", "esp32-1", "--json"],
        &["user", "list"],
        &["backup", "copy.db"],
    ] {
        let out = rzmon(cwd.path(), args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        let looked = cwd.path().join("data").join("rzmon.db");
        assert!(err.contains(&looked.display().to_string()), "{err}");
        assert!(
            err.contains("--data-dir") && err.contains("RZMON_DATA_DIR"),
            "{err}"
        );
        assert!(!cwd.path().join("data").exists(), "{args:?} created ./data");
    }
}

/// Every administrative command says on stderr which data directory it uses, so stdout stays
/// one JSON object with `--json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_name_their_data_directory() {
    let app = TestApp::start().await;
    let out = app.cli(&["device", "add", "dd-1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("data directory {}", app.dir.path().display())),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["device"], "dd-1");
}

/// Regression: the refusal says "with --data-dir DIR", but `rzmon device list --data-dir X`
/// answered "unexpected argument": the data directory and logging options stand before or
/// after the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_and_logging_options_follow_the_command_too() {
    let app = TestApp::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let dir = app.dir.path().to_str().unwrap();
    for args in [
        &[
            "device",
            "list",
            "--json",
            "--data-dir",
            dir,
            "--log",
            "warn",
        ][..],
        &[
            "--data-dir",
            dir,
            "device",
            "list",
            "--json",
            "--log-format",
            "json",
        ],
    ] {
        let out = rzmon(cwd.path(), args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains(&format!("data directory {dir}")), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert!(v["devices"].is_array(), "{v}");
    }
    assert!(!cwd.path().join("data").exists(), "./data was created");
}

/// Bad values name the environment variable; a too-short secret is refused without being
/// repeated (regression: clap echoed it).
#[test]
fn bad_settings_name_the_variable_and_never_echo_a_secret() {
    let cwd = tempfile::tempdir().unwrap();
    // The walk over every variable is `cli::tests::every_bad_variable_value_names_the_variable`;
    // here a few of each kind of parser through the real environment of the real binary.
    for (var, bad) in [
        ("RZMON_STALE_AFTER", "abc"),
        ("RZMON_RETENTION_DAYS", "abc"),
        ("RZMON_TLS", "maybe"),
        ("RZMON_HA_ACCESS_IDS", "maybe"),
        ("RZMON_TRUSTED_PROXIES", "zz"),
        ("RZMON_LOG_FORMAT", "x"),
    ] {
        let out = rzmon(cwd.path(), &[], &[(var, bad)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={bad} accepted");
        assert!(err.contains(var), "{err}");
    }
    for (var, secret) in [
        ("RZMON_ADMIN_PASSWORD", "shortpw"),
        ("RZMON_JWT_SECRET", "a-jwt-secret-that-is-too-short"),
    ] {
        let out = rzmon(cwd.path(), &["serve"], &[(var, secret)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var} accepted");
        assert!(err.contains(var), "{err}");
        assert!(!err.contains(secret), "{var} echoed: {err}");
    }
    assert!(
        !cwd.path().join("data").exists(),
        "a refused start created ./data"
    );
}

/// `simulate` names the address it could not reach instead of "connection lost" for a
/// connection that never existed.
#[test]
fn simulate_names_the_address_it_cannot_reach() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["simulate", "--device", "x", "--password", "pw"])
        .env_clear()
        .env("RZMON_SIM_BROKER", format!("127.0.0.1:{port}"))
        .current_dir(cwd.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let want = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + SOON;
    let mut text = String::new();
    while !text.contains(&want) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => text.push_str(&chunk),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = text.contains(&want);
    assert!(seen, "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains("connection lost"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in a log that is not a terminal: {text}"
    );
}

/// The first-start password file is deleted by a password change of admin on the CLI too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_password_file_ends_with_a_password_change() {
    let app = TestApp::start_bare().await;
    let file = app.dir.path().join("initial_admin_password");
    assert!(file.exists());
    let out = app.cli(&["user", "passwd", "admin", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file.exists(), "the CLI password change deletes the file");
}

/// A first-start-only setting on a later start is reported as ignored (regression: the README's
/// "try it" set RZMON_ADMIN_PASSWORD after the first start and nothing said it had no effect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_only_setting_is_reported_as_ignored_later() {
    let first = TestApp::process().await;
    assert!(!first.stderr().contains("is ignored"));
    let second = first.restart().await;
    let said = wait_until(Duration::from_secs(5), || async {
        second.stderr().contains("RZMON_ADMIN_PASSWORD is ignored")
    })
    .await;
    assert!(said, "{}", second.stderr());
}

/// `rzmon token` (README's login example) fails loudly on a wrong password: exit 1, a sentence
/// on stderr and nothing on stdout a script could mistake for a token; the right one prints a
/// token the API accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_fails_loudly_on_a_wrong_password() {
    let app = TestApp::start().await;
    let token_cmd = ["token", "admin", "--jwt-secret", JWT_SECRET];
    let out = app.cli_stdin(&token_cmd, "not-the-password");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert!(err.contains("wrong user name or password"), "{err}");
    let out = app.cli_stdin(&token_cmd, ADMIN_PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (status, body) = app.get("/user/profile", Some(&token)).await;
    assert_eq!(
        (status, &body["username"]),
        (200, &serde_json::json!("admin")),
        "{body}"
    );
}
