//! What a channel is: its kind and the typed, validated settings of each kind (server URLs,
//! topics, addresses, secrets). Parsing a settings object either yields a [`Target`] ready to
//! send to, or a sentence naming the field that is wrong.

use crate::config::Secret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// The kinds of channel rzmon can deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ntfy,
    Gotify,
    Webhook,
    Email,
    Telegram,
    Discord,
    Slack,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Ntfy,
        Kind::Gotify,
        Kind::Webhook,
        Kind::Email,
        Kind::Telegram,
        Kind::Discord,
        Kind::Slack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Webhook => "webhook",
            Kind::Email => "email",
            Kind::Telegram => "telegram",
            Kind::Discord => "discord",
            Kind::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Settings that are write-only in the API (answered as `"***"`) and never logged.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Ntfy => &["token", "password"],
            Kind::Gotify | Kind::Telegram => &["token"],
            Kind::Webhook => &["headers", "hmac_key"],
            Kind::Email => &["password"],
            Kind::Discord | Kind::Slack => &["url"],
        }
    }
}

/// `POST <server>` with a JSON body (ntfy's "publish as JSON"), Bearer token or Basic auth.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ntfy {
    #[serde(default = "ntfy_default_server")]
    pub server: String,
    pub topic: String,
    pub token: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub click: Option<String>,
}

fn ntfy_default_server() -> String {
    "https://ntfy.sh".to_owned()
}

/// `POST <server>/message` with `X-Gotify-Key`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gotify {
    pub server: String,
    pub token: Secret,
}

/// A JSON body in the Alertmanager webhook shape, optionally signed.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub hmac_key: Option<Secret>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refuses to go on without TLS.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or LAN.
    None,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// A certificate authority (PEM) trusted besides the public ones, for a relay with a
    /// private or self-signed certificate.
    pub ca: Option<String>,
}

impl Email {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }
}

/// `POST <api_url>/bot<token>/sendMessage`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    pub token: Secret,
    pub chat_id: Value,
    #[serde(default = "telegram_default_api")]
    pub api_url: String,
}

fn telegram_default_api() -> String {
    "https://api.telegram.org".to_owned()
}

/// An incoming-webhook URL (Discord, Slack); the URL itself is the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub url: Secret,
}

/// A channel's validated settings.
#[derive(Clone)]
pub enum Target {
    Ntfy(Ntfy),
    Gotify(Gotify),
    Webhook(Webhook),
    Email(Email),
    Telegram(Telegram),
    Discord(Hook),
    Slack(Hook),
}

impl Target {
    /// Parses and validates `settings` for `kind`; the error names the field.
    pub fn parse(kind: Kind, settings: &Value) -> Result<Target, String> {
        let t = match kind {
            Kind::Ntfy => {
                let n: Ntfy = typed(settings)?;
                http_url("settings.server", &n.server)?;
                topic(&n.topic)?;
                if let Some(c) = &n.click {
                    http_url("settings.click", c)?;
                }
                if n.token.is_some() && n.username.is_some() {
                    return Err("settings: give either token or username/password, not both".into());
                }
                Target::Ntfy(n)
            }
            Kind::Gotify => {
                let g: Gotify = typed(settings)?;
                http_url("settings.server", &g.server)?;
                not_empty("settings.token", g.token.expose())?;
                Target::Gotify(g)
            }
            Kind::Webhook => {
                let w: Webhook = typed(settings)?;
                http_url("settings.url", &w.url)?;
                for (name, value) in &w.headers {
                    let ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                        && reqwest::header::HeaderValue::from_str(value).is_ok();
                    if !ok {
                        return Err(format!(
                            "settings.headers: {name:?} is not a valid header name with a printable ASCII value"
                        ));
                    }
                }
                Target::Webhook(w)
            }
            Kind::Email => Target::Email(email(settings)?),
            Kind::Telegram => {
                let t: Telegram = typed(settings)?;
                http_url("settings.api_url", &t.api_url)?;
                let token = t.token.expose();
                if token.is_empty() || token.contains(['/', '?', '#', ' ']) {
                    return Err("settings.token must be a bot token like 123456:ABC-DEF…".into());
                }
                let chat_ok = match &t.chat_id {
                    Value::Number(n) => n.is_i64(),
                    Value::String(s) => !s.trim().is_empty(),
                    _ => false,
                };
                if !chat_ok {
                    return Err("settings.chat_id must be a chat id (number) or @channel".into());
                }
                Target::Telegram(t)
            }
            Kind::Discord | Kind::Slack => {
                let h: Hook = typed(settings)?;
                http_url("settings.url", h.url.expose())?;
                if kind == Kind::Discord {
                    Target::Discord(h)
                } else {
                    Target::Slack(h)
                }
            }
        };
        Ok(t)
    }
}

