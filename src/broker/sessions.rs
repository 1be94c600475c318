//! Live gate sessions by device id, so that removing or re-keying a device cuts its connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Map = HashMap<String, Vec<(u64, CancellationToken)>>;

/// Cheap to clone; all clones share one registry.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Map>>,
    next_id: Arc<AtomicU64>,
    /// Receives a device id when its last live connection ended.
    ended: Option<mpsc::UnboundedSender<String>>,
}

/// Removes its session from the registry when dropped (the connection ended).
pub struct SessionGuard {
    sessions: Sessions,
    device: String,
    id: u64,
    pub token: CancellationToken,
}

impl Sessions {
    /// A registry that reports devices whose last connection ended on the returned receiver.
    pub fn with_end_reports() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = Self {
            ended: Some(tx),
            ..Self::default()
        };
        (s, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a live connection of `device`; it is closed when `token` is cancelled.
    pub fn register(&self, device: &str, token: CancellationToken) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(device.to_owned())
            .or_default()
            .push((id, token.clone()));
        SessionGuard {
            sessions: self.clone(),
            device: device.to_owned(),
            id,
            token,
        }
    }

    /// Closes every live connection of `device` (no-op if none).
    pub fn disconnect(&self, device: &str) {
        if let Some(list) = self.lock().remove(device) {
            for (_, token) in list {
                token.cancel();
            }
        }
    }

    /// Device ids with a live connection.
    pub fn connected(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut map = self.sessions.lock();
        let last = match map.get_mut(&self.device) {
            Some(list) => {
                list.retain(|(id, _)| *id != self.id);
                list.is_empty()
            }
            // Removed by `disconnect`: this was one of its connections.
            None => true,
        };
        if last {
            map.remove(&self.device);
            if let Some(tx) = &self.sessions.ended {
                let _ = tx.send(self.device.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_cancels_and_drop_unregisters() {
        let s = Sessions::default();
        let g = s.register("a", CancellationToken::new());
        let _h = s.register("b", CancellationToken::new());
        assert_eq!(s.connected(), ["a", "b"]);
        s.disconnect("a");
        assert!(g.token.is_cancelled());
        assert_eq!(s.connected(), ["b"]);
        drop(_h);
        assert!(s.connected().is_empty());
    }

    #[test]
    fn the_end_of_the_last_connection_is_reported() {
        let (s, mut ended) = Sessions::with_end_reports();
        let a1 = s.register("a", CancellationToken::new());
        let a2 = s.register("a", CancellationToken::new());
        drop(a1);
        assert!(ended.try_recv().is_err(), "a2 is still connected");
        drop(a2);
        assert_eq!(ended.try_recv().unwrap(), "a");
    }
}
