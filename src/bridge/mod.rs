//! The upstream bridge (`RZMON_BRIDGE_URL`): a background service that forwards every stored
//! telemetry row, incident, access event and alert state change (firing, acknowledged,
//! resolved) as JSON, QoS 1, to another broker under `RZMON_BRIDGE_PREFIX`. It reads the database by a persisted
//! cursor that moves only over rows the upstream broker acknowledged, so an outage or a restart
//! loses nothing: after reconnecting it catches up in order at `RZMON_BRIDGE_RATE` messages/s.
//! Delivery is at least once (a row whose PUBACK was lost is sent again); every message
//! carries its `source` and `id`, so a receiver can drop repeats.

mod bucket;
mod window;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::format_ts;
use crate::mqtt_url::BrokerUrl;
use crate::store::{BridgeRow, Cursor, Source, Store};
use anyhow::Context;
use bucket::Bucket;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use window::Window;

/// The health check this service keeps.
pub const CHECK: &str = "bridge";
/// Rows in flight (published, not yet acknowledged); also the client's inflight limit.
const WINDOW: usize = 100;
/// Rows read from the store at a time (one query per this many forwarded rows).
const READ_AHEAD: u32 = WINDOW as u32;
/// With nothing left to forward, the store is looked at again after this long.
const IDLE: Duration = Duration::from_millis(50);
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
            body["type"] = row.kind.as_deref().unwrap_or("").into();
            "incident"
        }
        Source::Alert => {
            body["state"] = row.kind.as_deref().unwrap_or("").into();
            "alert"
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

/// Publishes while connected: as many rows as the bucket has tokens and the window has room,
/// woken by acknowledgements (room), the bucket (the next token) or, with nothing to send, a
/// look into the store every `IDLE`. The cursor is saved every `PERSIST_EVERY` beside it.
async fn forward(
    deps: &BridgeDeps,
    client: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Link>,
    window: &mut Window,
    connected: &mut bool,
    stop: &CancellationToken,
) -> Result<(), String> {
    // One save at a time, awaited before this returns, so no later save races it.
    let mut saving = None;
    let result = forward_until(deps, client, rx, window, connected, stop, &mut saving).await;
    if let Some(s) = saving {
        saved(deps, s.await).map_err(|e| format!("{e:#}"))?;
    }
    result
}

async fn forward_until(
    deps: &BridgeDeps,
    client: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Link>,
    window: &mut Window,
    connected: &mut bool,
    stop: &CancellationToken,
    saving: &mut Option<Saving>,
) -> Result<(), String> {
    let mut bucket = Bucket::new(deps.settings.rate, Instant::now());
    // Rows read from the store, not yet published (all after `window.read` once published).
    let mut pending = VecDeque::new();
    let mut look_at = Instant::now();
    let mut persist_tick = tokio::time::interval(PERSIST_EVERY);
    persist_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut wake = None;
        if *connected {
            wake = pump(
                deps,
                client,
                window,
                &mut bucket,
                &mut pending,
                &mut look_at,
            )
            .await?;
        }
        let sleep = tokio::time::sleep_until(wake.unwrap_or(look_at).into());
        let is_saving = saving.is_some();
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            link = rx.recv() => match link {
                Some(Link::Connected) => {
                    tracing::info!(broker = %deps.settings.broker.address(), "upstream bridge connected");
                    *connected = true;
                    set_ok(deps);
                }
                Some(Link::Sent(pkid)) => window.sent(pkid),
                Some(Link::Acked(pkid)) => ack(deps, window, pkid),
                Some(Link::Lost(reason)) => return Err(reason),
                None => return Err("the connection task ended".into()),
            },
            () = sleep, if *connected && wake.is_some() => {}
            _ = persist_tick.tick(), if !is_saving => *saving = Some(save(deps, window)),
            done = async { saving.as_mut().expect("is_saving").await }, if is_saving => {
                *saving = None;
                saved(deps, done).map_err(|e| format!("{e:#}"))?;
                if *connected {
                    set_ok(deps);
                }
            }
        }
    }
}

/// The check is ok while connected; its detail says how far behind the upstream is.
fn set_ok(deps: &BridgeDeps) {
    let lag = deps.metrics.bridge_lag_rows.get();
    deps.health.set_ok_with(
        CHECK,
        format!(
            "connected to {}; {lag} rows behind",
            deps.settings.broker.address()
        ),
    );
}

