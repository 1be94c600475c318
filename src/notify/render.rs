//! What a message says: a title and a plain text for phones and mail, and the versioned webhook
//! body (the Alertmanager webhook v4 shape, so receivers written for it work unchanged). One
//! [`Batch`] is one message: a single notice, a group, or a storm-cap summary.

use super::{Notice, NoticeKind, Severity};
use crate::model::format_ts;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Alerts listed at most in one text message (the rest are counted).
const MAX_LINES: usize = 20;
/// Alerts in one webhook body at most (Alertmanager's `truncatedAlerts` counts the rest).
const MAX_WEBHOOK_ALERTS: usize = 100;
/// The webhook body's `version`: Alertmanager's, whose shape it follows.
pub const WEBHOOK_VERSION: &str = "4";
/// Alertmanager's zero time for an alert that has not ended.
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// One message to send.
pub struct Batch<'a> {
    pub notices: &'a [Notice],
    /// A storm-cap summary of notices held back.
    pub summary: bool,
    pub channel_id: i64,
    pub channel_name: &'a str,
    /// The dashboard's public base URL, for links.
    pub public_url: Option<&'a str>,
    /// Times in the text are shown in this zone (`RZMON_TIMEZONE` or the server's); the
    /// webhook body keeps UTC, as Alertmanager's does.
    pub time_zone: &'a TimeZone,
}

