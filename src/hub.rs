//! Live fan-out: one tokio broadcast channel of pre-serialized events for WebSocket clients, and
//! one of typed device messages for in-process consumers (the rule engine). Both are bounded
//! rings: a receiver that falls behind sees `Lagged` and copes on its own (a WebSocket client is
//! dropped, the rule engine re-reads the store) while ingest and the others carry on.

use crate::model::{LiveEvent, Message};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Default ring size: events a client may fall behind before it is dropped.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Ring size of the typed channel: messages the rule engine may fall behind before it lags
/// (a burst of 100 devices at full speed on a loaded 2-core machine overran 4096).
pub const EVENTS_CAPACITY: usize = 16_384;

/// Cheap to clone; every clone publishes into the same channel.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    events: broadcast::Sender<Arc<Message>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        Self { tx, events }
    }

    /// Publishes a device message: as text to WebSocket clients and typed to in-process
    /// subscribers (copied only while one is subscribed). Never blocks.
    pub fn publish_message(&self, msg: &Message) {
        self.publish(&msg.live_event());
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::new(msg.clone()));
        }
    }

    /// A receiver of the typed device messages published from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<Message>> {
        self.events.subscribe()
    }

    /// Serializes once and hands the same text to every subscriber. Never blocks.
    pub fn publish(&self, event: &LiveEvent) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(event) {
            Ok(text) => {
                let _ = self.tx.send(Arc::from(text));
            }
            Err(e) => tracing::error!(error = %e, "live event could not be serialized"),
        }
    }

    /// A new receiver that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lagging_receiver_is_told_and_others_are_not_affected() {
        let hub = Hub::new(2);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for i in 0..3 {
            hub.publish(&LiveEvent {
                kind: "telemetry",
                device: "d".into(),
                timestamp: String::new(),
                data: serde_json::json!(i),
            });
            assert!(fast.recv().await.is_ok());
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
    }
}