/// Publishes what the window and the bucket allow now. Returns when to try again: `Some` when
/// rows wait for a token (or for the next look into an empty store), `None` when only an
/// acknowledgement can make room.
async fn pump(
    deps: &BridgeDeps,
    client: &AsyncClient,
    window: &mut Window,
    bucket: &mut Bucket,
    pending: &mut VecDeque<BridgeRow>,
    look_at: &mut Instant,
) -> Result<Option<Instant>, String> {
    loop {
        let room = WINDOW.saturating_sub(window.in_flight());
        if room == 0 {
            return Ok(None);
        }
        let now = Instant::now();
        if pending.is_empty() {
            if now < *look_at {
                return Ok(Some(*look_at));
            }
            pending.extend(read_after(deps, window.read).await?);
            if pending.is_empty() {
                *look_at = now + IDLE;
                return Ok(Some(*look_at));
            }
        }
        let n = bucket.take(room.min(pending.len()), now);
        if n == 0 {
            return Ok(Some(now + bucket.wait(now)));
        }
        for row in pending.drain(..n) {
            let (topic, body) = message(&deps.settings.prefix, &row);
            // The request queue holds 2 × WINDOW and at most WINDOW rows are in flight, so
            // this never fails for lack of room; it fails only when the connection task is gone.
            client
                .try_publish(topic, QoS::AtLeastOnce, false, body)
                .map_err(|e| format!("cannot queue a message: {e}"))?;
            window.published(row.source, row.id);
        }
    }
}

/// Up to `READ_AHEAD` stored rows after `cursor`, oldest first.
async fn read_after(deps: &BridgeDeps, cursor: Cursor) -> Result<Vec<BridgeRow>, String> {
    let store = deps.store.clone();
    tokio::task::spawn_blocking(move || store.bridge_rows(&cursor, READ_AHEAD))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read rows to forward: {e}"))
}

/// Writes the acknowledged cursor and refreshes the lag gauge.
async fn persist(deps: &BridgeDeps, window: &Window) -> anyhow::Result<()> {
    saved(deps, save(deps, window).await)
}

/// A save of the acknowledged cursor, with the lag after it, running off the forwarding loop
/// (counting the backlog takes long enough on a big one to stall the bucket).
type Saving = tokio::task::JoinHandle<crate::store::Result<u64>>;

fn save(deps: &BridgeDeps, window: &Window) -> Saving {
    let (store, cursor) = (deps.store.clone(), window.acked);
    tokio::task::spawn_blocking(move || {
        store.set_bridge_cursor(&cursor)?;
        store.bridge_lag(&cursor)
    })
}

/// The outcome of a save: the lag gauge refreshed, or the error.
fn saved(
    deps: &BridgeDeps,
    done: Result<crate::store::Result<u64>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    let lag = done?.context("cannot save the bridge cursor")?;
    deps.metrics
        .bridge_lag_rows
        .set(i64::try_from(lag).unwrap_or(i64::MAX));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alert changes go to the alert topic with their state, incidents (an alert's `alert:`
    /// incident too) to the incident topic; access rows carry the card and decision.
    #[test]
    fn messages_name_their_source_and_id() {
        let row = BridgeRow {
            source: Source::Alert,
            id: 7,
            ts_ms: 0,
            device: "rack-1".into(),
            kind: Some("resolved".into()),
            access: None,
            payload: r#"{"alert_id":3,"rule":"too hot"}"#.into(),
        };
        let (topic, body) = message("site-a", &row);
        assert_eq!(topic, "site-a/rack-1/alert");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["source"].as_str(), v["id"].as_i64()),
            (Some("alert_events"), Some(7))
        );
        assert_eq!(
            (v["state"].as_str(), v["data"]["alert_id"].as_i64()),
            (Some("resolved"), Some(3))
        );
        let incident = BridgeRow {
            source: Source::Incident,
            kind: Some("alert:too_hot".into()),
            ..row.clone()
        };
        let (topic, body) = message("site-a", &incident);
        assert_eq!(topic, "site-a/rack-1/incident");
        assert!(body.contains(r#""type":"alert:too_hot""#));
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
