//! The gate: the public MQTT port. It reads the client-to-broker half of every connection with
//! rumqttc's codec, admits only devices that log in as themselves, lets them publish only on
//! their own topics and subscribe only to their own command topic, and forwards the original
//! bytes to the loopback broker. The broker-to-client half is copied untouched.

use super::budget::{Budget, Ticket};
use super::frame::{self, FrameError};
use super::sessions::Sessions;
use super::{GateConfig, Verifier, topic};
use crate::lockout::Lockout;
use crate::metrics::Metrics;
use crate::model::{DeviceId, Kind};
use bytes::BytesMut;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a connection task needs.
struct Gate {
    cfg: GateConfig,
    upstream: SocketAddr,
    verifier: Verifier,
    sessions: Sessions,
    metrics: Arc<Metrics>,
    lockout: Lockout<IpAddr>,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    slots: Arc<Semaphore>,
    budget: Budget,
}

/// Accepts device connections until `shutdown`; then closes every session and returns.
pub async fn run(
    listener: TcpListener,
    upstream: SocketAddr,
    cfg: GateConfig,
    verifier: Verifier,
    sessions: Sessions,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let rate = NonZeroU32::new(cfg.rate_per_device)
        .map(|n| RateLimiter::keyed(Quota::per_second(n).allow_burst(n)));
    let gate = Arc::new(Gate {
        lockout: Lockout::new(cfg.login_failures, cfg.login_lock),
        slots: Arc::new(Semaphore::new(cfg.max_connections)),
        budget: Budget::default(),
        cfg,
        upstream,
        verifier,
        sessions,
        metrics,
        rate,
    });
    let tasks = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
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
        // Per-address and pending budgets first (budget.rs), so cheap connections never
        // reach the shared slots.
        let mut ticket = match gate.budget.admit(peer.ip()) {
            Ok(t) => t,
            Err(log) => {
                gate.metrics.mqtt_over_budget.inc();
                if log {
                    tracing::warn!(ip = %peer.ip(), "MQTT connections from this address over budget: new ones are closed (logged once a minute)");
                }
                continue;
            }
        };
        let Ok(slot) = gate.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = gate.cfg.max_connections, "MQTT connection refused: too many connections");
            gate.metrics.mqtt_violations.inc();
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gate = gate.clone();
        let stop = shutdown.child_token();
        tasks.spawn(async move {
            gate.connection(stream, peer, stop, &mut ticket).await;
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Why a session ended abnormally.
enum End {
    Violation(String),
    Closed,
}

impl Gate {
    async fn connection(
        &self,
        mut client: TcpStream,
        peer: SocketAddr,
        stop: CancellationToken,
        ticket: &mut Ticket,
    ) {
        let mut buf = BytesMut::with_capacity(1024);
        let first = tokio::select! {
            () = stop.cancelled() => return,
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
        if upstream.write_all(&raw).await.is_err() {
            return;
        }
        let session = self.sessions.register(device.as_str(), stop);
        self.metrics.mqtt_sessions.inc();
        tracing::info!(%device, %peer, "device connected");
        let (mut client_rd, mut client_wr) = client.into_split();
        let (mut up_rd, mut up_wr) = upstream.into_split();
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_rd, &mut client_wr).await;
            let _ = client_wr.shutdown().await;
        });
        let end = tokio::select! {
            () = session.token.cancelled() => End::Closed,
            end = self.forward(&device, &mut client_rd, &mut up_wr, &mut buf) => end,
        };
        down.abort();
        let _ = up_wr.shutdown().await;
        match end {
            End::Violation(reason) => self.violation(Some(&device), peer, &reason),
            End::Closed => tracing::info!(%device, %peer, "device disconnected"),
        }
    }

    /// Checks the CONNECT; on refusal answers with a CONNACK and returns `None`.
    async fn admit(
        &self,
        client: &mut TcpStream,
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

    /// Forwards client packets that keep to the rules; returns why the session ended.
    async fn forward(
        &self,
        device: &DeviceId,
        client: &mut tokio::net::tcp::OwnedReadHalf,
        upstream: &mut tokio::net::tcp::OwnedWriteHalf,
        buf: &mut BytesMut,
    ) -> End {
        let prefix = self.cfg.prefix.as_str();
        let rate_key = device.to_string();
        loop {
            let (packet, raw) = match frame::read(client, buf, self.cfg.max_packet).await {
                Ok(Some(p)) => p,
                Ok(None) | Err(FrameError::Io(_)) => return End::Closed,
                Err(e) => return End::Violation(e.to_string()),
            };
            match &packet {
                Packet::Publish(p) => {
                    let Some(kind) = topic::may_publish(prefix, device, &p.topic) else {
                        return End::Violation(format!("publish to foreign topic {:?}", p.topic));
                    };
                    if p.retain && kind != Kind::Status {
                        return End::Violation(format!("retained publish on {:?}", p.topic));
                    }
                    if let Some(rate) = &self.rate {
                        rate.until_key_ready(&rate_key).await;
                    }
                }
                Packet::Subscribe(s) => {
                    let own = topic::command_topic(prefix, device);
                    if let Some(f) = s.filters.iter().find(|f| f.path != own) {
                        return End::Violation(format!("subscribe to {:?}", f.path));
                    }
                }
                Packet::Unsubscribe(u) => {
                    let own = topic::command_topic(prefix, device);
                    if let Some(t) = u.topics.iter().find(|t| **t != own) {
                        return End::Violation(format!("unsubscribe from {t:?}"));
                    }
                }
                Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubRel(_)
                | Packet::PubComp(_)
                | Packet::PingReq => {}
                Packet::Disconnect => {
                    let _ = upstream.write_all(&raw).await;
                    return End::Closed;
                }
                other => {
                    return End::Violation(format!("unexpected packet {:?}", packet_name(other)));
                }
            }
            if upstream.write_all(&raw).await.is_err() {
                return End::Closed;
            }
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
async fn refuse(client: &mut TcpStream, code: ConnectReturnCode) {
    let mut out = BytesMut::with_capacity(4);
    if Packet::ConnAck(ConnAck::new(code, false))
        .write(&mut out, 16)
        .is_ok()
    {
        let _ = client.write_all(&out).await;
    }
    let _ = client.shutdown().await;
}
