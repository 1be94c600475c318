//! The embedded rumqttd broker, reachable only on loopback, and the gate in front of it that
//! owns the public MQTT port (see `gate`). rumqttd has no stop API and hides bind errors inside
//! its own threads: `Broker::start` checks that it really listens, and its threads end with the
//! process.

mod frame;
mod gate;
mod relay;
mod sessions;
mod strict;
pub mod topic;

pub use gate::{MqttListeners, run as run_gate};
pub use sessions::{SessionGuard, Sessions};

use anyhow::Context;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A device's connection: TCP, or TLS over TCP.
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> ClientIo for T {}

/// Checks a device's MQTT credentials (username = device id, password). May touch the
/// database: callers run it in `spawn_blocking`.
pub type Verifier = Arc<dyn Fn(&str, &[u8]) -> bool + Send + Sync>;

/// Client id of the in-process subscriber. The dot is not allowed in device ids, so no device
/// can take over this session.
const LINK_ID: &str = "rzmon.ingest";
/// Router segments: a topic keeps up to SEGMENT_SIZE × SEGMENT_COUNT bytes in memory. Device
/// publishes never reach the broker (the gate hands them to ingest), so the only topics are
/// the devices' command topics: a few hundred bytes per command, rarely more than a handful
/// pending, so 64 KiB × 2 per device is plenty and bounds the broker's memory by device count.
const SEGMENT_SIZE: usize = 64 * 1024;
const SEGMENT_COUNT: usize = 2;
/// How long `start` waits for rumqttd's listener.
const START_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of the internal broker.
pub struct BrokerConfig {
    /// Largest MQTT packet in bytes (the gate enforces the same limit first).
    pub max_packet: usize,
    pub max_connections: usize,
    /// Also checked by rumqttd itself, so a local process that bypasses the gate still needs
    /// valid device credentials.
    pub verifier: Verifier,
}

/// The in-process end of the broker, used by `ingest::run` to publish commands to devices.
pub struct Link {
    pub tx: LinkTx,
    pub rx: LinkRx,
}

/// A started broker.
pub struct Broker {
    /// Loopback address rumqttd listens on; only the gate connects here.
    pub internal_addr: SocketAddr,
    /// Taken once by ingest.
    pub link: Option<Link>,
}

/// Settings of the public MQTT port.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Topic prefix (`rz`).
    pub prefix: String,
    pub max_packet: usize,
    /// CONNECT must arrive within this time (10 s).
    pub connect_timeout: Duration,
    /// Messages per second per device; 0 = unlimited. Excess is delayed (TCP back-pressure).
    pub rate_per_device: u32,
    /// Concurrent device connections.
    pub max_connections: usize,
    /// Concurrent connections from one IP address (`RZMON_MQTT_PER_ADDRESS`).
    pub per_address: usize,
    /// Failed logins per IP before that IP is refused for `login_lock`.
    pub login_failures: u32,
    pub login_lock: Duration,
}

impl Broker {
    /// Starts rumqttd on a free loopback port and creates the local link. Fails if the broker
    /// does not accept connections within a few seconds.
    pub fn start(cfg: BrokerConfig) -> anyhow::Result<Self> {
        let internal_addr = free_loopback_port()?;
        let mut connections = ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: cfg.max_packet,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: false,
        };
        let verifier = cfg.verifier;
        connections.set_auth_handler(move |_client_id, user: String, pass: String| {
            let verifier = verifier.clone();
            // The callback runs on rumqttd's single-threaded listener: never block it.
            async move {
                tokio::task::spawn_blocking(move || verifier(&user, pass.as_bytes()))
                    .await
                    .unwrap_or(false)
            }
        });
        let server = ServerSettings {
            name: "rzmon-internal".into(),
            listen: internal_addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                // Devices plus the ingest link and headroom for reconnect overlap.
                max_connections: cfg.max_connections * 2 + 16,
                max_outgoing_packet_count: 200,
                max_segment_size: SEGMENT_SIZE,
                max_segment_count: SEGMENT_COUNT,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("internal".to_owned(), server)])),
            ..Default::default()
        };
        let mut broker = rumqttd::Broker::new(config);
        let (tx, rx) = broker
            .link(LINK_ID)
            .context("cannot create the broker's local link")?;
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .context("cannot start the broker thread")?;
        wait_listening(internal_addr)?;
        tracing::debug!(%internal_addr, "internal broker listening");
        Ok(Self {
            internal_addr,
            link: Some(Link { tx, rx }),
        })
    }

    /// True when the internal listener accepts a TCP connection right now.
    pub async fn is_up(&self) -> bool {
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(self.internal_addr)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

/// A loopback port that was free a moment ago (rumqttd binds by address, not by listener).
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free loopback port for the internal broker")?;
    Ok(l.local_addr()?)
}

fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the embedded MQTT broker is not listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
