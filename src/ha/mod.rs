//! The Home Assistant bridge (`RZMON_HA_BROKER`): a background service that connects to the
//! user's HA broker as an MQTT client and keeps it a mirror of rzmon: retained discovery
//! configs per registered device, a retained state per device updated as messages arrive
//! (typed hub subscription), access events, availability with a last will, a full re-publish
//! whenever it (re)connects or HA announces `online`, and empty configs for removed devices.
//!
//! It never slows ingest: hub messages are applied to an in-memory mirror and published with
//! `try_publish`; if the client's queue is full or the hub ring lagged, the mirror is reloaded
//! from the store and re-published whole at the next tick, so HA converges on the truth.

pub mod discovery;

use crate::commands::Commands;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::{Body, Message, Status};
use crate::mqtt_url::BrokerUrl;
use crate::store::Store;
use anyhow::Context;
use discovery::{DeviceState, Topics};
use rumqttc::{AsyncClient, Event, LastWill, Outgoing, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How often the device list is compared with what HA was told (new and removed devices).
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// Pause between connection attempts while the HA broker is unreachable.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Requests the MQTT client may queue; a full re-publish of 1,000 devices is ~7,000.
const CLIENT_QUEUE: usize = 16_384;
/// Time the last `offline` and DISCONNECT get to leave at shutdown.
const FAREWELL: Duration = Duration::from_secs(2);

/// Settings of the bridge.
#[derive(Debug, Clone)]
pub struct HaSettings {
    pub broker: BrokerUrl,
    pub topics: Topics,
    /// Put card ids into access events (off by default: they are credentials).
    pub access_ids: bool,
    pub client_id: String,
}

/// What the bridge reads.
#[derive(Clone)]
pub struct HaDeps {
    pub settings: HaSettings,
    pub store: Store,
    pub hub: Hub,
    pub commands: Commands,
    pub metrics: Arc<Metrics>,
}

/// What the connection task reports.
enum Link {
    Connected,
    Lost,
    HaOnline,
}

/// Runs until `stop`; connection failures are retried, never fatal.
pub async fn run(deps: HaDeps, stop: CancellationToken) -> anyhow::Result<()> {
    let s = &deps.settings;
    let mut opts = s.broker.options(&s.client_id)?;
    opts.set_last_will(LastWill::new(
        s.topics.availability(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (client, eventloop) = AsyncClient::new(opts, CLIENT_QUEUE);
    let (link_tx, mut link_rx) = mpsc::unbounded_channel();
    let ha_status = s.topics.ha_status();
    let address = s.broker.address();
    let conn = tokio::spawn(connection(eventloop, link_tx, ha_status, address));
    let mut events = deps.hub.subscribe_events();
    let mut bridge = Bridge {
        deps: deps.clone(),
        client,
        devices: BTreeMap::new(),
        connected: false,
        resync: true,
    };
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            link = link_rx.recv() => match link {
                Some(Link::Connected) => {
                    bridge.connected = true;
                    let _ = bridge.client.try_subscribe(deps.settings.topics.ha_status(), QoS::AtLeastOnce);
                    bridge.publish_all().await?;
                }
                Some(Link::Lost) => bridge.connected = false,
                Some(Link::HaOnline) => bridge.publish_all().await?,
                None => anyhow::bail!("the Home Assistant connection task ended"),
            },
            msg = events.recv() => match msg {
                Ok(m) => bridge.apply(&m),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "Home Assistant bridge fell behind; re-publishing");
                    bridge.resync = true;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => bridge.reconcile().await?,
        }
    }
    let avail = deps.settings.topics.availability();
    let _ = bridge
        .client
        .try_publish(avail, QoS::AtLeastOnce, true, "offline");
    let _ = bridge.client.try_disconnect();
    if tokio::time::timeout(FAREWELL, conn).await.is_err() {
        tracing::debug!("Home Assistant broker did not take the farewell in time");
    }
    Ok(())
}

/// Polls the client's event loop: reports connections and HA's `online`, retries failures.
async fn connection(
    mut eventloop: rumqttc::EventLoop,
    link: mpsc::UnboundedSender<Link>,
    ha_status: String,
    address: String,
) {
    let mut failing = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(broker = %address, "connected to the Home Assistant broker");
                failing = false;
                if link.send(Link::Connected).is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p)))
                if p.topic == ha_status && p.payload.as_ref() == b"online" =>
            {
                if link.send(Link::HaOnline).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(broker = %address, error = %e, "Home Assistant broker unreachable; retrying");
                    failing = true;
                    if link.send(Link::Lost).is_err() {
                        return;
                    }
                }
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

