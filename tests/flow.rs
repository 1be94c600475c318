//! The flow runs one way (DESIGN.md): lower parts never import upper ones, and only `app`
//! (and the binary, through `rzmon::app`) knows every part. This walks `src/` and fails on any
//! `crate::…` path — grouped imports like `crate::{api, store}` included — against the rules
//! below (those of the before-stop hook, plus `crate::app` outside `src/app`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (files of a part, the top-level modules it must not name). A part that does not exist yet
/// is skipped; a path ending in `/` is a directory.
const RULES: &[(&str, &[&str])] = &[
    (
        "src/store/",
        &[
            "api", "broker", "ingest", "commands", "app", "alerts", "notify",
        ],
    ),
    ("src/model.rs", &["*"]),
    ("src/hub.rs", &["api", "store", "broker", "ingest"]),
    ("src/broker/", &["store", "api"]),
    ("src/ingest/", &["api", "alerts", "notify"]),
    ("src/alerts/", &["api", "app"]),
    ("src/notify/", &["api", "app", "ingest", "broker"]),
    ("src/api/", &["app", "admin"]),
    ("src/admin.rs", &["app"]),
    ("src/commands/", &["api", "app"]),
    (
        "src/lifecycle/",
        &["api", "app", "admin", "broker", "ingest", "commands"],
    ),
    // Integrations read the store and the hub; they never reach into ingest or the broker.
    ("src/ha/", &["api", "app", "admin", "broker", "ingest"]),
    (
        "src/bridge/",
        &["api", "app", "admin", "broker", "ingest", "ha"],
    ),
    // The external broker's client feeds ingest's queue like the gate; it never reaches up.
    (
        "src/external/",
        &[
            "api", "app", "admin", "ingest", "alerts", "notify", "ha", "bridge",
        ],
    ),
    (
        "src/mqtt_url.rs",
        &["api", "app", "store", "broker", "ingest", "ha"],
    ),
    ("src/", &["app"]),
];

/// Where `crate::app` may appear: the module itself.
const APP_DIR: &str = "src/app/";

/// Top-level modules named by `crate::` paths in `code` (line comments removed).
fn crate_modules(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(first_ident(&item));
        } else {
            out.insert(first_ident(rest_trim));
        }
    }
    out.remove("");
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import against the flow, as "file names module (rule part)".
fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        let named = crate_modules(&std::fs::read_to_string(&file).expect("read file"));
        for (part, banned) in RULES {
            let applies = if part.ends_with('/') {
                rel.starts_with(part)
            } else {
                rel == *part
            };
            if !applies {
                continue;
            }
            for m in &named {
                let app_inside = m == "app" && rel.starts_with(APP_DIR);
                if !app_inside && (banned.contains(&"*") || banned.contains(&m.as_str())) {
                    found.push(format!("{rel} names crate::{m} (rule for {part})"));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_import_runs_against_the_flow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = violations(root);
    assert!(
        found.is_empty(),
        "imports against the flow:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_and_nested_imports() {
    let code = "use crate::{api::{self, x}, store::Store};\n// crate::admin in a comment\nlet a = crate::app::open();\nuse crate::model;";
    let named: Vec<_> = crate_modules(code).into_iter().collect();
    assert_eq!(named, ["api", "app", "model", "store"]);
    // And the walk really reports: a file of the store naming the API.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/store")).unwrap();
    std::fs::write(
        dir.path().join("src/store/bad.rs"),
        "use crate::{model, api::Context};",
    )
    .unwrap();
    let found = violations(dir.path());
    assert_eq!(
        found,
        ["src/store/bad.rs names crate::api (rule for src/store/)"]
    );
}
