//! Sending one message to one channel over HTTP (ntfy, Gotify, webhook, Telegram, Discord,
//! Slack) or SMTP, and judging the answer: delivered, worth retrying (network trouble, 429,
//! 5xx) or failed for good (other 4xx, bad settings). Sentences name what failed — DNS, TLS,
//! connection refused, HTTP 401, timeout — and never contain a URL (tokens live in URLs).

use super::channel::{Hook, Ntfy, Target, Telegram, Webhook};
use super::render::Batch;
use super::{Severity, email};
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Whole-request limit for one delivery; a dead receiver costs its own worker this much, never
/// the other channels.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Discord refuses longer `content`.
const DISCORD_MAX_CHARS: usize = 2000;
/// How much of a refusing receiver's answer goes into the failure sentence.
const BODY_EXCERPT: usize = 160;
/// Header carrying the webhook body's HMAC-SHA256 (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-Rzmon-Signature";

/// Why a message did not go out.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Network trouble, 429 or 5xx: try again (after `after_ms` if the receiver said so).
    Retry {
        reason: String,
        after_ms: Option<i64>,
    },
    /// Refused for good (other 4xx, bad settings).
    Fatal(String),
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retry { reason, .. } | Failure::Fatal(reason) => reason,
        }
    }
}

/// Delivered: a short sentence like "HTTP 200".
pub type Outcome = Result<String, Failure>;

