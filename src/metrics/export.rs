//! The Prometheus text exposition (version 0.0.4) of `Metrics`, the per-device gauges and the
//! process figures. A registry is assembled per scrape: the counters are shared handles, so
//! this costs a few allocations, and the per-device gauges come fresh from the caller (the
//! store's latest readings and presence) instead of being kept in step with every message.

use super::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::UNIX_EPOCH;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What the gauges say about one registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReading {
    pub device: String,
    /// Latest stored temperature (°C), humidity (%) and lock state, if any telemetry was stored.
    pub tmp: Option<f64>,
    pub lf: Option<f64>,
    pub locked: Option<bool>,
    pub online: bool,
    /// Receive time of the newest message of any kind, epoch ms.
    pub last_seen_ms: Option<i64>,
}

/// What the store says at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub devices: Vec<DeviceReading>,
    /// Unresolved alerts: (severity, acknowledged, count).
    pub alerts: Vec<(String, bool, u64)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    severity: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabel {
    device: String,
}

type FloatFamily = Family<DeviceLabel, Gauge<f64, AtomicU64>>;

/// Renders everything as Prometheus text.
pub fn render(metrics: &Metrics, scrape: &Scrape) -> String {
    let mut root = Registry::default();
    register_process(&mut root, metrics);
    let reg = root.sub_registry_with_prefix("rzmon");
    register(reg, metrics);
    register_devices(reg, &scrape.devices);
    register_alerts(reg, &scrape.alerts);
    let mut out = String::with_capacity(4096 + scrape.devices.len() * 400);
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &root);
    out
}

/// The process's own figures, under the names Prometheus client libraries use everywhere.
fn register_process(reg: &mut Registry, metrics: &Metrics) {
    let start = metrics
        .started
        .wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let gauge = |v: f64| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        g
    };
    reg.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        gauge(start.as_secs_f64()),
    );
    reg.register_with_unit(
        "rzmon_uptime",
        "Time since the process started",
        Unit::Seconds,
        gauge(metrics.started.instant.elapsed().as_secs_f64()),
    );
    if let Some(rss) = resident_bytes() {
        reg.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            gauge(rss as f64),
        );
    }
    if let Some(fds) = open_fds() {
        reg.register(
            "process_open_fds",
            "Open file descriptors",
            gauge(fds as f64),
        );
    }
}

