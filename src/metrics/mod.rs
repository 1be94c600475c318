//! The process's counters and histograms (prometheus-client types), shared by `Arc`. Every part
//! updates its own field (`metrics.store_committed.inc()`, `metrics.notifications_sent.inc(ch)`);
//! `export` turns them, the per-device gauges and the process figures into the Prometheus text
//! format for `GET /metrics`.
//!
//! Adding a figure: a field here (a `Counter`, a labelled type below, or a `Gauge`) and one
//! line in `export::register`, which names it for Prometheus.

pub mod export;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram;
use std::time::{Duration, Instant, SystemTime};

/// One monotonic counter; `inc`/`add` are relaxed atomic adds.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// One value that goes up and down (queue lengths, lags).
#[derive(Debug, Default, Clone)]
pub struct Gauge(PromGauge);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// A counter per device-message kind (`telemetry`, `incident`, ...).
#[derive(Debug, Default, Clone)]
pub struct ByKind(Family<KindLabel, PromCounter>);

impl ByKind {
    /// Counts one message of `kind` (`Kind::as_str()`).
    pub fn inc_kind(&self, kind: &'static str) {
        self.0.get_or_create(&KindLabel { kind }).inc();
    }
    /// Counts one message whose kind is not known (an unexpected topic).
    pub fn inc(&self) {
        self.inc_kind("unknown");
    }
    /// The sum over all kinds.
    pub fn get(&self) -> u64 {
        let mut sum = 0;
        for kind in [
            "unknown",
            "telemetry",
            "incident",
            "access",
            "reply",
            "status",
        ] {
            if let Some(c) = self.0.get(&KindLabel { kind }) {
                sum += c.get();
            }
        }
        sum
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
    kind: String,
}

/// A counter per notification channel: its configured name and its kind (`ntfy`, `smtp`, ...).
/// The number of series is bounded by the number of configured channels.
#[derive(Debug, Default, Clone)]
pub struct ByChannel(Family<ChannelLabel, PromCounter>);

impl ByChannel {
    /// Counts `n` notices on the channel `name` of kind `kind`.
    pub fn add(&self, name: &str, kind: &str, n: u64) {
        self.0
            .get_or_create(&ChannelLabel {
                channel: name.to_owned(),
                kind: kind.to_owned(),
            })
            .inc_by(n);
    }
    /// The count of the channel `name` of kind `kind`.
    pub fn get(&self, name: &str, kind: &str) -> u64 {
        self.0
            .get(&ChannelLabel {
                channel: name.to_owned(),
                kind: kind.to_owned(),
            })
            .map_or(0, |c| c.get())
    }
}

/// Latency buckets in seconds: 0.5 ms … 10 s, covering an fsync on a fast SSD up to a
/// device command that times out.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A latency histogram (seconds) with the buckets above.
#[derive(Debug, Clone)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Self(latency_histogram())
    }
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// HTTP requests by method, route template and status, and their latency by route.
#[derive(Debug, Clone)]
pub struct HttpRequests {
    count: Family<RequestLabels, PromCounter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

impl Default for HttpRequests {
    fn default() -> Self {
        Self {
            count: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl HttpRequests {
    /// Records one answered request. `route` is a template (`/devices/{id}`), never the raw
    /// path, so the number of series stays bounded.
    pub fn record(&self, method: &str, route: String, status: u16, elapsed: Duration) {
        self.count
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(elapsed.as_secs_f64());
    }
}

/// When the process started (for uptime and `process_start_time_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Default for Started {
    fn default() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Every counter of the process.
#[derive(Debug, Default)]
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
    /// HTTP connections closed for not sending complete headers within 30 s.
    pub http_header_timeouts: Counter,
    /// TLS handshakes that failed or timed out (HTTPS and MQTTS).
    pub tls_handshake_failures: Counter,
    /// Device messages accepted by ingest, by kind.
    pub ingest_accepted: ByKind,
    /// Device messages rejected by ingest (bad JSON, missing/invalid fields), by kind.
    pub ingest_rejected: ByKind,
    /// Messages committed by the store writer (event rows and status updates).
    pub store_committed: Counter,
    /// Re-delivered (device, seq) messages the writer ignored.
    pub store_duplicates: Counter,
    /// Time of one batch commit (transaction + fsync).
    pub store_commit_seconds: Latency,
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
    /// Answered HTTP requests and their latency.
    pub http_requests: HttpRequests,
    /// Notices delivered, by channel (one per notice and channel).
    pub notifications_sent: ByChannel,
    /// Notices that could not be delivered (refused, or given up after 24 h), by channel.
    pub notifications_failed: ByChannel,
    /// Delivery attempts that will be retried (network trouble, 429, 5xx), by channel.
    pub notifications_retried: ByChannel,
    /// Stored rows not yet forwarded by the upstream bridge.
    pub bridge_lag_rows: Gauge,
    /// Rows the upstream bridge forwarded (acknowledged by the upstream broker).
    pub bridge_forwarded: Counter,
    /// Messages published to the Home Assistant broker.
    pub ha_published: Counter,
    /// Rows deleted by retention and the size limit.
    pub pruned_rows: Counter,
    /// Pruning passes completed (with or without something to delete).
    pub prune_passes: Counter,
    /// Backups written and verified.
    pub backups_made: Counter,
    /// Backups that failed (writing or verification).
    pub backups_failed: Counter,
    pub started: Started,
}