/// The HTTP client all channels share (connection pool, rustls with `ring`).
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Sender {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rzmon/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `batch` to `target`.
    pub async fn send(&self, target: &Target, batch: &Batch<'_>) -> Outcome {
        match target {
            Target::Ntfy(n) => self.ntfy(n, batch).await,
            Target::Gotify(g) => {
                let url = format!("{}/message", g.server.trim_end_matches('/'));
                let mut body = json!({
                    "title": batch.title(),
                    "message": batch.text(),
                    "priority": priority(batch, [2, 5, 8]),
                });
                if let Some(link) = batch.link() {
                    body["extras"] = json!({"client::notification": {"click": {"url": link}}});
                }
                let req = self
                    .http
                    .post(url)
                    .header("X-Gotify-Key", g.token.expose())
                    .json(&body);
                self.run(req).await
            }
            Target::Webhook(w) => self.webhook(w, batch).await,
            Target::Email(e) => email::send(e, batch).await,
            Target::Telegram(t) => self.telegram(t, batch).await,
            Target::Discord(h) => {
                let mut content = format!("**{}**\n{}", batch.title(), batch.text());
                if content.chars().count() > DISCORD_MAX_CHARS {
                    content = content
                        .chars()
                        .take(DISCORD_MAX_CHARS - 1)
                        .collect::<String>()
                        + "…";
                }
                self.hook(h, json!({"username": "rzmon", "content": content}))
                    .await
            }
            Target::Slack(h) => {
                let text = format!("*{}*\n{}", batch.title(), batch.text());
                self.hook(h, json!({"text": text})).await
            }
        }
    }

    async fn ntfy(&self, n: &Ntfy, batch: &Batch<'_>) -> Outcome {
        let mut tags = n.tags.clone();
        tags.push(
            match batch.severity() {
                None => "white_check_mark",
                Some(Severity::Warning) => "warning",
                Some(Severity::Critical) => "rotating_light",
            }
            .to_owned(),
        );
        let mut body = json!({
            "topic": n.topic,
            "title": batch.title(),
            "message": batch.text(),
            "priority": priority(batch, [3, 4, 5]),
            "tags": tags,
        });
        if let Some(click) = n.click.clone().or_else(|| batch.link()) {
            body["click"] = json!(click);
        }
        let mut req = self
            .http
            .post(format!("{}/", n.server.trim_end_matches('/')))
            .json(&body);
        if let Some(token) = &n.token {
            req = req.bearer_auth(token.expose());
        } else if let Some(user) = &n.username {
            req = req.basic_auth(user, n.password.as_ref().map(|p| p.expose()));
        }
        self.run(req).await
    }

    async fn webhook(&self, w: &Webhook, batch: &Batch<'_>) -> Outcome {
        let body = batch.webhook_body().to_string();
        let mut headers = HeaderMap::new();
        for (name, value) in &w.headers {
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(Failure::Fatal(format!("header {name:?} is not valid")));
            };
            headers.insert(n, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &w.hmac_key {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
                .map_err(|_| Failure::Fatal("the HMAC key cannot be used".into()))?;
            mac.update(body.as_bytes());
            let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            if let Ok(v) = HeaderValue::from_str(&sig) {
                headers.insert(SIGNATURE_HEADER, v);
            }
        }
        self.run(self.http.post(&w.url).headers(headers).body(body))
            .await
    }

    async fn telegram(&self, t: &Telegram, batch: &Batch<'_>) -> Outcome {
        let url = format!(
            "{}/bot{}/sendMessage",
            t.api_url.trim_end_matches('/'),
            t.token.expose()
        );
        let body = json!({
            "chat_id": t.chat_id,
            "text": format!("{}\n{}", batch.title(), batch.text()),
            "disable_web_page_preview": true,
        });
        self.run(self.http.post(url).json(&body)).await
    }

    async fn hook(&self, h: &Hook, body: Value) -> Outcome {
        self.run(self.http.post(h.url.expose()).json(&body)).await
    }

    /// Sends the request and judges the answer.
    async fn run(&self, req: reqwest::RequestBuilder) -> Outcome {
        let (client, req) = req.build_split();
        let req = req.map_err(|e| {
            Failure::Fatal(format!("the request cannot be built: {}", e.without_url()))
        })?;
        let host = host_of(req.url());
        let res = client.execute(req).await.map_err(|e| Failure::Retry {
            reason: describe(&e, &host),
            after_ms: None,
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        let header_wait = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let text = res.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Telegram: parameters.retry_after; Discord: retry_after (seconds, maybe fractional).
        let body_wait = answer["parameters"]["retry_after"]
            .as_f64()
            .or_else(|| answer["retry_after"].as_f64());
        let said = answer["description"]
            .as_str()
            .or_else(|| answer["message"].as_str())
            .or_else(|| answer["error"].as_str())
            .map_or_else(|| excerpt(&text), excerpt);
        let code = status.as_u16();
        let reason = match code {
            401 | 403 => format!("HTTP {code} from {host}: the token or password was refused"),
            _ if said.is_empty() => format!("HTTP {code} from {host}"),
            _ => format!("HTTP {code} from {host}: {said}"),
        };
        if code == 429 || status.is_server_error() {
            let after_ms = body_wait
                .or(header_wait)
                .map(|s| (s * 1000.0).ceil() as i64);
            Err(Failure::Retry { reason, after_ms })
        } else {
            Err(Failure::Fatal(reason))
        }
    }
}

/// ntfy / Gotify priority for the batch: `[resolved, warning, critical]`.
fn priority(batch: &Batch<'_>, p: [u8; 3]) -> u8 {
    match batch.severity() {
        None => p[0],
        Some(Severity::Warning) => p[1],
        Some(Severity::Critical) => p[2],
    }
}

fn host_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("the server");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

fn excerpt(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > BODY_EXCERPT {
        one_line.chars().take(BODY_EXCERPT).collect::<String>() + "…"
    } else {
        one_line
    }
}

/// One sentence for a transport error, naming DNS, TLS, refusal or timeout; no URL.
pub fn describe(e: &reqwest::Error, host: &str) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let all = chain.join(": ").to_lowercase();
    let last = chain.last().cloned().unwrap_or_default();
    if e.is_timeout() {
        format!("timed out talking to {host}")
    } else if all.contains("dns error")
        || all.contains("lookup address")
        || all.contains("name or service not known")
    {
        format!("DNS: cannot resolve {host}")
    } else if all.contains("connection refused") {
        format!("connection refused by {host}: is the server running?")
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!("TLS with {host} failed: {last}")
    } else if e.is_connect() {
        format!("cannot connect to {host}: {last}")
    } else {
        format!("request to {host} failed: {last}")
    }
}
