//! README.md's command blocks, run as written: the quick start's first start, "Try it without
//! hardware" and "Adding a device", extracted from README.md and run by bash (`set -euo
//! pipefail`) in a fresh folder, with `rzmon` on the PATH as the README says. The only
//! substitution is the server's address (free ports instead of 8080/1883, so parallel tests and
//! a server you run yourself do not collide).

use crate::util::BIN;
use std::path::Path;
use std::process::Command;

/// The ```sh blocks of the section that starts with `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let section = &readme[start + heading.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|b| b[..b.find("```").expect("closed block")].to_owned())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Regression: the README's "try it" set RZMON_ADMIN_PASSWORD after the first start (ignored),
/// stored `{"error":...}` as the token and showed two consecutive `device add` of one id.
#[test]
fn readme_blocks_work_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let quick = sh_blocks(&readme, "## Quick start");
    assert!(
        quick[0].contains("cargo run --release"),
        "quick start: {quick:?}"
    );
    let path_block = quick
        .iter()
        .find(|b| b.contains("export PATH"))
        .expect("the block that puts rzmon on the PATH");
    let try_it = sh_blocks(&readme, "## Try it without hardware");
    let add = sh_blocks(&readme, "## Adding a device (ESP32)");
    assert!(try_it.len() >= 2 && !add.is_empty());

    let (http, mqtt) = (free_port(), free_port());
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    // The quick start's `cargo run --release` is the built binary's first start.
    let first_start = "rzmon serve & first=$!\n\
        until curl -sf localhost:8080/health >/dev/null; do sleep 0.2; done\n\
        kill $first; wait $first\n";
    let script = [
        path_block.replace("$PWD/target/release", &bin_dir),
        first_start.to_owned(),
        try_it.join("\n"),
        add.join("\n"),
    ]
    .join("\n")
    .replace("localhost:8080", &format!("127.0.0.1:{http}"));

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RZMON_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("RZMON_MQTT_ADDR", format!("127.0.0.1:{mqtt}"))
        .env("RZMON_SIM_BROKER", format!("127.0.0.1:{mqtt}"))
        .current_dir(dir.path())
        .output()
        .expect("bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "README blocks failed ({}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains("\"devices\""), "{stdout}");
    assert!(
        stdout.contains("\"config\""),
        "getConfig answered: {stdout}"
    );
    assert!(
        stdout.contains("\"password\""),
        "device add --json: {stdout}"
    );
}
