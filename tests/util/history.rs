//! Back-dated readings and incidents for tests: written through the library's own store writer
//! into the server's database file (a device cannot backdate its messages; the server stamps
//! receive time), so the rows and their rollups are exactly what ingest would have stored.

use rzmon::model::{Body, DeviceId, Incident, Message, Telemetry};
use rzmon::store::Store;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Writes `readings` (receive time in epoch ms, JSON object as a device sends it) of `device`
/// into the database at `db` and waits until they are committed.
pub fn write_readings(db: &Path, device: &str, readings: Vec<(i64, Value)>) {
    let bodies = readings
        .into_iter()
        .map(|(ts_ms, payload)| {
            let payload = object(payload);
            let number = |k: &str| payload.get(k).and_then(Value::as_f64);
            let body = Body::Telemetry(Telemetry {
                tmp: number("tmp"),
                lf: number("lf"),
                locked: payload.get("locked").and_then(Value::as_bool),
                seq: payload.get("seq").and_then(Value::as_i64),
                payload,
            });
            (ts_ms, body)
        })
        .collect();
    write(db, device, bodies);
}

/// Writes `incidents` (receive time in epoch ms, the JSON object a device sends, with its
/// `type`) of `device` like [`write_readings`].
pub fn write_incidents(db: &Path, device: &str, incidents: Vec<(i64, Value)>) {
    let bodies = incidents
        .into_iter()
        .map(|(ts_ms, payload)| {
            let payload = object(payload);
            let kind = payload["type"]
                .as_str()
                .expect("an incident type")
                .to_owned();
            (ts_ms, Body::Incident(Incident { kind, payload }))
        })
        .collect();
    write(db, device, bodies);
}

fn object(payload: Value) -> Map<String, Value> {
    payload.as_object().cloned().expect("a JSON object")
}

fn write(db: &Path, device: &str, bodies: Vec<(i64, Body)>) {
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
            for (ts_ms, body) in bodies {
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