fn typed<T: DeserializeOwned>(settings: &Value) -> Result<T, String> {
    if !settings.is_object() {
        return Err("settings must be a JSON object".into());
    }
    serde_json::from_value(settings.clone()).map_err(|e| format!("settings: {e}"))
}

fn not_empty(field: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else {
        Ok(())
    }
}

/// An absolute `http://` or `https://` URL with a host; anything else (other schemes,
/// garbage) is refused with the field's name.
pub fn http_url(field: &str, s: &str) -> Result<reqwest::Url, String> {
    let bad = || {
        format!("{field} must be an http:// or https:// URL with a host, like https://example.com")
    };
    let url = reqwest::Url::parse(s.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(url)
}

/// ntfy's topic rule: 1–64 of `A-Z a-z 0-9 _ -`.
fn topic(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("settings.topic must be 1-64 characters of A-Z a-z 0-9 _ -".into())
    }
}

fn email(settings: &Value) -> Result<Email, String> {
    let e: Email = typed(settings)?;
    let host_ok = !e.host.is_empty()
        && e.host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if !host_ok {
        return Err("settings.host must be a host name or address, like smtp.example.com".into());
    }
    if e.port == Some(0) {
        return Err("settings.port must be 1-65535".into());
    }
    e.from
        .parse::<lettre::message::Mailbox>()
        .map_err(|_| "settings.from must be an e-mail address".to_owned())?;
    if e.to.is_empty() {
        return Err("settings.to must list at least one e-mail address".into());
    }
    for to in &e.to {
        to.parse::<lettre::message::Mailbox>()
            .map_err(|_| format!("settings.to: {to:?} is not an e-mail address"))?;
    }
    if let Some(ca) = &e.ca {
        let pem = ca.trim_start();
        use lettre::transport::smtp::client::{Certificate, TlsParameters};
        // Building the TLS settings parses the certificate itself, not only its PEM armour.
        let usable = pem.starts_with("-----BEGIN CERTIFICATE-----")
            && Certificate::from_pem(pem.as_bytes()).is_ok_and(|c| {
                TlsParameters::builder(e.host.clone())
                    .add_root_certificate(c)
                    .build_rustls()
                    .is_ok()
            });
        if !usable {
            return Err(
                "settings.ca must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)".into(),
            );
        }
        if e.security == Security::None {
            return Err("settings.ca needs settings.security starttls or tls".into());
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_urls_name_the_field() {
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "ftp://x/y",
            "garbage",
            "http://",
            "",
        ] {
            let e = Target::parse(Kind::Gotify, &json!({"server": bad, "token": "t"}))
                .err()
                .unwrap();
            assert!(e.contains("settings.server"), "{bad}: {e}");
        }
        let e = Target::parse(Kind::Discord, &json!({"url": "gopher://x"}))
            .err()
            .unwrap();
        assert!(e.contains("settings.url"), "{e}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let e = Target::parse(Kind::Ntfy, &json!({"tpoic": "x"}))
            .err()
            .unwrap();
        assert!(e.contains("tpoic"), "{e}");
        let e = Target::parse(Kind::Email, &json!({"host": "h", "from": "a@b.c"}))
            .err()
            .unwrap();
        assert!(e.contains("to"), "{e}");
        let e = Target::parse(
            Kind::Email,
            &json!({"host": "h", "from": "nope", "to": ["a@b.c"]}),
        )
        .err()
        .unwrap();
        assert!(e.contains("settings.from"), "{e}");
        for (ca, security) in [
            ("not a certificate", "starttls"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "tls",
            ),
        ] {
            let e = Target::parse(
                Kind::Email,
                &json!({"host": "h", "from": "a@b.c", "to": ["a@b.c"], "security": security, "ca": ca}),
            )
            .err()
            .unwrap();
            assert!(e.contains("settings.ca"), "{e}");
        }
        let e = Target::parse(Kind::Telegram, &json!({"token": "1:A", "chat_id": true}))
            .err()
            .unwrap();
        assert!(e.contains("settings.chat_id"), "{e}");
    }

    #[test]
    fn good_settings_parse() {
        assert!(Target::parse(Kind::Ntfy, &json!({"topic": "rz-alerts", "token": "tk_x"})).is_ok());
        assert!(
            Target::parse(
                Kind::Email,
                &json!({"host": "127.0.0.1", "port": 2525, "security": "none",
                        "from": "rzmon <rz@example.com>", "to": ["ops@example.com"]})
            )
            .is_ok()
        );
        assert!(Target::parse(Kind::Telegram, &json!({"token": "1:A", "chat_id": -100})).is_ok());
    }
}