struct Bridge {
    deps: HaDeps,
    client: AsyncClient,
    /// What HA was told (or is to be told) per registered device.
    devices: BTreeMap<String, DeviceState>,
    connected: bool,
    /// Re-publish everything at the next tick (queue was full or the hub lagged).
    resync: bool,
}

impl Bridge {
    fn send(&mut self, topic: String, payload: impl Into<Vec<u8>>, retain: bool) {
        let qos = if retain {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => self.deps.metrics.ha_published.inc(),
            Err(_) => self.resync = true,
        }
    }

    fn send_state(&mut self, device: &str) {
        if let Some(state) = self.devices.get(device) {
            let payload = discovery::state_payload(state);
            let topic = self.deps.settings.topics.state(device);
            self.send(topic, payload, true);
        }
    }

    fn send_configs(&mut self, device: &str) {
        for (topic, payload) in discovery::configs(&self.deps.settings.topics, device) {
            self.send(topic, payload, true);
        }
    }

    /// Reloads the mirror from the store and presence, then publishes availability, every
    /// config and every state.
    async fn publish_all(&mut self) -> anyhow::Result<()> {
        self.devices = self.load().await?;
        self.resync = false;
        let avail = self.deps.settings.topics.availability();
        self.send(avail, "online", true);
        let ids: Vec<String> = self.devices.keys().cloned().collect();
        for id in &ids {
            self.send_configs(id);
        }
        for id in &ids {
            self.send_state(id);
        }
        Ok(())
    }

    async fn load(&self) -> anyhow::Result<BTreeMap<String, DeviceState>> {
        let store = self.deps.store.clone();
        let (rows, alerts) = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store.latest_readings()?,
                store.active_alert_counts()?,
            ))
        })
        .await
        .context("store task failed")?
        .context("cannot read the devices for Home Assistant")?;
        let presence = self.deps.commands.presence();
        Ok(rows
            .into_iter()
            .map(|r| {
                let online = crate::model::DeviceId::parse(&r.device)
                    .is_some_and(|id| presence.is_online(&id));
                let state = DeviceState {
                    tmp: r.tmp,
                    lf: r.lf,
                    locked: r.locked,
                    online,
                    alerts: alerts.get(&r.device).copied().unwrap_or(0),
                };
                (r.device, state)
            })
            .collect())
    }

    /// Applies one device message to the mirror and publishes what changed.
    fn apply(&mut self, m: &Message) {
        let device = m.device.as_str();
        let Some(state) = self.devices.get_mut(device) else {
            return; // registered since the last reconcile; it is published then
        };
        match &m.body {
            Body::Telemetry(t) => {
                state.tmp = t.tmp.or(state.tmp);
                state.lf = t.lf.or(state.lf);
                state.locked = t.locked.or(state.locked);
                state.online = true;
            }
            Body::Status(s) => state.online = *s == Status::Online,
            Body::Access(a) => {
                let id = self
                    .deps
                    .settings
                    .access_ids
                    .then_some(a.access_id.as_str());
                let payload = discovery::access_payload(a.granted, id);
                let topic = self.deps.settings.topics.access(device);
                self.send(topic, payload, false);
                return;
            }
            Body::Incident(_) => return,
        }
        if self.connected {
            self.send_state(device);
        }
    }

    /// Publishes new devices, removes deleted ones, re-publishes all after a lag or overflow.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        if !self.connected {
            return Ok(());
        }
        if self.resync {
            return self.publish_all().await;
        }
        let fresh = self.load().await?;
        let removed: Vec<String> = self
            .devices
            .keys()
            .filter(|id| !fresh.contains_key(*id))
            .cloned()
            .collect();
        for id in removed {
            tracing::info!(device = %id, "device removed; removing it from Home Assistant");
            for topic in discovery::removals(&self.deps.settings.topics, &id) {
                self.send(topic, Vec::new(), true);
            }
            let state = self.deps.settings.topics.state(&id);
            self.send(state, Vec::new(), true);
            self.devices.remove(&id);
        }
        for (id, state) in fresh {
            match self.devices.get_mut(&id) {
                None => {
                    self.devices.insert(id.clone(), state);
                    self.send_configs(&id);
                    self.send_state(&id);
                }
                Some(known) if known.alerts != state.alerts => {
                    known.alerts = state.alerts;
                    self.send_state(&id);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
