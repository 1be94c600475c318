//! What the upstream bridge reads and keeps: stored rows after a cursor (telemetry, incidents,
//! access events, and the log of alert state changes, which the alert functions write in the
//! transaction of each change), merged in time order, and the cursor itself (last forwarded id
//! per table), persisted so an outage or a restart loses nothing.

use super::{Result, Store, telemetry};
use rusqlite::Connection;
use std::collections::VecDeque;

/// The tables the bridge forwards, in tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Telemetry,
    Incident,
    Access,
    /// An alert fired, was acknowledged or resolved (table `alert_events`).
    Alert,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Telemetry,
        Source::Incident,
        Source::Access,
        Source::Alert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Telemetry => "telemetry",
            Source::Incident => "incidents",
            Source::Access => "access_events",
            Source::Alert => "alert_events",
        }
    }

    fn select(self) -> &'static str {
        match self {
            // The compact row: time from the id, payload rebuilt (see `rows_after`).
            Source::Telemetry => {
                "SELECT t.id, k.name, t.seq, t.tmp, t.lf, t.locked, t.extra
                 FROM telemetry t JOIN device_keys k ON k.id = t.device_key
                 WHERE t.id > ?1 ORDER BY t.id LIMIT ?2"
            }
            Source::Incident => {
                "SELECT id, ts_ms, device, type, NULL, NULL, payload FROM incidents
                 WHERE id > ?1 ORDER BY id LIMIT ?2"
            }
            Source::Access => {
                "SELECT id, ts_ms, device, NULL, access_id, granted, payload FROM access_events
                 WHERE id > ?1 ORDER BY id LIMIT ?2"
            }
            Source::Alert => {
                "SELECT id, ts_ms, device, state, NULL, NULL, payload FROM alert_events
                 WHERE id > ?1 ORDER BY id LIMIT ?2"
            }
        }
    }
}

/// Last forwarded id per table (0 = nothing yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub telemetry: i64,
    pub incident: i64,
    pub access: i64,
    pub alert: i64,
}

impl Cursor {
    pub fn get(&self, s: Source) -> i64 {
        match s {
            Source::Telemetry => self.telemetry,
            Source::Incident => self.incident,
            Source::Access => self.access,
            Source::Alert => self.alert,
        }
    }

    pub fn set(&mut self, s: Source, id: i64) {
        match s {
            Source::Telemetry => self.telemetry = id,
            Source::Incident => self.incident = id,
            Source::Access => self.access = id,
            Source::Alert => self.alert = id,
        }
    }
}

/// One stored row to forward.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRow {
    pub source: Source,
    pub id: i64,
    pub ts_ms: i64,
    pub device: String,
    /// Incidents: their `type`; alert changes: the new state.
    pub kind: Option<String>,
    /// Access events: the card and the decision.
    pub access: Option<(String, bool)>,
    /// The stored JSON text.
    pub payload: String,
}

/// Logs that alert `id` changed to `state` at `at_ms`, with the alert as it is after the
/// change; called inside the transaction of the change.
pub(super) fn log_alert_event(c: &Connection, id: i64, state: &str, at_ms: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO alert_events (alert_id, ts_ms, device, state, payload)
         SELECT id, ?2, coalesce(device, ''), ?3, json_object(
             'alert_id', id, 'rule', rule_name, 'subject', subject, 'severity', severity,
             'summary', summary, 'value', value, 'threshold', threshold,
             'started', strftime('%Y-%m-%dT%H:%M:%S', started_ms / 1000, 'unixepoch')
                 || printf('.%03dZ', started_ms % 1000),
             'acked_by', acked_by)
         FROM alerts WHERE id = ?1",
    )?
    .execute((id, at_ms, state))?;
    Ok(())
}

fn rows_after(c: &Connection, s: Source, after: i64, limit: u32) -> Result<Vec<BridgeRow>> {
    let mut stmt = c.prepare_cached(s.select())?;
    if s == Source::Telemetry {
        let rows = stmt.query_map((after, limit), |r| {
            let id = r.get(0)?;
            let (ts_ms, data) = telemetry::reading_at(r, 2, id)?;
            Ok(BridgeRow {
                source: s,
                id,
                ts_ms,
                device: r.get(1)?,
                kind: None,
                access: None,
                payload: data.to_string(),
            })
        })?;
        return Ok(rows.collect::<rusqlite::Result<_>>()?);
    }
    let rows = stmt.query_map((after, limit), |r| {
        let access_id: Option<String> = r.get(4)?;
        let granted: Option<bool> = r.get(5)?;
        Ok(BridgeRow {
            source: s,
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            device: r.get(2)?,
            kind: r.get(3)?,
            access: access_id.zip(granted),
            payload: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Store {
    /// Up to `limit` rows after `cursor`, oldest first: the tables merged by time (ties by
    /// table), each table's rows in id order even where their times are not (a device's clock).
    pub fn bridge_rows(&self, cursor: &Cursor, limit: u32) -> Result<Vec<BridgeRow>> {
        self.with_conn(|c| {
            let mut heads = Vec::new();
            for s in Source::ALL {
                heads.push(VecDeque::from(rows_after(c, s, cursor.get(s), limit)?));
            }
            let mut all = Vec::new();
            while all.len() < limit as usize {
                let next = heads
                    .iter_mut()
                    .filter(|h| !h.is_empty())
                    .min_by_key(|h| h.front().map(|r| (r.ts_ms, r.source)));
                match next.and_then(VecDeque::pop_front) {
                    Some(row) => all.push(row),
                    None => break,
                }
            }
            Ok(all)
        })
    }

    /// The persisted cursor (zeros on a fresh database).
    pub fn bridge_cursor(&self) -> Result<Cursor> {
        self.with_conn(|c| {
            let mut cursor = Cursor::default();
            let mut stmt = c.prepare_cached("SELECT source, last_id FROM bridge_cursor")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (name, id) = row?;
                if let Some(s) = Source::ALL.into_iter().find(|s| s.as_str() == name) {
                    cursor.set(s, id);
                }
            }
            Ok(cursor)
        })
    }

    pub fn set_bridge_cursor(&self, cursor: &Cursor) -> Result<()> {
        self.with_conn(|c| {
            let tx = c.transaction()?;
            for s in Source::ALL {
                tx.prepare_cached(
                    "INSERT INTO bridge_cursor (source, last_id) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id",
                )?
                .execute((s.as_str(), cursor.get(s)))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Rows stored after `cursor`, counted (telemetry ids carry the time, so they are not
    /// dense; a count walks only the rows after the cursor).
    pub fn bridge_lag(&self, cursor: &Cursor) -> Result<u64> {
        self.with_conn(|c| {
            let mut lag = 0u64;
            for s in Source::ALL {
                let n: i64 = c.query_row(
                    &format!("SELECT count(*) FROM {} WHERE id > ?1", s.as_str()),
                    [cursor.get(s)],
                    |r| r.get(0),
                )?;
                lag += u64::try_from(n).unwrap_or(0);
            }
            Ok(lag)
        })
    }
}
