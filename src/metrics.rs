//! Counters of what happened at the edges (refused logins, protocol violations, rejected
//! payloads, dropped WebSocket clients). Plain atomics, shared by `Arc`; read by `GET /metrics`
//! and the periodic log line.

use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// One counter; `inc` is a relaxed atomic add.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

/// A value that goes up and down (a queue's length); `set` is a relaxed store.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Serialize for Gauge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.get())
    }
}

/// Every counter of the process.
#[derive(Debug, Default, Serialize)]
pub struct Metrics {
    /// MQTT connections accepted by the gate and passed to the broker.
    pub mqtt_sessions: Counter,
    /// MQTT logins refused (unknown device, bad password, client id ≠ username, throttled).
    pub mqtt_logins_refused: Counter,
    /// MQTT connections closed for a violation (foreign topic, oversize or malformed packet, ...).
    pub mqtt_violations: Counter,
    /// MQTT connections closed at once for being over a per-address or pending budget.
    pub mqtt_over_budget: Counter,
    /// HTTP(S) connections closed at once for being over the per-address or pending budget.
    pub http_over_budget: Counter,
    /// HTTP requests whose headers exceeded 16 KiB (answered 431).
    pub http_headers_too_large: Counter,
    /// HTTP connections closed for not sending complete headers within 10 s.
    pub http_header_timeouts: Counter,
    /// TLS handshakes that failed or timed out (HTTPS and MQTTS).
    pub tls_handshake_failures: Counter,
    /// Device messages accepted by ingest.
    pub ingest_accepted: Counter,
    /// Device messages rejected by ingest (bad JSON, missing/invalid fields).
    pub ingest_rejected: Counter,
    /// Messages committed by the store writer (event rows and status updates).
    pub store_committed: Counter,
    /// Re-delivered (device, seq) messages the writer ignored.
    pub store_duplicates: Counter,
    /// Failed commit attempts (disk full, I/O error, lock timeout); each batch is retried.
    pub store_commit_failures: Counter,
    /// Messages waiting for the writer (at most `store::QUEUE`), as of its last batch.
    pub store_queue: Gauge,
    /// Device messages waiting for ingest (at most `ingest::QUEUE`), as of the last one taken.
    pub ingest_queue: Gauge,
    /// Times a device message found ingest's queue full and its connection had to wait
    /// (back-pressure: the gate stops reading that socket meanwhile).
    pub ingest_queue_full: Counter,
    /// WebSocket clients dropped because they could not keep up.
    pub ws_dropped_slow: Counter,
    /// Failed HTTP logins.
    pub http_logins_failed: Counter,
    /// Notices delivered on a channel (one per notice and channel).
    pub notify_sent: Counter,
    /// Notices that could not be delivered (refused, or given up after 24 h).
    pub notify_failed: Counter,
    /// Delivery attempts that will be retried (network trouble, 429, 5xx).
    pub notify_retries: Counter,
}