/// Names every field of `Metrics` (prefixed `rzmon_`; counters get `_total` from the encoder).
fn register(reg: &mut Registry, m: &Metrics) {
    let c = |reg: &mut Registry, name: &str, help: &str, counter: &super::Counter| {
        reg.register(name, help, counter.0.clone());
    };
    c(
        reg,
        "mqtt_sessions",
        "MQTT connections accepted by the gate",
        &m.mqtt_sessions,
    );
    c(
        reg,
        "mqtt_logins_refused",
        "MQTT logins refused (unknown device, bad password, throttled)",
        &m.mqtt_logins_refused,
    );
    c(
        reg,
        "mqtt_gate_violations",
        "MQTT connections closed for a protocol or permission violation",
        &m.mqtt_violations,
    );
    c(
        reg,
        "mqtt_over_budget",
        "MQTT connections closed for being over a per-address or pending budget",
        &m.mqtt_over_budget,
    );
    c(
        reg,
        "http_over_budget",
        "HTTP(S) connections closed for being over a per-address or pending budget",
        &m.http_over_budget,
    );
    c(
        reg,
        "http_headers_too_large",
        "HTTP requests with headers over 16 KiB (answered 431)",
        &m.http_headers_too_large,
    );
    c(
        reg,
        "http_header_timeouts",
        "HTTP connections closed for not sending their headers within 30 s",
        &m.http_header_timeouts,
    );
    c(
        reg,
        "tls_handshake_failures",
        "TLS handshakes that failed or timed out (HTTPS and MQTTS)",
        &m.tls_handshake_failures,
    );
    reg.register(
        "messages_accepted",
        "Device messages accepted by ingest, by kind",
        m.ingest_accepted.0.clone(),
    );
    reg.register(
        "messages_rejected",
        "Device messages rejected by ingest (bad JSON, missing fields), by kind",
        m.ingest_rejected.0.clone(),
    );
    c(
        reg,
        "store_committed_rows",
        "Messages committed by the store writer",
        &m.store_committed,
    );
    c(
        reg,
        "store_duplicates",
        "Redelivered messages ignored by the store writer",
        &m.store_duplicates,
    );
    reg.register_with_unit(
        "store_commit",
        "Duration of one batch commit",
        Unit::Seconds,
        m.store_commit_seconds.0.clone(),
    );
    c(
        reg,
        "store_commit_failures",
        "Failed commit attempts (each batch is retried)",
        &m.store_commit_failures,
    );
    reg.register(
        "store_queue_messages",
        "Messages waiting for the store writer",
        m.store_queue.0.clone(),
    );
    reg.register(
        "ingest_queue_messages",
        "Device messages waiting for ingest",
        m.ingest_queue.0.clone(),
    );
    c(
        reg,
        "ingest_queue_full",
        "Times a device message found ingest's queue full (its connection waited)",
        &m.ingest_queue_full,
    );
    c(
        reg,
        "ws_dropped",
        "WebSocket clients dropped because they could not keep up",
        &m.ws_dropped_slow,
    );
    c(
        reg,
        "http_logins_failed",
        "Failed dashboard logins",
        &m.http_logins_failed,
    );
    reg.register(
        "http_requests",
        "HTTP requests by method, route and status",
        m.http_requests.count.clone(),
    );
    reg.register_with_unit(
        "http_request_duration",
        "HTTP request latency by route",
        Unit::Seconds,
        m.http_requests.latency.clone(),
    );
    reg.register(
        "notifications_sent",
        "Notices delivered, by channel",
        m.notifications_sent.0.clone(),
    );
    reg.register(
        "notifications_failed",
        "Notices that could not be delivered (refused, or given up after 24 h), by channel",
        m.notifications_failed.0.clone(),
    );
    reg.register(
        "notifications_retried",
        "Delivery attempts that will be retried, by channel",
        m.notifications_retried.0.clone(),
    );
    reg.register(
        "bridge_lag_rows",
        "Stored rows the upstream bridge has not forwarded yet",
        m.bridge_lag_rows.0.clone(),
    );
    c(
        reg,
        "bridge_forwarded_rows",
        "Rows forwarded by the upstream bridge",
        &m.bridge_forwarded,
    );
    c(
        reg,
        "ha_published_messages",
        "Messages published to the Home Assistant broker",
        &m.ha_published,
    );
    c(
        reg,
        "pruned_rows",
        "Rows deleted by retention and the database size limit",
        &m.pruned_rows,
    );
    c(
        reg,
        "prune_passes",
        "Pruning passes completed",
        &m.prune_passes,
    );
    c(
        reg,
        "backups_made",
        "Backups written and verified",
        &m.backups_made,
    );
    c(
        reg,
        "backups_failed",
        "Backups that failed (writing or verification)",
        &m.backups_failed,
    );
}

fn register_devices(reg: &mut Registry, devices: &[DeviceReading]) {
    let [tmp, lf, locked, online, seen] = std::array::from_fn(|_| FloatFamily::default());
    for d in devices {
        let label = DeviceLabel {
            device: d.device.clone(),
        };
        if let Some(v) = d.tmp {
            tmp.get_or_create(&label).set(v);
        }
        if let Some(v) = d.lf {
            lf.get_or_create(&label).set(v);
        }
        if let Some(v) = d.locked {
            locked.get_or_create(&label).set(if v { 1.0 } else { 0.0 });
        }
        online
            .get_or_create(&label)
            .set(if d.online { 1.0 } else { 0.0 });
        if let Some(ms) = d.last_seen_ms {
            seen.get_or_create(&label).set(ms as f64 / 1000.0);
        }
    }
    reg.register_with_unit(
        "temperature",
        "Latest temperature a device reported",
        Unit::Celsius,
        tmp,
    );
    reg.register_with_unit(
        "humidity",
        "Latest relative humidity a device reported",
        Unit::Other("percent".into()),
        lf,
    );
    reg.register(
        "door_locked",
        "Latest door lock state a device reported (1 = locked)",
        locked,
    );
    reg.register(
        "device_online",
        "Whether a device is online (1 = online)",
        online,
    );
    reg.register_with_unit(
        "device_last_seen_timestamp",
        "Receive time of the newest message from a device since the Unix epoch",
        Unit::Seconds,
        seen,
    );
}

