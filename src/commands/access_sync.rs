//! Keeps every device's access list current: when a device comes online, or the list changes,
//! it sends `syncAccessIds` `{"version","ids"}` and records the version the device confirms.
//! One sync per device at a time; a trigger during a sync runs it once more afterwards. The
//! devices waiting are a set ([`Due`]), so the queue is bounded by the number of devices
//! however often they reconnect. The syncs are tasks of this service: a failed one is logged,
//! and stopping aborts the rest.

use super::Commands;
use crate::model::{Command, DeviceId};
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Per device: a sync is running; `true` = run again when it ends.
type Running = Arc<Mutex<HashMap<DeviceId, bool>>>;

/// Devices that came online (or whose list changed) and wait for a sync.
#[derive(Default)]
pub struct Due {
    devices: Mutex<HashSet<DeviceId>>,
    wake: Notify,
}

impl Due {
    pub fn add(&self, device: &DeviceId) {
        let mut set = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(device.clone());
        drop(set);
        self.wake.notify_one();
    }

    /// Waits until a device is due, then takes every due device.
    pub(super) async fn take(&self) -> Vec<DeviceId> {
        loop {
            let taken: Vec<DeviceId> = {
                let mut set = self.devices.lock().unwrap_or_else(|e| e.into_inner());
                set.drain().collect()
            };
            if !taken.is_empty() {
                return taken;
            }
            self.wake.notified().await;
        }
    }
}

/// Runs until `shutdown`; `due` holds the devices to sync (from `Commands::device_online`).
pub async fn run(
    commands: Commands,
    store: Store,
    due: Arc<Due>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let running: Running = Arc::default();
    let mut syncs = JoinSet::new();
    loop {
        let devices = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = syncs.join_next() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "an access-list sync task failed");
                }
                continue;
            }
            d = due.take() => d,
        };
        for device in devices {
            start(&mut syncs, &running, &commands, &store, device, timeout);
        }
    }
    // Unfinished syncs run again when the device next comes online.
    syncs.shutdown().await;
    Ok(())
}

/// Starts `device`'s sync, or marks the running one to run once more.
fn start(
    syncs: &mut JoinSet<()>,
    running: &Running,
    commands: &Commands,
    store: &Store,
    device: DeviceId,
    timeout: Duration,
) {
    {
        let mut map = running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(again) = map.get_mut(&device) {
            *again = true;
            return;
        }
        map.insert(device.clone(), false);
    }
    let (commands, store, running) = (commands.clone(), store.clone(), running.clone());
    syncs.spawn(async move {
        loop {
            sync_one(&commands, &store, &device, timeout).await;
            let mut map = running.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&device) == Some(&true) {
                map.insert(device.clone(), false);
            } else {
                map.remove(&device);
                return;
            }
        }
    });
}

/// Asks for a sync of every online device (after the list changed).
pub fn sync_all(commands: &Commands) {
    for device in commands.presence().online() {
        commands.device_online(&device);
    }
}

async fn sync_one(commands: &Commands, store: &Store, device: &DeviceId, timeout: Duration) {
    let s = store.clone();
    let (version, ids) = match tokio::task::spawn_blocking(move || s.access_list()).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return tracing::error!(error = %e, "cannot read the access list"),
        Err(_) => return,
    };
    let value = json!({ "version": version, "ids": ids });
    match commands
        .request(device, Command::SyncAccessIds, Some(value), timeout)
        .await
    {
        Ok(reply) => {
            let confirmed = reply
                .get("version")
                .and_then(Value::as_i64)
                .unwrap_or(version);
            let (s, d) = (store.clone(), device.to_string());
            let saved =
                tokio::task::spawn_blocking(move || s.set_device_access_version(&d, confirmed))
                    .await;
            if let Ok(Err(e)) = saved {
                tracing::error!(error = %e, "cannot record the access-list version");
            }
            tracing::info!(%device, version = confirmed, "access list in sync");
        }
        // A battery device that sleeps again before it answers: it gets the list next time.
        Err(e @ super::CommandError::Offline(_)) => {
            tracing::info!(%device, error = %e, "access-list sync ended: the device went offline");
        }
        Err(e) => tracing::warn!(%device, error = %e, "access-list sync failed"),
    }
}