impl Batch<'_> {
    /// The highest severity among the notices that are not resolved (resolved ones are quiet).
    pub fn severity(&self) -> Option<Severity> {
        self.notices
            .iter()
            .filter(|n| n.kind != NoticeKind::Resolved)
            .map(|n| n.severity)
            .max()
    }

    /// Whether every notice announces a recovery.
    pub fn all_resolved(&self) -> bool {
        self.notices.iter().all(|n| n.kind == NoticeKind::Resolved)
    }

    /// The dashboard's alert page, if the public URL is known.
    pub fn link(&self) -> Option<String> {
        self.public_url
            .map(|u| format!("{}/#/alerts", u.trim_end_matches('/')))
    }

    pub fn title(&self) -> String {
        match self.notices {
            _ if self.summary => format!(
                "rzmon: {} notifications held back by the storm cap",
                self.notices.len()
            ),
            [n] => format!("{} {}", tag(n), subject(n)),
            many => {
                let firing = many
                    .iter()
                    .filter(|n| n.kind != NoticeKind::Resolved)
                    .count();
                let resolved = many.len() - firing;
                format!("rzmon: {firing} firing, {resolved} resolved")
            }
        }
    }

    /// The message text: one line per notice, then the link.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.summary {
            out.push_str("More notifications than this channel's storm cap allows; in short:\n");
        }
        for n in self.notices.iter().take(MAX_LINES) {
            out.push_str(&line(n, self.time_zone));
            out.push('\n');
        }
        if self.notices.len() > MAX_LINES {
            out.push_str(&format!("… and {} more\n", self.notices.len() - MAX_LINES));
        }
        if let Some(link) = self.link() {
            out.push_str(&link);
            out.push('\n');
        }
        out.trim_end().to_owned()
    }

    /// The webhook JSON body (documented in README, `version` "4").
    pub fn webhook_body(&self) -> Value {
        let alerts: Vec<Value> = self
            .notices
            .iter()
            .take(MAX_WEBHOOK_ALERTS)
            .map(|n| webhook_alert(n, self.link()))
            .collect();
        let labels: Vec<BTreeMap<String, String>> = self.notices.iter().map(labels).collect();
        let common = labels.first().map_or_else(BTreeMap::new, |first| {
            first
                .iter()
                .filter(|(k, v)| labels.iter().all(|l| l.get(*k) == Some(v)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        json!({
            "version": WEBHOOK_VERSION,
            "groupKey": format!("rzmon/channel/{}", self.channel_id),
            "truncatedAlerts": self.notices.len().saturating_sub(MAX_WEBHOOK_ALERTS),
            "status": if self.all_resolved() { "resolved" } else { "firing" },
            "receiver": self.channel_name,
            "groupLabels": {},
            "commonLabels": common,
            "commonAnnotations": if self.summary { json!({"summary": self.title()}) } else { json!({}) },
            "externalURL": self.public_url.unwrap_or(""),
            "alerts": alerts,
        })
    }
}

fn tag(n: &Notice) -> &'static str {
    match (n.kind, n.severity) {
        (NoticeKind::Resolved, _) => "[RESOLVED]",
        (NoticeKind::Reminder, _) => "[REMINDER]",
        (NoticeKind::Firing, Severity::Critical) => "[CRITICAL]",
        (NoticeKind::Firing, Severity::Warning) => "[WARNING]",
    }
}

fn subject(n: &Notice) -> String {
    match &n.device {
        Some(d) => format!("{} on {}", n.rule_name, d.as_str()),
        None => n.rule_name.clone(),
    }
}

fn line(n: &Notice, tz: &TimeZone) -> String {
    let when = match n.kind {
        NoticeKind::Resolved => format!("resolved {}", local_time(n.at_ms, tz)),
        _ => format!("since {}", local_time(n.started_ms, tz)),
    };
    format!("{} {} ({when})", tag(n), n.summary)
}

/// `2026-12-02 03:04:05 CET`: what a person reading the phone at night expects.
fn local_time(ms: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| format_ts(ms),
        |t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}

fn labels(n: &Notice) -> BTreeMap<String, String> {
    let mut l = n.labels.clone();
    l.insert("alertname".into(), n.rule_name.clone());
    l.insert("severity".into(), severity_name(n.severity).into());
    l.insert("rule_id".into(), n.rule_id.to_string());
    if let Some(d) = &n.device {
        l.insert("device".into(), d.as_str().to_owned());
    }
    l
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

pub fn kind_name(k: NoticeKind) -> &'static str {
    match k {
        NoticeKind::Firing => "firing",
        NoticeKind::Reminder => "reminder",
        NoticeKind::Resolved => "resolved",
    }
}

fn webhook_alert(n: &Notice, link: Option<String>) -> Value {
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(n.summary));
    annotations.insert("notice".into(), json!(kind_name(n.kind)));
    if let Some(v) = n.value {
        annotations.insert("value".into(), json!(v.to_string()));
    }
    if let Some(t) = n.threshold {
        annotations.insert("threshold".into(), json!(t.to_string()));
    }
    let resolved = n.kind == NoticeKind::Resolved;
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": labels(n),
        "annotations": annotations,
        "startsAt": format_ts(n.started_ms),
        "endsAt": if resolved { format_ts(n.at_ms) } else { NOT_ENDED.to_owned() },
        "generatorURL": link.unwrap_or_default(),
        "fingerprint": format!("{:016x}", n.alert_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind) -> Notice {
        Notice {
            alert_id: 1,
            kind,
            rule_id: 2,
            rule_name: "Temperature high".into(),
            device: crate::model::DeviceId::parse("esp32-1"),
            severity: Severity::Critical,
            summary: "esp32-1: temperature 36.2 °C ≥ 35 °C".into(),
            value: Some(36.2),
            threshold: Some(35.0),
            // 2026-12-02T02:00:00Z and 02:30Z
            started_ms: 1_796_176_800_000,
            at_ms: 1_796_178_600_000,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn text_times_are_local_and_the_webhook_keeps_utc() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let firing = [notice(NoticeKind::Firing)];
        let batch = Batch {
            notices: &firing,
            summary: false,
            channel_id: 3,
            channel_name: "Phone",
            public_url: Some("http://rz.local:8080/"),
            time_zone: &tz,
        };
        assert_eq!(
            batch.text(),
            "[CRITICAL] esp32-1: temperature 36.2 °C ≥ 35 °C (since 2026-12-02 03:00:00 CET)\n\
             http://rz.local:8080/#/alerts"
        );
        assert_eq!(
            batch.webhook_body()["alerts"][0]["startsAt"],
            "2026-12-02T02:00:00.000Z"
        );
        let resolved = [notice(NoticeKind::Resolved)];
        let batch = Batch {
            notices: &resolved,
            ..batch
        };
        assert!(batch.text().contains("(resolved 2026-12-02 03:30:00 CET)"));
    }
}
