//! The upstream bridge (`RZMON_BRIDGE_URL`): a background service that forwards every stored
//! telemetry row, incident (alerts are incidents `alert:<rule>`) and access event as JSON,
//! QoS 1, to another broker under `RZMON_BRIDGE_PREFIX`. It reads the database by a persisted
//! cursor that moves only over rows the upstream broker acknowledged, so an outage or a restart
//! loses nothing: after reconnecting it catches up in order at `RZMON_BRIDGE_RATE` messages/s.
//! Delivery is at least once (a row whose PUBACK was lost is sent again); every message
//! carries its `source` and `id`, so a receiver can drop repeats.

mod window;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::format_ts;
use crate::mqtt_url::BrokerUrl;
use crate::store::{BridgeRow, Source, Store};
use anyhow::Context;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use window::Window;

/// The health check this service keeps.
pub const CHECK: &str = "bridge";
/// Rows in flight (published, not yet acknowledged); also the client's inflight limit.
const WINDOW: usize = 100;
/// Pacing tick: each tick may publish `rate / TICKS_PER_SECOND` rows.
const TICK: Duration = Duration::from_millis(50);
const TICKS_PER_SECOND: u32 = 20;
/// The cursor and lag are written/measured at most this often.
const PERSIST_EVERY: Duration = Duration::from_millis(500);
/// Pause between connection attempts.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Settings of the bridge.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    pub broker: BrokerUrl,
    /// First topic level upstream: `<prefix>/<device>/<telemetry|incident|alert|access>`.
    pub prefix: String,
    /// Most messages per second (catch-up after an outage is paced by it).
    pub rate: u32,
    pub client_id: String,
}

/// What the bridge uses.
#[derive(Clone)]
pub struct BridgeDeps {
    pub settings: BridgeSettings,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

/// The topic and JSON body of one stored row.
pub fn message(prefix: &str, row: &BridgeRow) -> (String, String) {
    let data: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
    let mut body = json!({
        "source": row.source.as_str(),
        "id": row.id,
        "device": row.device,
        "timestamp": format_ts(row.ts_ms),
        "data": data,
    });
    let kind = match row.source {
        Source::Telemetry => "telemetry",
        Source::Incident => {
            let t = row.kind.as_deref().unwrap_or("");
            body["type"] = t.into();
            if t.starts_with("alert:") {
                "alert"
            } else {
                "incident"
            }
        }
        Source::Access => {
            if let Some((id, granted)) = &row.access {
                body["access_id"] = id.as_str().into();
                body["granted"] = (*granted).into();
            }
            "access"
        }
    };
    // System alerts have no device; they get a level of their own.
    let device = if row.device.is_empty() {
        "_system"
    } else {
        &row.device
    };
    (format!("{prefix}/{device}/{kind}"), body.to_string())
}

/// What a connection reports to the forwarding loop.
enum Link {
    Connected,
    Sent(u16),
    Acked(u16),
    Lost(String),
}

/// Runs until `stop`; an unreachable upstream is retried (and shown in `/health`), never fatal.
pub async fn run(deps: BridgeDeps, stop: CancellationToken) -> anyhow::Result<()> {
    let store = deps.store.clone();
    let cursor = tokio::task::spawn_blocking(move || store.bridge_cursor())
        .await?
        .context("cannot read the bridge cursor")?;
    let mut window = Window::new(cursor);
    let mut down_since: Option<Instant> = None;
    loop {
        let mut connected = false;
        let outcome = connection(&deps, &mut window, &mut connected, &stop).await;
        persist(&deps, &window).await?;
        let Err(reason) = outcome else {
            return Ok(());
        };
        if connected {
            down_since = None;
        }
        let since = *down_since.get_or_insert_with(Instant::now);
        if connected || since.elapsed() < RETRY_AFTER {
            tracing::warn!(broker = %deps.settings.broker.address(), %reason, "upstream bridge disconnected; retrying");
        }
        let lag = deps.metrics.bridge_lag_rows.get();
        deps.health.set_failed(
            CHECK,
            format!(
                "upstream broker {} unreachable for {} s ({reason}); {lag} rows waiting",
                deps.settings.broker.address(),
                since.elapsed().as_secs()
            ),
        );
        window.reset();
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// One connection: forwards until it is lost (`Err(reason)`) or `stop` (`Ok`).
async fn connection(
    deps: &BridgeDeps,
    window: &mut Window,
    connected: &mut bool,
    stop: &CancellationToken,
) -> Result<(), String> {
    let s = &deps.settings;
    let mut opts = s
        .broker
        .options(&s.client_id)
        .map_err(|e| format!("{e:#}"))?;
    opts.set_inflight(WINDOW as u16);
    let (client, mut eventloop) = AsyncClient::new(opts, WINDOW * 2);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(async move {
        loop {
            let link = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => Link::Connected,
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Link::Sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(a))) => Link::Acked(a.pkid),
                Ok(_) => continue,
                Err(e) => Link::Lost(e.to_string()),
            };
            let lost = matches!(link, Link::Lost(_));
            if tx.send(link).is_err() || lost {
                return;
            }
        }
    });
    let result = forward(deps, &client, &mut rx, window, connected, stop).await;
    if result.is_ok() {
        // Give the last acknowledgements a moment; the cursor keeps what arrived.
        let _ = client.try_disconnect();
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                link = rx.recv() => match link {
                    Some(Link::Sent(pkid)) => window.sent(pkid),
                    Some(Link::Acked(pkid)) => ack(deps, window, pkid),
                    Some(Link::Connected) => {}
                    Some(Link::Lost(_)) | None => break,
                },
            }
        }
    }
    poller.abort();
    result
}

