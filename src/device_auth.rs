//! Device credentials for the MQTT port: the verifier the gate (and rumqttd) call, and the
//! watcher that closes a live session when its device is removed, disabled or re-keyed —
//! also when the CLI did it from another process. The watcher compares the database with the
//! key each device logged in with, so a change between two looks is never missed.

use crate::broker::{Sessions, Verifier};
use crate::secrets;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the device table is compared with live sessions.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Device id → stored hash it last logged in with.
type LoggedIn = Arc<Mutex<HashMap<String, String>>>;

#[derive(Clone)]
pub struct DeviceAuth {
    store: Store,
    logged_in: LoggedIn,
}

impl DeviceAuth {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            logged_in: LoggedIn::default(),
        }
    }

    /// An enabled device whose stored keyed hash matches the password.
    pub fn verifier(&self) -> Verifier {
        let this = self.clone();
        Arc::new(
            move |id: &str, password: &[u8]| match this.store.device(id) {
                Ok(Some(d))
                    if d.enabled && secrets::verify_device_secret(password, &d.secret_hash) =>
                {
                    this.lock().insert(id.to_owned(), d.secret_hash);
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = %e, "device lookup failed during MQTT login");
                    false
                }
            },
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.logged_in.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every second: closes sessions of devices that are gone, disabled or have a new key.
    pub async fn watch(self, sessions: Sessions, stop: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let s = self.store.clone();
            let devices = match tokio::task::spawn_blocking(move || s.devices()).await {
                Ok(Ok(list)) => list
                    .into_iter()
                    .map(|d| (d.id.to_string(), (d.secret_hash, d.enabled)))
                    .collect::<HashMap<_, _>>(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the device list");
                    continue;
                }
                Err(_) => continue,
            };
            let connected = sessions.connected();
            let mut logged_in = self.lock();
            for id in connected {
                let valid = match (devices.get(&id), logged_in.get(&id)) {
                    (Some((hash, true)), Some(used)) => hash == used,
                    (Some((_, true)), None) => true,
                    _ => false,
                };
                if !valid {
                    tracing::info!(device = %id, "device removed, disabled or re-keyed; closing its connection");
                    logged_in.remove(&id);
                    sessions.disconnect(&id);
                }
            }
        }
    }
}