/// Unresolved alerts by severity and state (`firing` or `acknowledged`); always present, so
/// a dashboard shows 0 rather than "no data".
fn register_alerts(reg: &mut Registry, alerts: &[(String, bool, u64)]) {
    let family = Family::<AlertLabels, Gauge>::default();
    for (severity, acknowledged, count) in alerts {
        let state = if *acknowledged {
            "acknowledged"
        } else {
            "firing"
        };
        let label = AlertLabels {
            severity: severity.clone(),
            state,
        };
        family
            .get_or_create(&label)
            .set(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    let total = Gauge::<i64>::default();
    total.set(alerts.iter().map(|(_, _, n)| *n as i64).sum());
    reg.register(
        "alerts_active",
        "Unresolved alerts by severity and state (firing or acknowledged)",
        family,
    );
    reg.register("alerts_active_all", "All unresolved alerts", total);
}

/// `VmRSS` of /proc/self/status (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Entries of /proc/self/fd (Linux); `None` elsewhere.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters end in `_total`, units are in the names, device gauges carry the label, and
    /// the 0.0.4 format has no OpenMetrics `# EOF`.
    #[test]
    fn names_and_format() {
        let m = Metrics::default();
        m.store_committed.add(3);
        m.ingest_accepted.inc_kind("telemetry");
        m.notifications_sent.add("phone", "ntfy", 2);
        m.notifications_failed.add("mail", "smtp", 1);
        m.store_commit_seconds
            .observe(std::time::Duration::from_millis(2));
        let scrape = Scrape {
            devices: vec![DeviceReading {
                device: "esp32-1".into(),
                tmp: Some(23.5),
                lf: Some(41.0),
                locked: Some(true),
                online: true,
                last_seen_ms: Some(1_764_342_245_123),
            }],
            alerts: vec![("critical".into(), false, 2), ("warning".into(), true, 1)],
        };
        let text = render(&m, &scrape);
        for want in [
            "rzmon_store_committed_rows_total 3\n",
            "rzmon_messages_accepted_total{kind=\"telemetry\"} 1\n",
            "rzmon_notifications_sent_total{channel=\"phone\",kind=\"ntfy\"} 2\n",
            "rzmon_notifications_failed_total{channel=\"mail\",kind=\"smtp\"} 1\n",
            "rzmon_alerts_active{severity=\"critical\",state=\"firing\"} 2\n",
            "rzmon_alerts_active{severity=\"warning\",state=\"acknowledged\"} 1\n",
            "rzmon_alerts_active_all 3\n",
            "rzmon_ingest_queue_messages 0\n",
            "rzmon_temperature_celsius{device=\"esp32-1\"} 23.5\n",
            "rzmon_humidity_percent{device=\"esp32-1\"} 41.0\n",
            "rzmon_door_locked{device=\"esp32-1\"} 1.0\n",
            "rzmon_device_online{device=\"esp32-1\"} 1.0\n",
            "rzmon_device_last_seen_timestamp_seconds{device=\"esp32-1\"} 1764342245.123\n",
            "rzmon_store_commit_seconds_bucket{le=\"0.0025\"} 1\n",
            "# TYPE rzmon_store_committed_rows_total counter\n",
            "# TYPE process_resident_memory_bytes gauge\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
