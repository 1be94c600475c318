//! `GET /metrics`: the Prometheus text format (0.0.4) checked by a strict line grammar,
//! per-device gauges after real telemetry, and its authentication.

use crate::util::{SOON, TestApp, wait_until};
use std::collections::HashMap;

const METRICS_TOKEN: &str = "scrape-token-0123456789";

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{k="v",...}` with `\\`, `\"`, `\n` escapes; returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(HashMap<String, String>, &str), String> {
    let mut labels = HashMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let (key, r) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the whole exposition strictly: every line is `# HELP`, `# TYPE` or a sample; a
/// family's TYPE comes before its samples and once; counters end in `_total`; histogram
/// samples are `_bucket`/`_sum`/`_count` of a declared histogram.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !is_name(name) {
                return Err(err("bad metric name".into()));
            }
            match (kw, parts.next()) {
                ("HELP", _) => {}
                ("TYPE", Some(t @ ("counter" | "gauge" | "histogram" | "summary" | "untyped"))) => {
                    if t == "counter" && !name.ends_with("_total") {
                        return Err(err("counter without _total".into()));
                    }
                    if types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(err("TYPE twice".into()));
                    }
                }
                _ => return Err(err("unknown comment line".into())),
            }
            continue;
        }
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (HashMap::new(), &line[name_end..])
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value".into()))?;
        let value = parse_value(value.split(' ').next().unwrap_or("")).map_err(err)?;
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(err("sample before its TYPE".into()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn value(samples: &[Sample], name: &str, device: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("device").is_some_and(|d| d == device))
        .map(|s| s.value)
}

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String, String) {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("GET /metrics");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ctype, res.text().await.expect("body"))
}

/// A scrape with the metrics token parses strictly and carries the device's gauges after its
/// telemetry, the message counters by kind, the HTTP counters and the process figures.
#[tokio::test]
async fn metrics_are_prometheus_text_with_device_gauges() {
    let app = TestApp::start_with(&[("RZMON_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let token = app.login().await;
    let device = app.device("rack-1").await;
    device
        .publish("telemetry", r#"{"tmp": 23.5, "lf": 41.0, "locked": true}"#)
        .await;
    assert!(app.wait_rows(&token, "rack-1", 1).await);

    let (status, ctype, text) = scrape(&app, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        value(&samples, "rzmon_temperature_celsius", "rack-1"),
        Some(23.5)
    );
    assert_eq!(
        value(&samples, "rzmon_humidity_percent", "rack-1"),
        Some(41.0)
    );
    assert_eq!(value(&samples, "rzmon_door_locked", "rack-1"), Some(1.0));
    assert_eq!(value(&samples, "rzmon_device_online", "rack-1"), Some(1.0));
    let seen = value(
        &samples,
        "rzmon_device_last_seen_timestamp_seconds",
        "rack-1",
    )
    .expect("last seen");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - seen).abs() < 60.0, "last seen {seen}, now {now}");
    let find = |name: &str, label: (&str, &str)| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.get(label.0).is_some_and(|v| v == label.1))
    };
    assert!(
        find("rzmon_messages_accepted_total", ("kind", "telemetry"))
            .is_some_and(|s| s.value >= 1.0),
        "{text}"
    );
    assert!(
        find("rzmon_http_requests_total", ("route", "/data")).is_some(),
        "{text}"
    );
    assert!(
        find(
            "rzmon_http_request_duration_seconds_bucket",
            ("route", "/data")
        )
        .is_some()
    );
    for name in [
        "rzmon_store_committed_rows_total",
        "rzmon_store_commit_seconds_count",
        "rzmon_uptime_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            samples.iter().any(|s| s.name == name && s.value > 0.0),
            "{name}\n{text}"
        );
    }

    // The lock gauge follows the newest reading.
    device
        .publish("telemetry", r#"{"tmp": 24.0, "locked": false}"#)
        .await;
    assert!(
        wait_until(SOON, || async {
            let (_, _, text) = scrape(&app, Some(METRICS_TOKEN)).await;
            let samples = parse(&text).expect("parses");
            value(&samples, "rzmon_door_locked", "rack-1") == Some(0.0)
        })
        .await
    );
}

/// Without a token, with a wrong one or a malformed header: 401; a dashboard login works.
#[tokio::test]
async fn metrics_refuse_without_the_token() {
    let app = TestApp::start_with(&[("RZMON_METRICS_TOKEN", METRICS_TOKEN)]).await;
    for token in [None, Some("wrong-token-0123456789")] {
        let (status, _, body) = scrape(&app, token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(!body.contains("rzmon_"), "{body}");
    }
    let token = app.login().await;
    let (status, ctype, _) = scrape(&app, Some(&token)).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"));
}

/// The sum of every sample of `name` (over all label sets) in a scrape with a login `token`.
pub async fn metric_sum(app: &TestApp, token: &str, name: &str) -> f64 {
    let (status, _, text) = scrape(app, Some(token)).await;
    assert_eq!(status, 200, "{text}");
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}
