//! CSV export of telemetry and incidents (RFC 4180: quoted where needed, CRLF line ends, a
//! header row, UTC timestamps), produced page by page so memory does not grow with the row
//! count. The API streams the chunks; `rzmon export` writes them to standard output.

use crate::model::format_ts;
use crate::store::{IncidentRow, Order, RangeQuery, Store, TelemetryRow};
use serde_json::{Map, Value};

/// Columns of a telemetry export; `other` holds the fields beyond the typed ones as JSON.
pub const TELEMETRY_HEADER: [&str; 7] =
    ["timestamp", "device", "tmp", "lf", "locked", "seq", "other"];
/// Columns of an incident export; `other` holds the fields beyond `type` and `message`.
pub const INCIDENT_HEADER: [&str; 5] = ["timestamp", "device", "type", "message", "other"];

const TYPED: [&str; 4] = ["tmp", "lf", "locked", "seq"];

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// A field value as CSV text: strings as they are, other values as JSON, absent as empty.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The object without `keys`, as JSON (empty when nothing is left).
fn other(data: &Value, keys: &[&str]) -> String {
    let Some(m) = data.as_object() else {
        return String::new();
    };
    let rest: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        Value::Object(rest).to_string()
    }
}

fn finish(w: csv::Writer<Vec<u8>>) -> std::io::Result<Vec<u8>> {
    w.into_inner().map_err(|e| e.into_error())
}

/// The header row of a telemetry export.
pub fn telemetry_header() -> std::io::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(TELEMETRY_HEADER)?;
    finish(w)
}

/// One page of telemetry rows as CSV lines.
pub fn telemetry_lines(rows: &[TelemetryRow]) -> std::io::Result<Vec<u8>> {
    let mut w = writer();
    for r in rows {
        let f = |k: &str| text(r.data.get(k));
        w.write_record([
            format_ts(r.ts_ms),
            r.device.to_string(),
            f("tmp"),
            f("lf"),
            f("locked"),
            f("seq"),
            other(&r.data, &TYPED),
        ])?;
    }
    finish(w)
}

/// The header row of an incident export.
pub fn incident_header() -> std::io::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(INCIDENT_HEADER)?;
    finish(w)
}

/// One page of incidents as CSV lines.
pub fn incident_lines(rows: &[IncidentRow]) -> std::io::Result<Vec<u8>> {
    let mut w = writer();
    for r in rows {
        w.write_record([
            format_ts(r.ts_ms),
            r.device.to_string(),
            r.kind.clone(),
            text(r.data.get("message")),
            other(&r.data, &["type", "message"]),
        ])?;
    }
    finish(w)
}

/// Which rows an export holds.
#[derive(Debug, Clone)]
pub enum Export {
    Telemetry(RangeQuery),
    Incidents(RangeQuery, Option<String>),
}

/// Writes the whole export, oldest first, as chunks to `out` (header first); `out`
/// returning `false` (the reader went away) stops. Blocking.
pub fn export(
    store: &Store,
    what: &Export,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> anyhow::Result<()> {
    let mut failed = None;
    let mut emit = |chunk: std::io::Result<Vec<u8>>| match chunk {
        Ok(bytes) => out(bytes),
        Err(e) => {
            failed = Some(e);
            false
        }
    };
    match what {
        Export::Telemetry(q) => {
            if emit(telemetry_header()) {
                store.telemetry_each(q, Order::OldestFirst, |rows| emit(telemetry_lines(&rows)))?;
            }
        }
        Export::Incidents(q, kind) => {
            if emit(incident_header()) {
                store.incidents_each(q, kind.as_deref(), |rows| emit(incident_lines(&rows)))?;
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Commas, quotes and newlines are quoted per RFC 4180; lines end in CRLF.
    #[test]
    fn quoting_and_line_ends() {
        let row = TelemetryRow {
            ts_ms: 1_795_860_000_123,
            device: crate::model::DeviceId::parse("esp32-1").unwrap(),
            data: json!({"tmp": 23.5, "locked": true, "note": "a,\"b\"\nc"}),
        };
        let text = String::from_utf8(telemetry_lines(&[row]).unwrap()).unwrap();
        assert_eq!(
            text,
            "2026-11-28T10:00:00.123Z,esp32-1,23.5,,true,,\"{\"\"note\"\":\"\"a,\\\"\"b\\\"\"\\nc\"\"}\"\r\n"
        );
        assert_eq!(
            String::from_utf8(telemetry_header().unwrap()).unwrap(),
            "timestamp,device,tmp,lf,locked,seq,other\r\n"
        );
        let inc = IncidentRow {
            ts_ms: 0,
            device: crate::model::DeviceId::parse("d").unwrap(),
            kind: "door".into(),
            data: json!({"type": "door", "message": "forced, \"hard\"\r\nagain"}),
        };
        let text = String::from_utf8(incident_lines(&[inc]).unwrap()).unwrap();
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z,d,door,\"forced, \"\"hard\"\"\r\nagain\",\r\n"
        );
    }
}
