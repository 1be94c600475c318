//! Commands to devices: the only place that knows msgIDs. A request publishes
//! `<prefix>/<dev>/command` `{"msgID","command","value"}` and waits for the device's
//! `<prefix>/<dev>/reply` with the same msgID; a reply with an unknown msgID or from another
//! device completes nothing. Pending entries are removed on reply, timeout, cancellation,
//! device removal and shutdown, so none leak.

pub mod access_sync;

use crate::broker::topic;
use crate::model::{Command, DeviceId};
use crate::presence::Presence;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("device {0} is offline")]
    Offline(String),
    #[error("device {0} did not answer within {1} s")]
    Timeout(String, u64),
    #[error("{0}")]
    Rejected(String),
    #[error("rzmon is shutting down or the broker link is gone")]
    Unavailable,
}

/// A publish for the broker's local link (owned by the ingest task).
#[derive(Debug)]
pub struct Outbound {
    pub topic: String,
    pub payload: Vec<u8>,
}

type Reply = Result<Map<String, Value>, CommandError>;

struct Pending {
    device: DeviceId,
    tx: oneshot::Sender<Reply>,
}

struct Inner {
    prefix: String,
    out: mpsc::UnboundedSender<Outbound>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Set by `close` at shutdown: new requests fail at once.
    closed: AtomicBool,
    presence: Arc<Presence>,
    online_tx: mpsc::UnboundedSender<DeviceId>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

/// Removes a request's pending entry however the request ends (reply, timeout, dropped future).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.lock().remove(&self.id);
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Commands {
    /// `out` carries publishes to the local link; devices coming online are announced on the
    /// returned receiver (for the access-list sync).
    pub fn new(
        prefix: String,
        out: mpsc::UnboundedSender<Outbound>,
        presence: Arc<Presence>,
    ) -> (Self, mpsc::UnboundedReceiver<DeviceId>) {
        let (online_tx, online_rx) = mpsc::unbounded_channel();
        // Start from the clock so msgIDs stay unique across restarts (a late reply to a
        // request of the previous run cannot complete a new one). Below 2^53: JSON-safe.
        let start = u64::try_from(crate::model::now_ms()).unwrap_or(1) % (1 << 52);
        let inner = Inner {
            prefix,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(start.max(1)),
            closed: AtomicBool::new(false),
            presence,
            online_tx,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            online_rx,
        )
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Sends `command` to `device` and waits up to `timeout` for its reply. `value` `None`
    /// sends no `value` field (e.g. enrolment by `addAccessId`).
    pub async fn request(
        &self,
        device: &DeviceId,
        command: Command,
        value: Option<Value>,
        timeout: Duration,
    ) -> Reply {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(CommandError::Unavailable);
        }
        if !self.inner.presence.is_online(device) {
            return Err(CommandError::Offline(device.to_string()));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.lock().insert(
            id,
            Pending {
                device: device.clone(),
                tx,
            },
        );
        let _guard = PendingGuard {
            inner: &self.inner,
            id,
        };
        let mut body = json!({ "msgID": id, "command": command });
        if let Some(v) = value {
            body["value"] = v;
        }
        let publish = Outbound {
            topic: topic::command_topic(&self.inner.prefix, device),
            payload: body.to_string().into_bytes(),
        };
        self.inner
            .out
            .send(publish)
            .map_err(|_| CommandError::Unavailable)?;
        tracing::debug!(%device, %command, msg_id = id, "command sent");
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(CommandError::Unavailable),
            Err(_) => {
                tracing::info!(%device, %command, msg_id = id, "command timed out");
                Err(CommandError::Timeout(device.to_string(), timeout.as_secs()))
            }
        }
    }

    /// A reply arrived on `device`'s reply topic: completes the matching request, if any.
    pub fn complete(&self, device: &DeviceId, payload: &[u8]) {
        let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(payload) else {
            tracing::warn!(%device, "reply is not a JSON object; ignored");
            return;
        };
        let Some(id) = reply.get("msgID").and_then(Value::as_u64) else {
            tracing::warn!(%device, "reply without a numeric msgID; ignored");
            return;
        };
        let mut pending = self.inner.lock();
        match pending.get(&id) {
            Some(p) if &p.device == device => {}
            Some(p) => {
                tracing::warn!(%device, msg_id = id, expected = %p.device, "reply from the wrong device; ignored");
                return;
            }
            None => {
                tracing::info!(%device, msg_id = id, "reply to no pending command (late or unknown msgID); ignored");
                return;
            }
        }
        let Some(p) = pending.remove(&id) else { return };
        drop(pending);
        let outcome = match reply.get("ok") {
            Some(Value::Bool(true)) => {
                reply.remove("msgID");
                reply.remove("ok");
                Ok(reply)
            }
            _ => Err(CommandError::Rejected(
                reply
                    .get("error")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.chars().take(500).collect())
                    .unwrap_or_else(|| {
                        format!("device {device} refused the command without a reason")
                    }),
            )),
        };
        let _ = p.tx.send(outcome);
    }

