//! Live fan-out: one tokio broadcast channel of pre-serialized events. Every WebSocket client
//! holds its own receiver; the channel is a bounded ring, so a client that falls behind sees
//! `Lagged` and is dropped by its own task while ingest and other clients carry on.

use crate::model::LiveEvent;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Default ring size: events a client may fall behind before it is dropped.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Cheap to clone; every clone publishes into the same channel.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
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
