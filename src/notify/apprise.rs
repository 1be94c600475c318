//! `RZMON_NOTIFY_URLS`: channels written as Apprise-style URLs (`ntfy://`, `ntfys://`,
//! `gotify://`, `gotifys://`, `tgram://`, `mailto://`, `mailtos://`, `discord://`, `slack://`,
//! `json://`, `jsons://`), so a headless install needs no UI. Our own small parser: each URL
//! becomes a kind and the same settings object the API takes, validated the same way.

use super::channel::{Kind, Target};
use serde_json::{Map, Value, json};

/// One parsed URL: its kind and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub kind: Kind,
    pub settings: Value,
}

/// Parses the comma-separated list; the error names the entry by position and scheme only
/// (the URL itself may carry a token).
pub fn parse_list(list: &str) -> Result<Vec<Parsed>, String> {
    split_list(list)
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            parse(url).map_err(|e| {
                // Only the scheme: the rest of the entry may hold a token.
                let scheme = url.split_once("://").map_or("?", |(scheme, _)| scheme);
                format!("RZMON_NOTIFY_URLS entry {} ({scheme}://…): {e}", i + 1)
            })
        })
        .collect()
}

/// Splits at commas that start a new `scheme://` (a comma inside a query such as
/// `?to=a@x,b@x` stays in its URL).
fn split_list(list: &str) -> Vec<&str> {
    let starts_url = |rest: &str| {
        let rest = rest.trim_start();
        rest.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    };
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        if starts_url(&list[i + 1..]) {
            out.push(&list[start..i]);
            start = i + 1;
        }
    }
    out.push(&list[start..]);
    out.into_iter()
        .map(|s| s.trim_matches(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses one URL.
pub fn parse(url: &str) -> Result<Parsed, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected scheme://…, e.g. ntfys://ntfy.example.com/topic")?;
    let (kind, settings) = match scheme.to_ascii_lowercase().as_str() {
        "ntfy" | "ntfys" => (Kind::Ntfy, ntfy(scheme.ends_with('s'), rest)?),
        "gotify" | "gotifys" => (Kind::Gotify, gotify(scheme.ends_with('s'), rest)?),
        "tgram" => (Kind::Telegram, telegram(rest)?),
        "mailto" | "mailtos" => (Kind::Email, mail(scheme.ends_with('s'), rest)?),
        "discord" => {
            let [id, token] = segments::<2>(rest, "discord://webhook_id/webhook_token")?;
            let url = format!("https://discord.com/api/webhooks/{id}/{token}");
            (Kind::Discord, json!({ "url": url }))
        }
        "slack" => {
            let [a, b, c] = segments::<3>(rest, "slack://TokenA/TokenB/TokenC")?;
            let url = format!("https://hooks.slack.com/services/{a}/{b}/{c}");
            (Kind::Slack, json!({ "url": url }))
        }
        "json" | "jsons" => (Kind::Webhook, webhook(scheme.ends_with('s'), rest)?),
        other => return Err(format!("unknown scheme {other}://")),
    };
    Target::parse(kind, &settings)?;
    Ok(Parsed { kind, settings })
}

/// The pieces of `[user[:password]@]host[:port][/path][?query]`.
struct Parts {
    user: Option<String>,
    password: Option<String>,
    host: String,
    path: Vec<String>,
    query: Vec<(String, String)>,
}

fn split(rest: &str) -> Result<Parts, String> {
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
        Some((u, p)) => (Some(decode(u)), Some(decode(p)).filter(|p| !p.is_empty())),
        None => (None, None),
    };
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    Ok(Parts {
        user,
        password,
        host: host.to_owned(),
        path: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect(),
        query,
    })
}

fn segments<const N: usize>(rest: &str, shape: &str) -> Result<[String; N], String> {
    let parts: Vec<String> = rest
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    parts.try_into().map_err(|_| format!("expected {shape}"))
}

/// `%41` → `A`; anything malformed is kept as written.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base(tls: bool, host: &str) -> String {
    format!("{}://{host}", if tls { "https" } else { "http" })
}

fn query<'a>(p: &'a Parts, key: &str) -> Option<&'a str> {
    p.query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn ntfy(tls: bool, rest: &str) -> Result<Value, String> {
    let p = split(rest)?;
    let mut s = Map::new();
    match p.path.as_slice() {
        // ntfy://topic: the public server.
        [] => {
            s.insert("server".into(), json!("https://ntfy.sh"));
            s.insert("topic".into(), json!(p.host));
        }
        [topic] => {
            s.insert("server".into(), json!(base(tls, &p.host)));
            s.insert("topic".into(), json!(topic));
        }
        _ => return Err("expected ntfy://[token@]host[:port]/topic".into()),
    }
    match (&p.user, &p.password) {
        (Some(u), Some(pw)) => {
            s.insert("username".into(), json!(u));
            s.insert("password".into(), json!(pw));
        }
        (Some(token), None) => {
            s.insert("token".into(), json!(token));
        }
        _ => {}
    }
    if let Some(t) = query(&p, "token") {
        s.insert("token".into(), json!(t));
    }
    if let Some(tags) = query(&p, "tags") {
        s.insert("tags".into(), json!(tags.split(',').collect::<Vec<_>>()));
    }
    if let Some(click) = query(&p, "click") {
        s.insert("click".into(), json!(click));
    }
    Ok(Value::Object(s))
}

