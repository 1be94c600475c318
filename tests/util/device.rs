//! The harness's ESP32: an MQTT client over TCP (rumqttc) that records what it sees.

use super::SOON;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the device's event loop saw.
#[derive(Debug)]
pub enum Seen {
    ConnAck,
    Refused(ConnectReturnCode),
    PubAck,
    Publish(rumqttc::Publish),
    Closed(String),
}

/// An MQTT client over TCP acting as an ESP32. Its event loop runs in a task and does not
/// reconnect: a closed connection stays closed (so tests can see it).
pub struct Device {
    pub client: AsyncClient,
    pub id: String,
    /// Set by `TestApp::device`.
    pub password: String,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Device {
    /// Connects with client id `client_id` and optional (username, password).
    pub async fn connect(mqtt: SocketAddr, client_id: &str, login: Option<(&str, &str)>) -> Self {
        let mut opts = MqttOptions::new(client_id, mqtt.ip().to_string(), mqtt.port());
        opts.set_keep_alive(Duration::from_secs(30))
            .set_inflight(100)
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 5000);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::ConnAck,
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish(p),
                    Ok(_) => continue,
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        let _ = tx.send(Seen::Refused(code));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Seen::Closed(e.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Self {
            client,
            id: client_id.to_owned(),
            password: login.map(|(_, p)| p.to_owned()).unwrap_or_default(),
            events: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    async fn next(&self, timeout: Duration) -> Option<Seen> {
        tokio::time::timeout(timeout, self.events.lock().await.recv())
            .await
            .ok()
            .flatten()
    }

    /// `Ok` on CONNACK success, `Err(code)` on a refusal.
    pub async fn wait_connack(&self) -> Result<(), String> {
        loop {
            match self.next(SOON).await {
                Some(Seen::ConnAck) => return Ok(()),
                Some(Seen::Refused(code)) => return Err(format!("{code:?}")),
                Some(Seen::Closed(e)) => return Err(format!("closed: {e}")),
                Some(_) => continue,
                None => return Err("no CONNACK".into()),
            }
        }
    }

    /// True when the connection is closed within `SOON`.
    pub async fn wait_closed(&self) -> bool {
        loop {
            match self.next(SOON).await {
                Some(Seen::Closed(_) | Seen::Refused(_)) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    /// Waits for `n` PUBACKs.
    pub async fn wait_pubacks(&self, n: usize) -> bool {
        let mut got = 0;
        while got < n {
            match self.next(SOON).await {
                Some(Seen::PubAck) => got += 1,
                Some(Seen::Closed(_)) | None => return false,
                Some(_) => {}
            }
        }
        true
    }

    /// The next message the broker delivers to this device.
    pub async fn next_publish(&self, timeout: Duration) -> Option<rumqttc::Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Some(Seen::Publish(p)) => return Some(p),
                Some(Seen::Closed(_)) | None => return None,
                Some(_) => {}
            }
        }
    }

    pub async fn publish(&self, kind: &str, payload: impl Into<Vec<u8>>) {
        self.publish_to(&format!("rz/{}/{kind}", self.id), payload)
            .await;
    }

    pub async fn publish_to(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue publish");
    }

    pub async fn subscribe_commands(&self) {
        self.client
            .subscribe(format!("rz/{}/command", self.id), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
    }
}
