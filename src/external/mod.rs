//! External broker mode (`RZMON_BROKER`): instead of the embedded broker and its gate, one
//! MQTT client of another broker (Mosquitto, an EMQX cluster) that owns device logins and topic
//! permissions. It subscribes to every device topic — as `$share/<group>/<prefix>/+/+` when a
//! share group is set, so several rzmon readers split the load — and feeds what arrives into
//! ingest's one bounded queue exactly like the gate does; it also publishes the commands
//! module's outbound messages. Everything above (ingest, store, alerts, API) is unchanged.
//!
//! "An acknowledgement means committed" holds on this leg too: the session is persistent
//! (`clean_session = false`) and acknowledged by hand (rumqttc manual acks), so the PUBACK for
//! a QoS 1 message goes to the broker only after the store writer committed it (or ingest found
//! it invalid, a repeat, or from an unregistered device). A message rzmon did not commit stays
//! unacknowledged at the broker and is delivered again after a reconnect or restart; repeats
//! are dropped by the writer's (device, seq) check. An acknowledgement that was earned on an
//! earlier connection is not sent on a later one (the broker delivers that message again).

mod known;

use crate::broker::topic;
use crate::commands::OutboundRx;
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::model::{Ack, Inbound};
use crate::mqtt_url::BrokerUrl;
use crate::store::Store;
use known::Known;
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS, SubscribeReasonCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::{self, Sender, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause before the next connection attempt after an error.
const RETRY: Duration = Duration::from_secs(1);
/// Requests (acknowledgements, commands) rumqttc buffers for its event loop.
const REQUESTS: usize = 1_024;

/// How rzmon reaches the external broker.
#[derive(Debug, Clone)]
pub struct ExternalSettings {
    pub broker: BrokerUrl,
    /// First topic level of device topics (`RZMON_TOPIC_PREFIX`).
    pub prefix: String,
    /// Shared-subscription group (`RZMON_BROKER_SHARE`); `None`: a plain subscription.
    pub share: Option<String>,
    /// Largest packet accepted from the broker.
    pub max_packet: usize,
}

impl ExternalSettings {
    /// The subscription filter: every kind of every device.
    pub fn filter(&self) -> String {
        match &self.share {
            Some(group) => format!("$share/{group}/{}/+/+", self.prefix),
            None => format!("{}/+/+", self.prefix),
        }
    }

    /// The client id: the service account's name (one per rzmon instance; a broker with
    /// `use_username_as_clientid` uses it anyway), or `rzmon` without credentials.
    pub fn client_id(&self) -> String {
        self.broker
            .username
            .clone()
            .unwrap_or_else(|| "rzmon".into())
    }
}

/// What the client needs.
pub struct ExternalDeps {
    pub settings: ExternalSettings,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// Ingest's queue (the gate's in embedded mode).
    pub inbound: Sender<Inbound>,
    /// The commands module's messages to devices.
    pub outbound: OutboundRx,
}

/// An acknowledgement to send: the connection it was earned on and the packet it answers.
type AckRequest = (u64, Publish);

/// Runs until `stop`: connects (again after every error), subscribes, forwards device messages
/// to ingest and commands to the broker. The `broker` health check is ok while subscribed.
pub async fn run(deps: ExternalDeps, stop: CancellationToken) -> anyhow::Result<()> {
    let ExternalDeps {
        settings,
        store,
        metrics,
        health,
        inbound,
        mut outbound,
    } = deps;
    let mut opts = settings.broker.options(&settings.client_id())?;
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_request_channel_capacity(REQUESTS)
        .set_max_packet_size(settings.max_packet, settings.max_packet);
    let (client, mut eventloop) = AsyncClient::new(opts, REQUESTS);
    let address = settings.broker.address();
    let filter = settings.filter();
    health.set_failed(
        health::BROKER,
        format!("connecting to the external broker {address}"),
    );
    // Acknowledgements come from the store writer's thread; this queue holds at most what the
    // broker has in flight to us (its inflight limit), so it needs no bound of its own.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<AckRequest>();
    let generation = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    tasks.spawn(send_acks(client.clone(), ack_rx, generation.clone()));
    let mut link = Link {
        known: Known::new(store),
        prefix: settings.prefix.clone(),
        metrics,
        inbound,
        ack_tx,
        generation,
    };
    let result = loop {
        tokio::select! {
            () = stop.cancelled() => break Ok(()),
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    link.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(broker = %address, %filter, "connected to the external broker");
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        break Err(anyhow::anyhow!("cannot queue the subscription: {e}"));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                        health.set_ok(health::BROKER);
                    } else {
                        health.set_failed(health::BROKER, format!(
                            "the external broker {address} refused the subscription {filter} \
                             (check the service account's ACL)"));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !link.forward(p, &stop).await {
                        break Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    health.set_failed(health::BROKER, format!(
                        "cannot reach the external broker {address}: {e}"));
                    tokio::select! {
                        () = stop.cancelled() => break Ok(()),
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            },
            Some(o) = outbound.recv() => {
                // QoS 0, like the embedded broker's local link: a command is answered or times
                // out; it is never delivered twice.
                if let Err(e) = client.try_publish(o.topic, QoS::AtMostOnce, false, o.payload) {
                    tracing::error!(error = %e, "cannot publish a command");
                }
            }
        }
    };
    tasks.shutdown().await;
    result
}

/// Sends each acknowledgement earned on the current connection.
async fn send_acks(
    client: AsyncClient,
    mut rx: UnboundedReceiver<AckRequest>,
    generation: Arc<AtomicU64>,
) {
    while let Some((earned_on, publish)) = rx.recv().await {
        if earned_on == generation.load(Ordering::Acquire) && client.ack(&publish).await.is_err() {
            return; // the event loop is gone
        }
    }
}

/// The state of the incoming side.
struct Link {
    known: Known,
    prefix: String,
    metrics: Arc<Metrics>,
    inbound: Sender<Inbound>,
    ack_tx: UnboundedSender<AckRequest>,
    generation: Arc<AtomicU64>,
}

impl Link {
    /// Hands one message to ingest (waits while its queue is full: the broker then waits for
    /// our acknowledgements). `false` when stopping or ingest is gone.
    async fn forward(&mut self, p: Publish, stop: &CancellationToken) -> bool {
        let ack = self.ack_for(&p);
        let Some((device, kind)) = topic::parse(&self.prefix, &p.topic) else {
            tracing::warn!(topic = %p.topic, "message on a topic that is not a device topic; dropped");
            self.metrics.ingest_rejected.inc();
            if let Some(ack) = ack {
                ack.done();
            }
            return true;
        };
        if !self.known.contains(&device).await {
            tracing::warn!(%device, kind = kind.as_str(), "message from an unregistered or disabled device; dropped");
            self.metrics.ingest_rejected.inc_kind(kind.as_str());
            if let Some(ack) = ack {
                ack.done();
            }
            return true;
        }
        let m = Inbound {
            device,
            kind,
            payload: p.payload,
            ack,
        };
        tokio::select! {
            () = stop.cancelled() => false,
            sent = self.inbound.send(m) => sent.is_ok(),
        }
    }

    /// For QoS 1 and 2: an `Ack` that queues the PUBACK, tagged with this connection.
    fn ack_for(&self, p: &Publish) -> Option<Ack> {
        if p.qos == QoS::AtMostOnce {
            return None;
        }
        let mut answer = Publish::new("", p.qos, Vec::new());
        answer.pkid = p.pkid;
        let earned_on = self.generation.load(Ordering::Acquire);
        let tx = self.ack_tx.clone();
        Some(Ack::new(move || {
            let _ = tx.send((earned_on, answer));
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(share: Option<&str>, url: &str) -> ExternalSettings {
        ExternalSettings {
            broker: BrokerUrl::parse(url, "RZMON_BROKER").expect("url"),
            prefix: "rz".into(),
            share: share.map(str::to_owned),
            max_packet: 4096,
        }
    }

    /// A share group makes the subscription `$share/<group>/...`; the client id is the
    /// service account's name.
    #[test]
    fn filter_and_client_id() {
        let s = settings(Some("rzmon"), "mqtt://rzmon-a:pw@broker:1883");
        assert_eq!(s.filter(), "$share/rzmon/rz/+/+");
        assert_eq!(s.client_id(), "rzmon-a");
        let s = settings(None, "mqtt://broker");
        assert_eq!(s.filter(), "rz/+/+");
        assert_eq!(s.client_id(), "rzmon");
    }
}