fn gotify(tls: bool, rest: &str) -> Result<Value, String> {
    let p = split(rest)?;
    let (token, prefix) = p
        .path
        .split_last()
        .ok_or("expected gotify://host[:port][/path]/token")?;
    let mut server = base(tls, &p.host);
    for seg in prefix {
        server.push('/');
        server.push_str(seg);
    }
    Ok(json!({ "server": server, "token": token }))
}

fn telegram(rest: &str) -> Result<Value, String> {
    // The bot token contains a colon, so this is no host:port: split by hand.
    let [token, chat] = segments::<2>(rest, "tgram://bot_token/chat_id")?;
    let chat_id = chat.parse::<i64>().map_or(json!(chat), |n| json!(n));
    Ok(json!({ "token": token, "chat_id": chat_id }))
}

fn mail(tls: bool, rest: &str) -> Result<Value, String> {
    let p = split(rest)?;
    let (host, port) = match p.host.rsplit_once(':') {
        Some((h, port)) => (
            h.to_owned(),
            Some(port.parse::<u16>().map_err(|_| "bad port")?),
        ),
        None => (p.host.clone(), None),
    };
    let security = query(&p, "security").unwrap_or(if tls { "tls" } else { "starttls" });
    let from = query(&p, "from")
        .map(str::to_owned)
        .unwrap_or_else(|| match &p.user {
            Some(u) if u.contains('@') => u.clone(),
            Some(u) => format!("{u}@{host}"),
            None => format!("rzmon@{host}"),
        });
    let to: Vec<&str> = query(&p, "to")
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    let to = if to.is_empty() {
        vec![from.as_str()]
    } else {
        to
    };
    let mut s = json!({ "host": host, "security": security, "from": from, "to": to });
    if let Some(port) = port {
        s["port"] = json!(port);
    }
    if let (Some(u), Some(pw)) = (&p.user, &p.password) {
        s["username"] = json!(u);
        s["password"] = json!(pw);
    }
    Ok(s)
}

fn webhook(tls: bool, rest: &str) -> Result<Value, String> {
    let p = split(rest)?;
    let mut url = base(tls, &p.host);
    url.push('/');
    url.push_str(&p.path.join("/"));
    // Apprise's `?+Header=value` adds a request header.
    let headers: Map<String, Value> = p
        .query
        .iter()
        .filter_map(|(k, v)| k.strip_prefix('+').map(|h| (h.to_owned(), json!(v))))
        .collect();
    let mut s = json!({ "url": url });
    if !headers.is_empty() {
        s["headers"] = Value::Object(headers);
    }
    if let Some(key) = query(&p, "hmac") {
        s["hmac_key"] = json!(key);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(url: &str) -> (Kind, Value) {
        let p = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (p.kind, p.settings)
    }

    #[test]
    fn each_scheme() {
        assert_eq!(
            one("ntfy://alerts").1,
            json!({"server": "https://ntfy.sh", "topic": "alerts"})
        );
        assert_eq!(
            one("ntfys://tk_abc@ntfy.example.com/rz?tags=fire,warning").1,
            json!({"server": "https://ntfy.example.com", "topic": "rz", "token": "tk_abc",
                   "tags": ["fire", "warning"]})
        );
        assert_eq!(
            one("ntfy://me:p%40ss@127.0.0.1:8081/rz").1,
            json!({"server": "http://127.0.0.1:8081", "topic": "rz", "username": "me", "password": "p@ss"})
        );
        assert_eq!(
            one("gotifys://push.example.com/sub/AbCdEf").1,
            json!({"server": "https://push.example.com/sub", "token": "AbCdEf"})
        );
        assert_eq!(
            one("tgram://123456:ABC-def/-1001234").1,
            json!({"token": "123456:ABC-def", "chat_id": -1001234})
        );
        assert_eq!(
            one("discord://111/tok").1,
            json!({"url": "https://discord.com/api/webhooks/111/tok"})
        );
        assert_eq!(
            one("json://127.0.0.1:9000/hook/in?+X-Token=abc").1,
            json!({"url": "http://127.0.0.1:9000/hook/in", "headers": {"X-Token": "abc"}})
        );
        assert_eq!(
            one("jsons://example.com/h").1["url"],
            "https://example.com/h"
        );
        let (kind, mail) =
            one("mailtos://ops:pw@smtp.example.com:465?to=a@example.com,b@example.com");
        assert_eq!(kind, Kind::Email);
        assert_eq!(mail["security"], "tls");
        assert_eq!(mail["port"], 465);
        assert_eq!(mail["from"], "ops@smtp.example.com");
        assert_eq!(mail["to"], json!(["a@example.com", "b@example.com"]));
        assert_eq!(mail["password"], "pw");
    }

    #[test]
    fn bad_entries_are_named_without_their_secret() {
        let e = parse_list("ntfy://ok, tgram://SECRETTOKEN").unwrap_err();
        assert!(e.contains("entry 2 (tgram://…)"), "{e}");
        assert!(!e.contains("SECRETTOKEN"), "{e}");
        assert!(
            parse("pagerduty://x")
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!(parse("no-scheme").is_err());
        assert!(parse("ntfy://host/a/b").is_err());
        assert_eq!(parse_list(" , ").unwrap(), vec![]);
        let two = parse_list("mailto://smtp.example.com?to=a@example.com,b@example.com, ntfy://t")
            .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(
            two[0].settings["to"],
            json!(["a@example.com", "b@example.com"])
        );
    }
}
