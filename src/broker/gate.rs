//! The gate: the public MQTT port. It reads every device packet with rumqttc's codec, admits
//! only devices that log in as themselves, lets them publish only on their own topics and
//! subscribe only to their own command topic. What an admitted connection does next (publishes
//! to ingest, PUBACK after the commit, the broker's packets to the device) is in `relay`.

use super::frame::{self, FrameError};
use super::relay::{self, End, Session};
use super::sessions::Sessions;
use super::{ClientIo, GateConfig, Verifier, topic};
use crate::budget::{self, Budget, Ticket};
use crate::lockout::Lockout;
use crate::metrics::Metrics;
use crate::model::{DeviceId, Inbound, Kind};
use crate::tls::Tls;
use bytes::BytesMut;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a connection task needs.
pub(super) struct Gate {
    pub(super) cfg: GateConfig,
    upstream: SocketAddr,
    verifier: Verifier,
    sessions: Sessions,
    pub(super) metrics: Arc<Metrics>,
    lockout: Lockout<IpAddr>,
    pub(super) rate: Option<DefaultKeyedRateLimiter<DeviceId>>,
    slots: Arc<Semaphore>,
    /// Device publishes go here (ingest), never to the broker.
    pub(super) inbound: mpsc::Sender<Inbound>,
    budget: Budget,
}

/// The public MQTT listeners: plain and over TLS, each optional.
pub struct MqttListeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<(TcpListener, Tls)>,
}

/// Accepts device connections until `shutdown`; then closes every session and returns.
/// Device publishes go to `inbound`. Both listeners share the budgets, slots and lockout.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    listeners: MqttListeners,
    upstream: SocketAddr,
    cfg: GateConfig,
    verifier: Verifier,
    sessions: Sessions,
    metrics: Arc<Metrics>,
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let rate = NonZeroU32::new(cfg.rate_per_device)
        .map(|n| RateLimiter::keyed(Quota::per_second(n).allow_burst(n)));
    let gate = Arc::new(Gate {
        lockout: Lockout::new(cfg.login_failures, cfg.login_lock),
        slots: Arc::new(Semaphore::new(cfg.max_connections)),
        budget: Budget::new(budget::Limits {
            per_address: cfg.per_address,
            pending_total: cfg.max_connections / 4,
            ..budget::MQTT
        }),
        cfg,
        upstream,
        verifier,
        sessions,
        metrics,
        rate,
        inbound,
    });
    let tasks = TaskTracker::new();
    let mut loops = tokio::task::JoinSet::new();
    if let Some(l) = listeners.plain {
        loops.spawn(
            gate.clone()
                .accept(l, None, tasks.clone(), shutdown.clone()),
        );
    }
    if let Some((l, tls)) = listeners.tls {
        loops.spawn(
            gate.clone()
                .accept(l, Some(tls), tasks.clone(), shutdown.clone()),
        );
    }
    while loops.join_next().await.is_some() {}
    tasks.close();
    tasks.wait().await;
    Ok(())
}

impl Gate {
    /// One listener's accept loop; connections are tracked by `tasks`.
    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Tls>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(error = %e, "MQTT accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Per-address and pending budgets first (crate::budget), so cheap connections
            // never reach the shared slots. A TLS connection stays pending until its CONNECT.
            let mut ticket = match self.budget.admit(peer.ip()) {
                Ok(t) => t,
                Err(log) => {
                    self.metrics.mqtt_over_budget.inc();
                    if log {
                        tracing::warn!(ip = %peer.ip(), "MQTT connections from this address over budget: new ones are closed (logged once a minute)");
                    }
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max = self.cfg.max_connections, "MQTT connection refused: too many connections");
                self.metrics.mqtt_violations.inc();
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (gate, tls) = (self.clone(), tls.clone());
            let stop = shutdown.child_token();
            tasks.spawn(async move {
                match tls {
                    None => gate.connection(stream, peer, stop, &mut ticket).await,
                    Some(tls) => {
                        let s = tokio::select! {
                            () = stop.cancelled() => return,
                            log = ticket.evicted() => return gate.evicted(peer, log),
                            s = tls.accept(stream) => s,
                        };
                        match s {
                            Ok(s) => gate.connection(s, peer, stop, &mut ticket).await,
                            Err(e) => {
                                gate.metrics.tls_handshake_failures.inc();
                                tracing::debug!(%peer, error = %e, "TLS handshake failed (MQTT)");
                            }
                        }
                    }
                }
                drop(slot);
            });
        }
    }

