//! One admitted device connection, after its CONNECT: reads the device's packets (each checked
//! by `Gate::check`), hands its publishes to ingest and answers PUBACK (QoS 1) or PUBREC
//! (QoS 2) only when ingest's ack arrives — after the commit — in the order the publishes
//! came; copies the broker's packets (CONNACK, SUBACK, commands) to the device.
//!
//! So the broker never sees device publishes: it carries only what goes to devices. The relay
//! owns the device's keep-alive (it answers PINGREQ and closes a connection silent for 1.5 ×
//! keep-alive) and keeps its own loopback connection to the broker alive with PINGREQs whose
//! answers it swallows. A last will is delivered by the relay itself when the connection ends
//! without DISCONNECT.

use super::ClientIo;
use super::frame::{self, FrameError};
use super::gate::Gate;
use crate::model::{Ack, DeviceId, Inbound, Kind};
use bytes::BytesMut;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{LastWill, Packet, PubAck, PubComp, PubRec};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Publishes of one connection that are read but not yet acknowledged. At the limit the relay
/// stops reading that socket until acknowledgements come back (back-pressure). Devices
/// normally keep far fewer in flight (rumqttc: 100).
pub const MAX_PENDING: usize = 256;
/// A device that does not take our packets for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a last will may wait for room in ingest's queue.
const WILL_TIMEOUT: Duration = Duration::from_secs(2);

/// First byte of a CONNACK (type 2, no flags).
const CONNACK: u8 = 0x20;
/// A PINGRESP packet: type 13, no flags, no body.
const PINGRESP: [u8; 2] = [0xd0, 0x00];

/// Why a session ended.
pub enum End {
    /// The device sent DISCONNECT: no last will.
    Disconnect,
    /// Socket closed, broker closed, removal, takeover or shutdown.
    Closed,
    /// Silent for 1.5 × its keep-alive.
    Silent,
    /// A message was not stored (the writer stopped): the connection is closed without
    /// acknowledging it, so the device re-sends it after reconnecting.
    NotStored,
    Violation(String),
}

/// An acknowledgement to send once ingest's ack arrives.
type Waiting = std::pin::Pin<Box<dyn Future<Output = Option<Packet>> + Send>>;

/// What the relay needs about the session.
pub struct Session<'a> {
    pub device: &'a DeviceId,
    pub keep_alive: u16,
    pub will: Option<LastWill>,
    pub stop: &'a CancellationToken,
}

/// Relays until the session ends; delivers the last will unless it ended with DISCONNECT.
pub async fn run<C: ClientIo>(
    gate: &Gate,
    s: Session<'_>,
    client: C,
    upstream: TcpStream,
    buf: BytesMut,
) -> End {
    let end = relay(gate, &s, client, upstream, buf).await;
    if !matches!(end, End::Disconnect)
        && let Some(will) = s.will
    {
        let m = Inbound {
            device: s.device.clone(),
            kind: Kind::Status,
            payload: will.message,
            ack: None,
        };
        if tokio::time::timeout(WILL_TIMEOUT, gate.inbound.send(m))
            .await
            .is_err()
        {
            tracing::warn!(device = %s.device, "last will not delivered: ingest is not taking messages");
        }
    }
    end
}

async fn relay<C: ClientIo>(
    gate: &Gate,
    s: &Session<'_>,
    client: C,
    upstream: TcpStream,
    mut buf: BytesMut,
) -> End {
    let max = gate.cfg.max_packet;
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let mut up_buf = BytesMut::with_capacity(256);
    let mut out = BytesMut::with_capacity(256);
    let mut waiting: FuturesOrdered<Waiting> = FuturesOrdered::new();
    // keep-alive 0 means "none" (the broker refuses it anyway).
    let silent_after = Duration::from_secs(u64::from(s.keep_alive)).mul_f32(1.5);
    let deadline = tokio::time::sleep(silent_after);
    tokio::pin!(deadline);
    let mut heartbeat = tokio::time::interval(
        Duration::from_secs(u64::from(s.keep_alive / 2)).max(Duration::from_secs(1)),
    );
    heartbeat.tick().await;
    // Nothing may reach the device before the broker's CONNACK (MQTT-3.2.0-1), not even the
    // PUBACK of a publish it sent right behind its CONNECT.
    match connack(gate, &mut up_rd, &mut up_buf).await {
        Some(raw) => {
            out.extend_from_slice(&raw);
            let accepted = raw.get(3) == Some(&0);
            if !write(&mut client_wr, &mut out).await || !accepted {
                return End::Closed;
            }
        }
        None => return End::Closed,
    }
    let end = loop {
        tokio::select! {
            biased;
            () = s.stop.cancelled() => break End::Closed,
            done = waiting.next(), if !waiting.is_empty() => {
                if !ready_acks(done, &mut waiting, &mut out) {
                    break End::NotStored;
                }
                if !write(&mut client_wr, &mut out).await {
                    break End::Closed;
                }
            }
            r = frame::read_raw(&mut up_rd, &mut up_buf, max) => match r {
                // Answers to our own heartbeat.
                Ok(Some(raw)) if raw[..] == PINGRESP => {}
                Ok(Some(raw)) => {
                    out.extend_from_slice(&raw);
                    if !write(&mut client_wr, &mut out).await {
                        break End::Closed;
                    }
                }
                Ok(None) | Err(_) => break End::Closed,
            },
            () = &mut deadline, if s.keep_alive > 0 => break End::Silent,
            _ = heartbeat.tick() => {
                encode(&Packet::PingReq, &mut out);
                if !write(&mut up_wr, &mut out).await {
                    break End::Closed;
                }
            }
            r = frame::read(&mut client_rd, &mut buf, max), if waiting.len() < MAX_PENDING => {
                let packet = match r {
                    Ok(Some((p, raw))) => (p, raw),
                    Ok(None) | Err(FrameError::Io(_)) => break End::Closed,
                    Err(e) => break End::Violation(e.to_string()),
                };
                deadline.as_mut().reset(Instant::now() + silent_after);
                match client_packet(gate, s, packet, &mut waiting, &mut out).await {
                    Step::Continue => {}
                    Step::ToClient => if !write(&mut client_wr, &mut out).await {
                        break End::Closed;
                    },
                    Step::ToBroker => if !write(&mut up_wr, &mut out).await {
                        break End::Closed;
                    },
                    Step::End(end) => break end,
                }
            }
        }
    };
    let _ = up_wr.shutdown().await;
    let _ = client_wr.shutdown().await;
    end
}

