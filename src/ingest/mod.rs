//! Link → decode → store writer + hub. The loop never blocks: rumqttd silently drops data for a
//! slow in-process consumer (FACTS.md), so each message is decoded and handed to unbounded or
//! non-blocking channels at once.

pub mod decode;

use crate::broker::{Link, topic};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::{Kind, Message, now_ms};
use anyhow::Context;
use rumqttd::Notification;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Consumes the broker's local link until `shutdown`: valid messages go to `writer` and `hub`;
/// invalid ones are logged with the device id and reason and counted.
pub async fn run(
    link: Link,
    prefix: String,
    writer: UnboundedSender<Message>,
    hub: Hub,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Link { mut tx, mut rx } = link;
    for filter in topic::ingest_filters(&prefix) {
        tx.subscribe(filter.clone())
            .with_context(|| format!("cannot subscribe the ingest link to {filter}"))?;
    }
    loop {
        let notification = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            n = rx.next() => n.context("the broker's local link closed")?,
        };
        match notification {
            Some(Notification::Forward(f)) => {
                handle(
                    &prefix,
                    &f.publish.topic,
                    &f.publish.payload,
                    &writer,
                    &hub,
                    &metrics,
                )?;
            }
            // Exactly one wake per Unschedule, or delivery stalls (FACTS.md).
            Some(Notification::Unschedule) => rx.wake().await.context("link wake failed")?,
            Some(_) | None => {}
        }
    }
}

fn handle(
    prefix: &str,
    topic_bytes: &[u8],
    payload: &[u8],
    writer: &UnboundedSender<Message>,
    hub: &Hub,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    // The gate lets a device publish only on its own topics, so the device level of the topic
    // is the publisher's identity.
    let Some((device, kind)) = std::str::from_utf8(topic_bytes)
        .ok()
        .and_then(|t| topic::parse(prefix, t))
    else {
        metrics.ingest_rejected.inc();
        tracing::warn!(topic = %String::from_utf8_lossy(topic_bytes), "message on an unexpected topic");
        return Ok(());
    };
    if kind == Kind::Reply {
        tracing::debug!(%device, "command reply received (no command is pending)");
        return Ok(());
    }
    match decode::decode(kind, payload) {
        Ok(body) => {
            let msg = Message {
                device,
                ts_ms: now_ms(),
                body,
            };
            hub.publish(&msg.live_event());
            writer.send(msg).ok().context("the store writer stopped")?;
            metrics.ingest_accepted.inc();
        }
        Err(reason) => {
            metrics.ingest_rejected.inc();
            tracing::warn!(%device, kind = kind.as_str(), %reason, bytes = payload.len(), "device message rejected");
        }
    }
    Ok(())
}
