//! Which devices may report through the external broker: registered and enabled ones. The
//! broker's password file can be older than the device list (a removed device still logs in
//! until the file is regenerated), so every message's device is checked here — against a set
//! reloaded every `RELOAD`, and by one indexed lookup for an id not in it (a device added
//! since).

use crate::model::DeviceId;
use crate::store::Store;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long the set is trusted: a removed or disabled device is dropped within this time.
const RELOAD: Duration = Duration::from_secs(2);

pub struct Known {
    store: Store,
    ids: HashSet<String>,
    loaded: Option<Instant>,
}

impl Known {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            ids: HashSet::new(),
            loaded: None,
        }
    }

    /// Whether `device` is registered and enabled. A store error counts as "yes" (it is
    /// logged): the message is stored rather than lost, the broker has checked the login.
    pub async fn contains(&mut self, device: &DeviceId) -> bool {
        if self.loaded.is_none_or(|t| t.elapsed() > RELOAD) {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.devices()).await {
                Ok(Ok(list)) => {
                    self.ids = list
                        .into_iter()
                        .filter(|d| d.enabled)
                        .map(|d| d.id.to_string())
                        .collect();
                    self.loaded = Some(Instant::now());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the device list"),
                Err(e) => tracing::warn!(error = %e, "device list task failed"),
            }
        }
        if self.ids.contains(device.as_str()) {
            return true;
        }
        let (store, id) = (self.store.clone(), device.as_str().to_owned());
        match tokio::task::spawn_blocking(move || store.device(&id)).await {
            Ok(Ok(Some(d))) if d.enabled => {
                self.ids.insert(device.as_str().to_owned());
                true
            }
            Ok(Ok(_)) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %device, "cannot look the device up");
                true
            }
            Err(_) => true,
        }
    }
}