    /// `device` came online: the access-list sync task will bring it up to date.
    pub fn device_online(&self, device: &DeviceId) {
        let _ = self.inner.online_tx.send(device.clone());
    }

    /// Fails every pending request of `device` (removed, or gone offline) at once.
    pub fn fail_device(&self, device: &DeviceId) {
        let mut pending = self.inner.lock();
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| &p.device == device)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = pending.remove(&id) {
                let _ = p.tx.send(Err(CommandError::Offline(device.to_string())));
            }
        }
    }

    /// Shutdown: fails every pending request and, from now on, every new one.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        for (_, p) in self.inner.lock().drain() {
            let _ = p.tx.send(Err(CommandError::Unavailable));
        }
    }

    /// Requests waiting for a reply (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Commands, mpsc::UnboundedReceiver<Outbound>, DeviceId) {
        let (out, rx) = mpsc::unbounded_channel();
        let presence = Arc::new(Presence::default());
        let d = DeviceId::parse("d1").unwrap();
        presence.seen(&d, 1);
        let (c, _online) = Commands::new("rz".into(), out, presence);
        (c, rx, d)
    }

    fn msg_id(o: &Outbound) -> u64 {
        serde_json::from_slice::<Value>(&o.payload).unwrap()["msgID"]
            .as_u64()
            .unwrap()
    }

    #[tokio::test]
    async fn replies_complete_only_their_own_request() {
        let (c, mut rx, d) = setup();
        let other = DeviceId::parse("d2").unwrap();
        let c2 = c.clone();
        let d2 = d.clone();
        let a = tokio::spawn(async move {
            c2.request(&d2, Command::GetConfig, None, Duration::from_secs(5))
                .await
        });
        let sent = rx.recv().await.unwrap();
        assert_eq!(sent.topic, "rz/d1/command");
        let id = msg_id(&sent);
        c.complete(
            &d,
            format!(r#"{{"msgID":{},"ok":true}}"#, id + 1).as_bytes(),
        );
        c.complete(&other, format!(r#"{{"msgID":{id},"ok":true}}"#).as_bytes());
        assert_eq!(c.pending(), 1);
        c.complete(
            &d,
            format!(r#"{{"msgID":{id},"ok":true,"config":{{"a":1}}}}"#).as_bytes(),
        );
        let reply = a.await.unwrap().unwrap();
        assert_eq!(reply["config"]["a"], 1);
        assert_eq!(c.pending(), 0);
    }

    #[tokio::test]
    async fn close_fails_pending_and_new_requests() {
        let (c, mut rx, d) = setup();
        let c2 = c.clone();
        let d2 = d.clone();
        let pending = tokio::spawn(async move {
            c2.request(&d2, Command::GetConfig, None, Duration::from_secs(30))
                .await
        });
        rx.recv().await.expect("sent");
        c.close();
        assert_eq!(pending.await.unwrap(), Err(CommandError::Unavailable));
        assert_eq!(
            c.request(&d, Command::GetConfig, None, Duration::from_secs(30))
                .await,
            Err(CommandError::Unavailable)
        );
        assert!(rx.try_recv().is_err(), "nothing sent after close");
    }

    #[tokio::test]
    async fn offline_timeout_and_rejection() {
        let (c, mut rx, d) = setup();
        let ghost = DeviceId::parse("ghost").unwrap();
        assert_eq!(
            c.request(&ghost, Command::GetConfig, None, Duration::from_secs(5))
                .await,
            Err(CommandError::Offline("ghost".into()))
        );
        let r = c
            .request(&d, Command::GetConfig, None, Duration::from_millis(20))
            .await;
        assert!(matches!(r, Err(CommandError::Timeout(..))));
        assert_eq!(c.pending(), 0, "a timed-out request leaves nothing behind");
        let _ = rx.recv().await;
        let c2 = c.clone();
        let d2 = d.clone();
        let t = tokio::spawn(async move {
            c2.request(
                &d2,
                Command::SetConfig,
                Some(json!({})),
                Duration::from_secs(5),
            )
            .await
        });
        let id = msg_id(&rx.recv().await.unwrap());
        c.complete(
            &d,
            format!(r#"{{"msgID":{id},"ok":false,"error":"interval_s must be 1..3600"}}"#)
                .as_bytes(),
        );
        assert_eq!(
            t.await.unwrap(),
            Err(CommandError::Rejected("interval_s must be 1..3600".into()))
        );
    }

    #[tokio::test]
    async fn removal_fails_pending_requests() {
        let (c, mut rx, d) = setup();
        let c2 = c.clone();
        let d2 = d.clone();
        let t = tokio::spawn(async move {
            c2.request(&d2, Command::GetConfig, None, Duration::from_secs(5))
                .await
        });
        let _ = rx.recv().await;
        c.fail_device(&d);
        assert!(matches!(t.await.unwrap(), Err(CommandError::Offline(_))));
        assert_eq!(c.pending(), 0);
    }
}
