//! The dead man's switch: while rzmon is healthy it pings `RZMON_HEARTBEAT_URL` every
//! `RZMON_HEARTBEAT_INTERVAL` seconds (healthchecks.io / Uptime Kuma push style); when a health
//! check fails it calls the failure form instead (`<url>/fail`, or `status=down` for Uptime
//! Kuma), so something outside notices a dead or sick rzmon. Uptime Kuma 1.x answers only GET on
//! its push URLs, so those get a GET with everything in the query; healthchecks.io accepts HEAD,
//! GET and POST and gets a POST whose body carries the failure reason into its ping log.

use crate::health::{Check, Health};
use reqwest::Url;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Limit for one ping; a slow monitor must not pile up pings.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// An Uptime Kuma push URL (`.../api/push/<token>`): GET only, status in the query.
pub fn is_kuma(url: &Url) -> bool {
    url.path().contains("/api/push/")
}

/// The URL to call for a healthy (`None`) or sick (`Some(reason)`) rzmon.
pub fn ping_url(base: &Url, trouble: Option<&str>) -> Url {
    let mut url = base.clone();
    if is_kuma(base) {
        // Uptime Kuma: status and message in the query.
        let rest: Vec<(String, String)> = base
            .query_pairs()
            .filter(|(k, _)| k != "status" && k != "msg")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut q = url.query_pairs_mut();
        q.clear().extend_pairs(rest);
        match trouble {
            None => q.append_pair("status", "up").append_pair("msg", "OK"),
            Some(r) => q.append_pair("status", "down").append_pair("msg", r),
        };
    } else if trouble.is_some() {
        // healthchecks.io: the same URL with /fail appended.
        let path = format!("{}/fail", base.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url
}

/// What the health registry says: `Err(reasons)` while any check fails.
fn trouble(health: &Health) -> Result<(), String> {
    let failed: Vec<String> = health
        .snapshot()
        .into_iter()
        .filter_map(|(name, check)| match check {
            Check::Ok => None,
            Check::Failed(reason) => Some(format!("{name}: {reason}")),
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Pings until `stop`, reading the health registry before each ping.
pub async fn run(
    client: reqwest::Client,
    url: Url,
    interval: Duration,
    health: Health,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok: Option<bool> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let status = trouble(&health);
        let target = ping_url(&url, status.as_ref().err().map(String::as_str));
        let request = if is_kuma(&url) {
            client.get(target)
        } else {
            client
                .post(target)
                .body(status.as_ref().err().cloned().unwrap_or_default())
        };
        let sent = request
            .timeout(PING_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status().as_u16()))
                }
            });
        let ok = status.is_ok();
        if last_ok != Some(ok) {
            match &status {
                Ok(()) => tracing::info!("heartbeat: reporting healthy"),
                Err(r) => tracing::warn!(reason = %r, "heartbeat: reporting failure"),
            }
            last_ok = Some(ok);
        }
        if let Err(e) = sent {
            tracing::warn!(error = %e, "heartbeat ping failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_and_kuma_forms() {
        let hc = Url::parse("https://hc-ping.com/abc-123").unwrap();
        assert_eq!(ping_url(&hc, None).as_str(), "https://hc-ping.com/abc-123");
        assert_eq!(
            ping_url(&hc, Some("db")).as_str(),
            "https://hc-ping.com/abc-123/fail"
        );
        let kuma = Url::parse("http://kuma.lan:3001/api/push/Tok?status=up&msg=OK&ping=").unwrap();
        assert_eq!(
            ping_url(&kuma, Some("database failing")).as_str(),
            "http://kuma.lan:3001/api/push/Tok?ping=&status=down&msg=database+failing"
        );
        assert_eq!(
            ping_url(&kuma, None).as_str(),
            "http://kuma.lan:3001/api/push/Tok?ping=&status=up&msg=OK"
        );
    }
}