    async fn connection<C: ClientIo>(
        &self,
        mut client: C,
        peer: SocketAddr,
        stop: CancellationToken,
        ticket: &mut Ticket,
    ) {
        let mut buf = BytesMut::with_capacity(1024);
        let first = tokio::select! {
            () = stop.cancelled() => return,
            log = ticket.evicted() => return self.evicted(peer, log),
            r = tokio::time::timeout(
                self.cfg.connect_timeout,
                frame::read(&mut client, &mut buf, self.cfg.max_packet),
            ) => r,
        };
        let (connect, raw) = match first {
            Ok(Ok(Some((Packet::Connect(c), raw)))) => (c, raw),
            Ok(Ok(None)) => return,
            Err(_) => return self.violation(None, peer, "no CONNECT within the timeout"),
            Ok(Ok(Some(_))) => return self.violation(None, peer, "first packet is not CONNECT"),
            Ok(Err(e)) => {
                // MQTT-3.1.2-2: an unsupported protocol level is answered with CONNACK 0x01.
                if matches!(&e, FrameError::Strict(v) if v.rule == "MQTT-3.1.2-2") {
                    refuse(&mut client, ConnectReturnCode::RefusedProtocolVersion).await;
                }
                return self.violation(None, peer, &e.to_string());
            }
        };
        let Some(device) = self.admit(&mut client, peer, &connect).await else {
            return;
        };
        ticket.authenticated();
        let mut upstream = match TcpStream::connect(self.upstream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "internal broker unreachable");
                refuse(&mut client, ConnectReturnCode::ServiceUnavailable).await;
                return;
            }
        };
        let _ = upstream.set_nodelay(true);
        drop(raw);
        // The broker gets the CONNECT without the last will: the relay delivers it itself,
        // since device publishes never reach the broker.
        let mut will = None;
        let mut up_connect = connect.clone();
        std::mem::swap(&mut will, &mut up_connect.last_will);
        let mut out = BytesMut::new();
        if Packet::Connect(up_connect)
            .write(&mut out, self.cfg.max_packet)
            .is_err()
            || upstream.write_all(&out).await.is_err()
        {
            return;
        }
        let session = self.sessions.register(device.as_str(), stop);
        self.metrics.mqtt_sessions.inc();
        tracing::info!(%device, %peer, "device connected");
        let s = Session {
            device: &device,
            keep_alive: connect.keep_alive,
            will,
            stop: &session.token,
        };
        match relay::run(self, s, client, upstream, buf).await {
            End::Violation(reason) => self.violation(Some(&device), peer, &reason),
            End::Silent => {
                tracing::info!(%device, %peer, "device silent for 1.5 × its keep-alive; disconnected")
            }
            End::NotStored => {
                tracing::warn!(%device, %peer, "device disconnected: a message could not be stored (not acknowledged)")
            }
            End::Closed | End::Disconnect => tracing::info!(%device, %peer, "device disconnected"),
        }
    }

    /// A connection without CONNECT yet, closed to make room for a newcomer (budget full).
    fn evicted(&self, peer: SocketAddr, log: bool) {
        self.metrics.mqtt_over_budget.inc();
        if log {
            tracing::warn!(ip = %peer.ip(), "MQTT connections from this address that sent no CONNECT yet are closed to make room for others (pending budget full; logged once a minute)");
        }
    }

    /// Checks the CONNECT; on refusal answers with a CONNACK and returns `None`.
    async fn admit<C: ClientIo>(
        &self,
        client: &mut C,
        peer: SocketAddr,
        connect: &Connect,
    ) -> Option<DeviceId> {
        let ip = peer.ip();
        let refusal = if self.lockout.locked(&ip).is_some() {
            Some((
                ConnectReturnCode::NotAuthorized,
                "too many failed logins from this address".to_owned(),
            ))
        } else {
            self.check_login(connect).await.err()
        };
        if let Some((code, reason)) = refusal {
            let user = connect
                .login
                .as_ref()
                .map(|l| l.username.as_str())
                .unwrap_or("");
            tracing::warn!(%peer, username = user, client_id = %connect.client_id, reason, "MQTT login refused");
            self.metrics.mqtt_logins_refused.inc();
            if code == ConnectReturnCode::BadUserNamePassword {
                self.lockout.fail(&ip);
            }
            refuse(client, code).await;
            return None;
        }
        self.lockout.succeed(&ip);
        DeviceId::parse(&connect.client_id)
    }

    async fn check_login(&self, c: &Connect) -> Result<(), (ConnectReturnCode, String)> {
        use ConnectReturnCode::{BadClientId, BadUserNamePassword, NotAuthorized};
        let login = c
            .login
            .as_ref()
            .ok_or((BadUserNamePassword, "no username or password".to_owned()))?;
        let device = DeviceId::parse(&login.username).ok_or((
            BadUserNamePassword,
            "username is not a valid device id".to_owned(),
        ))?;
        if c.client_id != login.username {
            return Err((
                BadClientId,
                "client id differs from the username".to_owned(),
            ));
        }
        let (verifier, user, pass) = (
            self.verifier.clone(),
            login.username.clone(),
            login.password.clone(),
        );
        let ok = tokio::task::spawn_blocking(move || verifier(&user, pass.as_bytes()))
            .await
            .unwrap_or(false);
        if !ok {
            return Err((
                BadUserNamePassword,
                "unknown device or wrong password".to_owned(),
            ));
        }
        if let Some(will) = &c.last_will
            && topic::may_publish(&self.cfg.prefix, &device, &will.topic) != Some(Kind::Status)
        {
            return Err((
                NotAuthorized,
                format!("last will must be on {}/{device}/status", self.cfg.prefix),
            ));
        }
        Ok(())
    }

    /// Checks one packet of an admitted device against the rules; a publish's topic kind is
    /// returned. `Err` is the violation that closes the connection.
    pub(super) fn check(&self, device: &DeviceId, packet: &Packet) -> Result<Option<Kind>, String> {
        let prefix = self.cfg.prefix.as_str();
        match packet {
            Packet::Publish(p) => {
                let Some(kind) = topic::may_publish(prefix, device, &p.topic) else {
                    return Err(format!("publish to foreign topic {:?}", p.topic));
                };
                if p.retain && kind != Kind::Status {
                    return Err(format!("retained publish on {:?}", p.topic));
                }
                Ok(Some(kind))
            }
            Packet::Subscribe(s) => {
                let own = topic::command_topic(prefix, device);
                match s.filters.iter().find(|f| f.path != own) {
                    Some(f) => Err(format!("subscribe to {:?}", f.path)),
                    None => Ok(None),
                }
            }
            Packet::Unsubscribe(u) => {
                let own = topic::command_topic(prefix, device);
                match u.topics.iter().find(|t| **t != own) {
                    Some(t) => Err(format!("unsubscribe from {t:?}")),
                    None => Ok(None),
                }
            }
            Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::PingReq
            | Packet::Disconnect => Ok(None),
            other => Err(format!("unexpected packet {:?}", packet_name(other))),
        }
    }

    fn violation(&self, device: Option<&DeviceId>, peer: SocketAddr, reason: &str) {
        self.metrics.mqtt_violations.inc();
        let device = device.map(DeviceId::as_str).unwrap_or("-");
        tracing::warn!(device, %peer, reason, "MQTT connection closed for a violation");
    }
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp => "PINGRESP",
        _ => "packet",
    }
}

/// Sends a refusing CONNACK and closes.
async fn refuse<C: ClientIo>(client: &mut C, code: ConnectReturnCode) {
    let mut out = BytesMut::with_capacity(4);
    if Packet::ConnAck(ConnAck::new(code, false))
        .write(&mut out, 16)
        .is_ok()
    {
        let _ = client.write_all(&out).await;
    }
    let _ = client.shutdown().await;
}