/// The broker's first packet, if it is a CONNACK and arrives within the connect timeout.
async fn connack(
    gate: &Gate,
    up: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> Option<bytes::Bytes> {
    let first = tokio::time::timeout(
        gate.cfg.connect_timeout,
        frame::read_raw(up, buf, gate.cfg.max_packet),
    )
    .await;
    match first {
        Ok(Ok(Some(raw))) if raw.first() == Some(&CONNACK) => Some(raw),
        _ => None,
    }
}

/// What to do after a device packet.
enum Step {
    Continue,
    /// Write `out` to the device.
    ToClient,
    /// Write `out` to the broker.
    ToBroker,
    End(End),
}

async fn client_packet(
    gate: &Gate,
    s: &Session<'_>,
    (packet, raw): (Packet, bytes::Bytes),
    waiting: &mut FuturesOrdered<Waiting>,
    out: &mut BytesMut,
) -> Step {
    let kind = match gate.check(s.device, &packet) {
        Ok(kind) => kind,
        Err(reason) => return Step::End(End::Violation(reason)),
    };
    match packet {
        Packet::Publish(p) => {
            let Some(kind) = kind else {
                return Step::End(End::Violation("publish without a kind".into()));
            };
            if let Some(rate) = &gate.rate {
                tokio::select! {
                    () = s.stop.cancelled() => return Step::End(End::Closed),
                    () = rate.until_key_ready(s.device) => {}
                }
            }
            let (ack, reply) = match p.qos {
                QoS::AtMostOnce => (None, None),
                QoS::AtLeastOnce => (Some(()), Some(Packet::PubAck(PubAck::new(p.pkid)))),
                QoS::ExactlyOnce => (Some(()), Some(Packet::PubRec(PubRec::new(p.pkid)))),
            };
            let mut m = Inbound {
                device: s.device.clone(),
                kind,
                payload: p.payload,
                ack: None,
            };
            if let (Some(()), Some(reply)) = (ack, reply) {
                let (tx, rx) = oneshot::channel();
                m.ack = Some(Ack::new(move || {
                    let _ = tx.send(());
                }));
                waiting.push_back(Box::pin(async move { rx.await.ok().map(|()| reply) }));
            }
            if !hand_over(gate, s.stop, m).await {
                return Step::End(End::Closed);
            }
            Step::Continue
        }
        // The answer to a QoS 2 publish we took over (its PUBREC was sent after the commit).
        Packet::PubRel(r) => {
            encode(&Packet::PubComp(PubComp::new(r.pkid)), out);
            Step::ToClient
        }
        Packet::PingReq => {
            encode(&Packet::PingResp, out);
            Step::ToClient
        }
        Packet::Disconnect => {
            out.extend_from_slice(&raw);
            Step::End(End::Disconnect)
        }
        // SUBSCRIBE, UNSUBSCRIBE, and the device's acknowledgements of commands.
        _ => {
            out.extend_from_slice(&raw);
            Step::ToBroker
        }
    }
}

/// Queues `m` for ingest, waiting while the queue is full (the device's socket is not read
/// meanwhile). `false` when the session stops or ingest is gone.
async fn hand_over(gate: &Gate, stop: &CancellationToken, m: Inbound) -> bool {
    let m = match gate.inbound.try_send(m) {
        Ok(()) => return true,
        Err(mpsc::error::TrySendError::Closed(_)) => return false,
        Err(mpsc::error::TrySendError::Full(m)) => m,
    };
    gate.metrics.ingest_queue_full.inc();
    tokio::select! {
        () = stop.cancelled() => false,
        r = gate.inbound.send(m) => r.is_ok(),
    }
}

/// Encodes `first` and every further acknowledgement that is ready, in order; `false` when one
/// of them will never come (that message was not stored).
fn ready_acks(
    first: Option<Option<Packet>>,
    waiting: &mut FuturesOrdered<Waiting>,
    out: &mut BytesMut,
) -> bool {
    let mut next = first;
    while let Some(done) = next {
        let Some(ack) = done else { return false };
        encode(&ack, out);
        next = waiting.next().now_or_never().flatten();
    }
    true
}

fn encode(p: &Packet, out: &mut BytesMut) {
    // Acknowledgements and pings are a few bytes: they always fit.
    let _ = p.write(out, 64);
}

/// Writes and clears `out`; `false` if the device is gone or does not read.
async fn write<W: AsyncWrite + Unpin>(w: &mut W, out: &mut BytesMut) -> bool {
    let ok = matches!(
        tokio::time::timeout(WRITE_TIMEOUT, w.write_all(out)).await,
        Ok(Ok(()))
    );
    out.clear();
    ok
}
