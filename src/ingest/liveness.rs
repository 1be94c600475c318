//! Turns silence and ended connections into `offline` transitions: a device whose last MQTT
//! connection ended without a last will (clean DISCONNECT, removal) or that sent nothing within
//! the staleness window is marked offline, stored and pushed like any presence change.

use super::Sinks;
use crate::model::{DeviceId, Status, now_ms};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// How often the staleness window is checked.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Runs until `shutdown`. `ended` receives device ids whose last connection closed.
pub async fn run(
    sinks: Sinks,
    mut ended: UnboundedReceiver<String>,
    stale_after: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let window_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            Some(id) = ended.recv() => {
                if let Some(device) = DeviceId::parse(&id)
                    && sinks.commands.presence().gone(&device)
                {
                    sinks.presence_changed(&device, Status::Offline, None).await?;
                }
            }
            _ = sweep.tick() => {
                for device in sinks.commands.presence().expire(now_ms().saturating_sub(window_ms)) {
                    tracing::info!(%device, "no message within the staleness window");
                    sinks.presence_changed(&device, Status::Offline, None).await?;
                }
            }
        }
    }
}
