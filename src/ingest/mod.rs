//! Inbound device messages → decode → store writer + hub, plus replies → commands and presence
//! changes. The input is one bounded channel of `Inbound` (device, kind, payload, ack) filled
//! by the gate; each valid message goes to the writer with its ack, which the writer runs
//! after the commit; a message that needs no storing (a reply, an invalid payload, a repeated
//! status) is acknowledged here. The same task owns the broker link's sending half and
//! publishes the commands' outbound messages.

pub mod decode;
pub mod liveness;

use crate::broker::Link;
use crate::commands::{Commands, Outbound, OutboundRx};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::{Ack, Body, DeviceId, Inbound, Kind, Message, Status, now_ms};
use crate::store::WriterTx;
use anyhow::Context;
use rumqttd::Notification;
use rumqttd::local::LinkRx;
use std::sync::Arc;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

/// Device messages waiting for ingest. A full queue makes the gate wait before it reads more
/// from that device's socket (TCP back-pressure); decoding is quick, so this stays short.
pub const QUEUE: usize = 1_024;

/// Where ingest delivers.
#[derive(Clone)]
pub struct Sinks {
    pub writer: WriterTx,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub commands: Commands,
}

impl Sinks {
    /// Stores and pushes a valid message; `ack` runs once it is committed. Waits while the
    /// writer's queue is full.
    pub async fn deliver(&self, msg: Message, ack: Option<Ack>) -> anyhow::Result<()> {
        self.hub.publish_message(&msg);
        self.writer
            .send(msg, ack)
            .await
            .context("the store writer stopped")
    }

    /// Records a presence change of `device` (stored, pushed as a `device` event).
    pub async fn presence_changed(
        &self,
        device: &DeviceId,
        status: Status,
        ack: Option<Ack>,
    ) -> anyhow::Result<()> {
        tracing::info!(%device, status = status.as_str(), "device presence changed");
        if status == Status::Online {
            self.commands.device_online(device);
        } else {
            self.commands.fail_device(device);
        }
        let msg = Message {
            device: device.clone(),
            ts_ms: now_ms(),
            body: Body::Status(status),
        };
        self.deliver(msg, ack).await
    }
}

/// Takes device messages from `inbound` until `shutdown`, then what is still queued (the gate
/// has closed every connection by then) until the channel is empty. Valid messages go to the
/// writer and the hub; invalid ones are logged with the device id and reason and counted.
/// With the embedded broker (`link`), publishes what arrives on `outbound` to the devices
/// through the broker link; with an external broker both are `None` (its client publishes).
pub async fn run(
    mut inbound: Receiver<Inbound>,
    link: Option<Link>,
    sinks: Sinks,
    mut outbound: Option<OutboundRx>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut tx, mut rx) = match link {
        Some(Link { tx, rx }) => (Some(tx), Some(rx)),
        None => (None, None),
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            m = inbound.recv() => {
                let Some(m) = m else { break };
                sinks.metrics.ingest_queue.set(inbound.len() as i64);
                handle(m, &sinks).await?;
            }
            n = next_notification(&mut rx) => {
                // The link subscribes to nothing; only `Unschedule` needs an answer.
                if let Some(Notification::Unschedule) = n.context("the broker's local link closed")?
                    && let Some(rx) = rx.as_mut()
                {
                    rx.wake().await.context("link wake failed")?;
                }
            }
            Some(o) = next_outbound(&mut outbound) => {
                if let Some(tx) = tx.as_mut()
                    && let Err(e) = tx.publish(o.topic, o.payload)
                {
                    tracing::error!(error = %e, "cannot publish a command");
                }
            }
        }
    }
    inbound.close();
    while let Some(m) = inbound.recv().await {
        handle(m, &sinks).await?;
    }
    Ok(())
}

/// The broker link's next notification; never, without a link.
async fn next_notification(
    rx: &mut Option<LinkRx>,
) -> Result<Option<Notification>, rumqttd::local::LinkError> {
    match rx {
        Some(rx) => rx.next().await,
        None => std::future::pending().await,
    }
}

/// The next command to publish; never, when the external client publishes them.
async fn next_outbound(outbound: &mut Option<OutboundRx>) -> Option<Outbound> {
    match outbound {
        Some(o) => o.recv().await,
        None => std::future::pending().await,
    }
}

/// Decodes and delivers one message. The gate lets a device publish only on its own topics,
/// so `m.device` is the publisher's identity.
async fn handle(m: Inbound, sinks: &Sinks) -> anyhow::Result<()> {
    let Inbound {
        device,
        kind,
        payload,
        ack,
    } = m;
    let ts_ms = now_ms();
    let presence = sinks.commands.presence();
    if kind == Kind::Reply {
        if presence.seen(&device, ts_ms) {
            sinks
                .presence_changed(&device, Status::Online, None)
                .await?;
        }
        sinks.commands.complete(&device, &payload);
        acknowledge(ack);
        return Ok(());
    }
    match decode::decode(kind, &payload) {
        Ok(Body::Status(status)) => {
            sinks.metrics.ingest_accepted.inc_kind(kind.as_str());
            let changed = match status {
                Status::Online => presence.seen(&device, ts_ms),
                Status::Offline => presence.gone(&device),
            };
            if changed {
                sinks.presence_changed(&device, status, ack).await?;
            } else {
                // A repeated state: nothing to store.
                acknowledge(ack);
            }
        }
        Ok(body) => {
            sinks.metrics.ingest_accepted.inc_kind(kind.as_str());
            if presence.seen(&device, ts_ms) {
                sinks
                    .presence_changed(&device, Status::Online, None)
                    .await?;
            }
            let msg = Message {
                device,
                ts_ms,
                body,
            };
            sinks.deliver(msg, ack).await?;
        }
        Err(reason) => {
            sinks.metrics.ingest_rejected.inc_kind(kind.as_str());
            tracing::warn!(%device, kind = kind.as_str(), %reason, bytes = payload.len(), "device message rejected");
            // Handled: re-sending the same bytes cannot make them valid.
            acknowledge(ack);
        }
    }
    Ok(())
}

fn acknowledge(ack: Option<Ack>) {
    if let Some(ack) = ack {
        ack.done();
    }
}
