//! The device side of the app, one of two: the embedded rumqttd broker behind the gate on
//! `RZMON_MQTT_ADDR` (with the device-auth watcher and the broker check), or a client of the
//! external broker named by `RZMON_BROKER`. Both fill ingest's one bounded queue; ingest and
//! everything above it do not know which one runs.

use super::{Parts, Services, Stage};
use crate::broker::{self, Broker, BrokerConfig, GateConfig, Link, MqttListeners, Sessions};
use crate::commands::OutboundRx;
use crate::device_auth::DeviceAuth;
use crate::external::{self, ExternalDeps, ExternalSettings};
use crate::health::{self, Health};
use crate::model::Inbound;
use crate::mqtt_url::BrokerUrl;
use anyhow::Context;
use std::time::Duration;
use tokio::sync::mpsc::{self, Sender, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

/// How often `/health`'s broker check is refreshed (embedded broker).
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What ingest gets from the device side.
pub(super) struct DeviceSide {
    /// The embedded broker's local link (ingest publishes commands on it), `None` for an
    /// external broker (its client publishes them).
    pub link: Option<Link>,
    /// Commands for ingest to publish (`None`: the external client took them).
    pub outbound: Option<OutboundRx>,
    /// Devices whose last connection ended (the gate reports them; nothing for an external
    /// broker, where presence comes from status messages and the staleness window).
    pub ended: UnboundedReceiver<String>,
    /// Cancelled by the app when ingest exits (the broker check reports it).
    pub ingest_exited: CancellationToken,
}

/// Starts rumqttd and spawns the gate (on the plain and/or TLS listener), the device-auth
/// watcher and the broker check.
pub(super) fn embedded(
    s: &mut Services,
    p: &Parts,
    listener: MqttListeners,
    inbound: Sender<Inbound>,
    outbound: OutboundRx,
) -> anyhow::Result<DeviceSide> {
    let settings = &p.settings;
    let device_auth = DeviceAuth::new(p.store.clone());
    let verifier = device_auth.verifier();
    let max_packet = settings.mqtt_max_packet as usize;
    let mut broker = Broker::start(BrokerConfig {
        max_packet,
        max_connections: settings.mqtt_max_connections as usize,
        verifier: verifier.clone(),
    })
    .context("the embedded MQTT broker did not start")?;
    let link = broker.link.take().context("broker link already taken")?;
    let (sessions, ended) = Sessions::with_end_reports();
    let gate_cfg = GateConfig {
        prefix: settings.topic_prefix.clone(),
        max_packet,
        connect_timeout: Duration::from_secs(5),
        rate_per_device: settings.mqtt_rate,
        max_connections: settings.mqtt_max_connections as usize,
        per_address: settings.mqtt_per_address as usize,
        login_failures: crate::auth::policy::IP_MAX_FAILURES,
        login_lock: crate::auth::policy::IP_LOCK,
    };
    s.spawn("mqtt gate", Stage::Devices, |stop| {
        broker::run_gate(
            listener,
            broker.internal_addr,
            gate_cfg,
            verifier,
            sessions.clone(),
            p.metrics.clone(),
            inbound,
            stop,
        )
    });
    s.spawn("device auth", Stage::Devices, |stop| {
        device_auth.watch(sessions, stop)
    });
    let ingest_exited = CancellationToken::new();
    let exited = ingest_exited.clone();
    s.spawn("broker check", Stage::Devices, |stop| {
        watch_broker(broker, exited, p.health.clone(), stop)
    });
    Ok(DeviceSide {
        link: Some(link),
        outbound: Some(outbound),
        ended,
        ingest_exited,
    })
}

/// Spawns the external broker's client; it owns the `broker` health check.
pub(super) fn external(
    s: &mut Services,
    p: &Parts,
    url: BrokerUrl,
    inbound: Sender<Inbound>,
    outbound: OutboundRx,
) -> DeviceSide {
    let share = &p.settings.integrations.broker_share;
    let deps = ExternalDeps {
        settings: ExternalSettings {
            broker: url,
            prefix: p.settings.topic_prefix.clone(),
            share: (!share.is_empty()).then(|| share.clone()),
            max_packet: p.settings.mqtt_max_packet as usize,
        },
        store: p.store.clone(),
        metrics: p.metrics.clone(),
        health: p.health.clone(),
        inbound,
        outbound,
    };
    s.spawn("external broker", Stage::Devices, |stop| {
        external::run(deps, stop)
    });
    let (_, ended) = mpsc::unbounded_channel();
    DeviceSide {
        link: None,
        outbound: None,
        ended,
        ingest_exited: CancellationToken::new(),
    }
}

/// Keeps the broker check ok only while the internal listener answers and ingest runs.
async fn watch_broker(
    broker: Broker,
    ingest_exited: CancellationToken,
    health: Health,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if ingest_exited.is_cancelled() {
            health.set_failed(health::BROKER, "the ingest link to the broker stopped");
        } else if broker.is_up().await {
            health.set_ok(health::BROKER);
        } else {
            health.set_failed(
                health::BROKER,
                "the internal MQTT broker does not accept connections",
            );
        }
    }
}
