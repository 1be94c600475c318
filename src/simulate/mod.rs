//! `rzmon simulate`: simulated ESP32s speaking the full device protocol through the real MQTT
//! port: telemetry with drift, access events, incidents, answers to every command, retained
//! `online` and last will `offline`. Used by the README's "try it without hardware", the tests
//! and demos.

pub mod device;

use device::{Action, SimDevice};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How one simulated device behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Broker host and port (the gate).
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// Seconds between telemetry messages.
    pub interval: f64,
    /// Seconds until a card is "presented" during enrolment.
    pub enrol_delay: f64,
    /// Probability per telemetry tick of an access event / an incident.
    pub access_probability: f64,
    pub incident_probability: f64,
    /// Stop after this many telemetry messages (0 = run until stopped).
    pub count: u64,
    pub seed: u64,
    /// MQTT over TLS, trusting this configuration's roots (`--tls --ca FILE`); `None` = plain.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// MQTT credentials of one device.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub device: String,
    pub password: String,
}

/// Runs every device until `shutdown` (or until each sent `count` messages).
pub async fn run(
    opts: SimOptions,
    devices: Vec<Credentials>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for (i, creds) in devices.into_iter().enumerate() {
        let mut opts = opts.clone();
        opts.seed = opts.seed.wrapping_add(i as u64);
        set.spawn(run_device(opts, creds, shutdown.clone()));
    }
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            shutdown.cancel();
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn run_device(
    opts: SimOptions,
    creds: Credentials,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let id = creds.device.clone();
    let status = format!("{}/{id}/status", opts.prefix);
    let command_topic = format!("{}/{id}/command", opts.prefix);
    let topic = |kind: &str| format!("{}/{id}/{kind}", opts.prefix);
    let mut mqtt = MqttOptions::new(&id, &opts.host, opts.port);
    mqtt.set_credentials(&id, &creds.password)
        .set_keep_alive(Duration::from_secs(30))
        .set_last_will(LastWill::new(&status, "offline", QoS::AtLeastOnce, true));
    if let Some(tls) = &opts.tls {
        mqtt.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 100);
    let mut dev = SimDevice::new(opts.seed, opts.interval);
    let (enrol_tx, mut enrol_rx) = mpsc::unbounded_channel::<u64>();
    let mut tick = interval(dev.interval_s());
    let mut sent = 0u64;
    let mut backoff = Duration::from_millis(500);
    // Whether a connection was ever established: "lost" only makes sense after one.
    let mut connected = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let t = dev.telemetry();
                tracing::info!(device = %id, %t, "telemetry");
                send(client.try_publish(topic("telemetry"), QoS::AtLeastOnce, false, t.to_string()), &id);
                if let Some(a) = dev.maybe_access(opts.access_probability) {
                    tracing::info!(device = %id, %a, "access");
                    send(client.try_publish(topic("access"), QoS::AtLeastOnce, false, a.to_string()), &id);
                }
                if let Some(i) = dev.maybe_incident(opts.incident_probability) {
                    tracing::info!(device = %id, %i, "incident");
                    send(client.try_publish(topic("incident"), QoS::AtLeastOnce, false, i.to_string()), &id);
                }
                sent += 1;
                if opts.count > 0 && sent >= opts.count {
                    break;
                }
            }
            Some(msg_id) = enrol_rx.recv() => {
                let reply = dev.enrolled(msg_id);
                tracing::info!(device = %id, %reply, "card presented for enrolment");
                send(client.try_publish(topic("reply"), QoS::AtLeastOnce, false, reply.to_string()), &id);
            }
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(500);
                    connected = true;
                    tracing::info!(device = %id, "connected");
                    send(client.try_subscribe(&command_topic, QoS::AtLeastOnce), &id);
                    send(client.try_publish(&status, QoS::AtLeastOnce, true, "online"), &id);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == command_topic => {
                    let before = dev.interval_s();
                    match dev.command(&p.payload) {
                        Action::Reply(reply) => {
                            tracing::info!(device = %id, %reply, "command answered");
                            send(client.try_publish(topic("reply"), QoS::AtLeastOnce, false, reply.to_string()), &id);
                        }
                        Action::Enrol { msg_id } => {
                            tracing::info!(device = %id, "waiting for a card (enrolment)");
                            let tx = enrol_tx.clone();
                            let delay = Duration::from_secs_f64(opts.enrol_delay.max(0.0));
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = tx.send(msg_id);
                            });
                        }
                    }
                    if dev.interval_s() != before {
                        tick = interval(dev.interval_s());
                    }
                }
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => {
                    anyhow::bail!("{id}: rzmon at {}:{} refused the login: {}", opts.host, opts.port, refusal(code));
                }
                Err(e) => {
                    let broker = format!("{}:{}", opts.host, opts.port);
                    if connected {
                        tracing::warn!(device = %id, %broker, error = %e, retry_in = ?backoff, "connection to the MQTT port lost");
                    } else {
                        tracing::warn!(device = %id, %broker, error = %e, retry_in = ?backoff,
                            "cannot connect to the MQTT port; is rzmon listening there? (--broker HOST:PORT)");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
        }
    }
    // Say goodbye properly: retained offline, then a clean DISCONNECT.
    let _ = client
        .publish(&status, QoS::AtLeastOnce, true, "offline")
        .await;
    let _ = client.disconnect().await;
    let drain = async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    tracing::info!(device = %id, sent, "simulator stopped");
    Ok(())
}

/// The request queue is bounded and the event loop runs in the same task: never wait for
/// room (that would stall the loop that makes room); drop and log instead.
fn send(r: Result<(), rumqttc::ClientError>, id: &str) {
    if let Err(e) = r {
        tracing::warn!(device = id, error = %e, "message dropped: not connected or queue full");
    }
}

fn interval(secs: f64) -> tokio::time::Interval {
    let period = Duration::from_secs_f64(secs.clamp(0.001, 3600.0));
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::BadUserNamePassword => "unknown device or wrong password",
        ConnectReturnCode::BadClientId => "client id must equal the username",
        ConnectReturnCode::NotAuthorized => "not authorized (too many failed logins?)",
        _ => "refused",
    }
}
