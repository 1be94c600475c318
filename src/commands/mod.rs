//! Commands to devices: the only place that knows msgIDs. A request publishes
//! `<prefix>/<dev>/command` `{"msgID","command","value"}` and waits for the device's
//! `<prefix>/<dev>/reply` with the same msgID; a reply with an unknown msgID or from another
//! device completes nothing. Pending entries are removed on reply, timeout, cancellation,
//! device removal and shutdown, so none leak.

pub mod access_sync;

use crate::broker::topic;
use crate::model::{Command, DeviceId};
use crate::presence::Presence;
use access_sync::Due;
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

/// Commands on their way to the broker link. Every one belongs to a request that waits for
/// its reply, so this only fills when the link stalls; a full queue makes the next request
/// wait (within its timeout), never drops it.
pub const OUTBOUND_QUEUE: usize = 256;

pub type OutboundTx = mpsc::Sender<Outbound>;
pub type OutboundRx = mpsc::Receiver<Outbound>;

/// The bounded queue between `Commands` and the link's owner.
pub fn outbound_queue() -> (OutboundTx, OutboundRx) {
    mpsc::channel(OUTBOUND_QUEUE)
}

type Reply = Result<Map<String, Value>, CommandError>;

struct Pending {
    device: DeviceId,
    tx: oneshot::Sender<Reply>,
}

struct Inner {
    prefix: String,
    out: OutboundTx,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Set by `close` at shutdown: new requests fail at once.
    closed: AtomicBool,
    presence: Arc<Presence>,
    /// Devices waiting for an access-list sync.
    due: Arc<Due>,
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
    /// `out` carries publishes to the local link; devices coming online are put on the
    /// returned set (for the access-list sync).
    pub fn new(prefix: String, out: OutboundTx, presence: Arc<Presence>) -> (Self, Arc<Due>) {
        let due = Arc::new(Due::default());
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
            due: due.clone(),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            due,
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
        // The queue's wait counts against the request's timeout.
        let deadline = tokio::time::Instant::now() + timeout;
        let queued = tokio::time::timeout_at(deadline, self.inner.out.send(publish)).await;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(CommandError::Unavailable),
            Err(_) => {
                tracing::warn!(%device, %command, msg_id = id, "command queue full until the timeout");
                return Err(CommandError::Timeout(device.to_string(), timeout.as_secs()));
            }
        }
        tracing::debug!(%device, %command, msg_id = id, "command sent");
        match tokio::time::timeout_at(deadline, rx).await {
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
        self.inner.due.add(device);
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

    fn setup() -> (Commands, OutboundRx, DeviceId) {
        let (out, rx) = outbound_queue();
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

    #[tokio::test]
    async fn a_full_queue_makes_requests_wait_and_time_out_never_drops() {
        let (c, mut rx, d) = setup();
        let mut waiting = Vec::new();
        for _ in 0..OUTBOUND_QUEUE + 1 {
            let (c, d) = (c.clone(), d.clone());
            waiting.push(tokio::spawn(async move {
                c.request(&d, Command::GetConfig, None, Duration::from_millis(200))
                    .await
            }));
        }
        // The link is stalled: nothing is read, so one request cannot even be queued.
        let results = futures_util::future::join_all(waiting).await;
        let timed_out = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(CommandError::Timeout(..)))))
            .count();
        assert_eq!(
            timed_out,
            OUTBOUND_QUEUE + 1,
            "every request ends in its timeout"
        );
        assert_eq!(c.pending(), 0);
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(
            queued, OUTBOUND_QUEUE,
            "the queue holds its bound, nothing beyond"
        );
    }

    #[tokio::test]
    async fn a_device_due_many_times_is_synced_once() {
        let due = access_sync::Due::default();
        let (a, b) = (DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap());
        for _ in 0..1_000 {
            due.add(&a);
        }
        due.add(&b);
        let mut taken = due.take().await;
        taken.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(taken, [a.clone(), b]);
        due.add(&a);
        assert_eq!(due.take().await, [a]);
    }
}
