//! Back-dated readings for tests: written through the library's own store writer into the
//! server's database file (a device cannot backdate its messages; the server stamps receive
//! time), so the rows and their rollups are exactly what ingest would have stored.

use rzmon::model::{Body, DeviceId, Message, Telemetry};
use rzmon::store::Store;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Writes `readings` (receive time in epoch ms, JSON object as a device sends it) of `device`
/// into the database at `db` and waits until they are committed.
pub fn write_readings(db: &Path, device: &str, readings: Vec<(i64, Value)>) {
    let device = DeviceId::parse(device).expect("device id");
    // The writer's blocking calls must not run on a test's runtime thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            let store = Store::open(db).expect("open the server's database");
            let metrics = Arc::new(rzmon::metrics::Metrics::default());
            let writer = store
                .spawn_writer(metrics, rzmon::health::Health::new())
                .expect("writer");
            let tx = writer.sender();
            for (ts_ms, payload) in readings {
                let payload = payload.as_object().cloned().expect("a JSON object");
                let number = |k: &str| payload.get(k).and_then(Value::as_f64);
                let body = Body::Telemetry(Telemetry {
                    tmp: number("tmp"),
                    lf: number("lf"),
                    locked: payload.get("locked").and_then(Value::as_bool),
                    seq: payload.get("seq").and_then(Value::as_i64),
                    payload,
                });
                let msg = Message {
                    device: device.clone(),
                    ts_ms,
                    body,
                };
                tx.blocking_send(msg, None).expect("send");
            }
            drop(tx);
            writer.close().expect("history committed");
        });
    });
}
