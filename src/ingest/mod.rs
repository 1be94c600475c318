//! Link → decode → store writer + hub, plus replies → commands and presence changes. The loop
//! never blocks: rumqttd silently drops data for a slow in-process consumer (FACTS.md), so
//! each message is decoded and handed to unbounded or non-blocking channels at once. The same
//! task owns the link's sending half and publishes the commands' outbound messages.

pub mod decode;
pub mod liveness;

use crate::broker::{Link, topic};
use crate::commands::{Commands, Outbound};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::{Body, DeviceId, Kind, Message, Status, now_ms};
use anyhow::Context;
use rumqttd::Notification;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

/// Where ingest delivers.
#[derive(Clone)]
pub struct Sinks {
    pub writer: UnboundedSender<Message>,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub commands: Commands,
}

impl Sinks {
    /// Stores and pushes a valid message.
    pub fn deliver(&self, msg: Message) -> anyhow::Result<()> {
        self.hub.publish_message(&msg);
        self.writer
            .send(msg)
            .ok()
            .context("the store writer stopped")
    }

    /// Records a presence change of `device` (stored, pushed as a `device` event).
    pub fn presence_changed(&self, device: &DeviceId, status: Status) -> anyhow::Result<()> {
        tracing::info!(%device, status = status.as_str(), "device presence changed");
        if status == Status::Online {
            self.commands.device_online(device);
        } else {
            self.commands.fail_device(device);
        }
        self.deliver(Message {
            device: device.clone(),
            ts_ms: now_ms(),
            body: Body::Status(status),
        })
    }
}

/// Consumes the broker's local link until `shutdown` (then drains what the broker holds): valid messages go to the writer and the
/// hub; invalid ones are logged with the device id and reason and counted. Publishes what
/// arrives on `outbound`.
pub async fn run(
    link: Link,
    prefix: String,
    sinks: Sinks,
    mut outbound: UnboundedReceiver<Outbound>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Link { mut tx, mut rx } = link;
    for filter in topic::ingest_filters(&prefix) {
        tx.subscribe(filter.clone())
            .with_context(|| format!("cannot subscribe the ingest link to {filter}"))?;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            n = rx.next() => {
                let n = n.context("the broker's local link closed")?;
                notification(&mut rx, n, &prefix, &sinks).await?;
            }
            Some(o) = outbound.recv() => {
                if let Err(e) = tx.publish(o.topic, o.payload) {
                    tracing::error!(error = %e, "cannot publish a command");
                }
            }
        }
    }
    // Devices are disconnected by now; take what the broker already holds (acknowledged
    // messages) until it has been quiet for DRAIN_IDLE.
    while let Ok(n) = tokio::time::timeout(DRAIN_IDLE, rx.next()).await {
        let n = n.context("the broker's local link closed")?;
        notification(&mut rx, n, &prefix, &sinks).await?;
    }
    Ok(())
}

/// Quiet time that ends the drain at shutdown.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

async fn notification(
    rx: &mut rumqttd::local::LinkRx,
    n: Option<Notification>,
    prefix: &str,
    sinks: &Sinks,
) -> anyhow::Result<()> {
    match n {
        Some(Notification::Forward(f)) => {
            handle(prefix, &f.publish.topic, &f.publish.payload, sinks)
        }
        // Exactly one wake per Unschedule, or delivery stalls (FACTS.md).
        Some(Notification::Unschedule) => rx.wake().await.context("link wake failed"),
        Some(_) | None => Ok(()),
    }
}

fn handle(prefix: &str, topic_bytes: &[u8], payload: &[u8], sinks: &Sinks) -> anyhow::Result<()> {
    // The gate lets a device publish only on its own topics, so the device level of the topic
    // is the publisher's identity.
    let Some((device, kind)) = std::str::from_utf8(topic_bytes)
        .ok()
        .and_then(|t| topic::parse(prefix, t))
    else {
        sinks.metrics.ingest_rejected.inc();
        tracing::warn!(topic = %String::from_utf8_lossy(topic_bytes), "message on an unexpected topic");
        return Ok(());
    };
    let ts_ms = now_ms();
    let presence = sinks.commands.presence();
    if kind == Kind::Reply {
        if presence.seen(&device, ts_ms) {
            sinks.presence_changed(&device, Status::Online)?;
        }
        sinks.commands.complete(&device, payload);
        return Ok(());
    }
    match decode::decode(kind, payload) {
        Ok(Body::Status(Status::Offline)) => {
            if presence.gone(&device) {
                sinks.presence_changed(&device, Status::Offline)?;
            }
            sinks.metrics.ingest_accepted.inc();
        }
        Ok(body) => {
            if presence.seen(&device, ts_ms) {
                sinks.presence_changed(&device, Status::Online)?;
            }
            if !matches!(body, Body::Status(_)) {
                sinks.deliver(Message {
                    device,
                    ts_ms,
                    body,
                })?;
            }
            sinks.metrics.ingest_accepted.inc();
        }
        Err(reason) => {
            sinks.metrics.ingest_rejected.inc();
            tracing::warn!(%device, kind = kind.as_str(), %reason, bytes = payload.len(), "device message rejected");
        }
    }
    Ok(())
}