fn ack(deps: &BridgeDeps, window: &mut Window, pkid: u16) {
    if window.acked(pkid) {
        deps.metrics.bridge_forwarded.inc();
    }
}

async fn forward(
    deps: &BridgeDeps,
    client: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Link>,
    window: &mut Window,
    connected: &mut bool,
    stop: &CancellationToken,
) -> Result<(), String> {
    let per_tick = (deps.settings.rate / TICKS_PER_SECOND).max(1) as usize;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_persist = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            link = rx.recv() => match link {
                Some(Link::Connected) => {
                    tracing::info!(broker = %deps.settings.broker.address(), "upstream bridge connected");
                    *connected = true;
                    deps.health.set_ok(CHECK);
                }
                Some(Link::Sent(pkid)) => window.sent(pkid),
                Some(Link::Acked(pkid)) => ack(deps, window, pkid),
                Some(Link::Lost(reason)) => return Err(reason),
                None => return Err("the connection task ended".into()),
            },
            _ = tick.tick(), if *connected => {
                let room = WINDOW.saturating_sub(window.in_flight()).min(per_tick);
                if room > 0 {
                    publish_next(deps, client, window, room).await?;
                }
                if last_persist.elapsed() >= PERSIST_EVERY {
                    last_persist = Instant::now();
                    persist(deps, window).await.map_err(|e| format!("{e:#}"))?;
                }
            }
        }
    }
}

/// Publishes up to `room` rows after the read cursor.
async fn publish_next(
    deps: &BridgeDeps,
    client: &AsyncClient,
    window: &mut Window,
    room: usize,
) -> Result<(), String> {
    let (store, read) = (deps.store.clone(), window.read);
    let limit = u32::try_from(room).unwrap_or(u32::MAX);
    let rows = tokio::task::spawn_blocking(move || store.bridge_rows(&read, limit))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read rows to forward: {e}"))?;
    for row in rows {
        let (topic, body) = message(&deps.settings.prefix, &row);
        // The request queue holds 2 × WINDOW and at most WINDOW rows are in flight, so this
        // never fails for lack of room; it fails only when the connection task is gone.
        client
            .try_publish(topic, QoS::AtLeastOnce, false, body)
            .map_err(|e| format!("cannot queue a message: {e}"))?;
        window.published(row.source, row.id);
    }
    Ok(())
}

/// Writes the acknowledged cursor and refreshes the lag gauge.
async fn persist(deps: &BridgeDeps, window: &Window) -> anyhow::Result<()> {
    let (store, cursor) = (deps.store.clone(), window.acked);
    let lag = tokio::task::spawn_blocking(move || -> crate::store::Result<u64> {
        store.set_bridge_cursor(&cursor)?;
        store.bridge_lag(&cursor)
    })
    .await?
    .context("cannot save the bridge cursor")?;
    deps.metrics
        .bridge_lag_rows
        .set(i64::try_from(lag).unwrap_or(i64::MAX));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Incidents named `alert:` go to the alert topic; access rows carry the card and decision.
    #[test]
    fn messages_name_their_source_and_id() {
        let row = BridgeRow {
            source: Source::Incident,
            id: 7,
            ts_ms: 0,
            device: "rack-1".into(),
            kind: Some("alert:too_hot".into()),
            access: None,
            payload: r#"{"type":"alert:too_hot"}"#.into(),
        };
        let (topic, body) = message("site-a", &row);
        assert_eq!(topic, "site-a/rack-1/alert");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["source"].as_str(), v["id"].as_i64()),
            (Some("incidents"), Some(7))
        );
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
        let access = BridgeRow {
            source: Source::Access,
            kind: None,
            access: Some(("04A1".into(), true)),
            payload: "{}".into(),
            ..row
        };
        let (topic, body) = message("site-a", &access);
        assert_eq!(topic, "site-a/rack-1/access");
        assert!(body.contains(r#""granted":true"#));
    }
}
