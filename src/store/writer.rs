//! The one batching writer: a thread that owns its own connection, takes device messages from
//! a channel and commits them in batches (one fsync per batch), ignoring QoS 1 redeliveries.

use super::telemetry::TelemetryBatch;
use super::{Result, StoreError};
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::model::{AccessEvent, Body, Message, Status};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError};

/// A batch is committed once it holds this many messages...
const MAX_BATCH: usize = 500;
/// ...or this long after its first message arrived: the latency a message may wait for
/// company so that the fsync is shared.
const MAX_WAIT: Duration = Duration::from_millis(5);
/// Sleep between looks at the channel while a batch is filling.
const POLL: Duration = Duration::from_micros(200);
/// A message whose (device, seq, payload) was stored this recently is a QoS 1 redelivery.
/// Older matches are a rebooted device that restarted its `seq` (and happens to repeat a
/// reading), so they are stored.
pub(super) const DEDUP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Back-off between attempts when a commit fails (disk full, file locked).
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Once the channel is closed (shutdown), a failing batch gets this many attempts before the
/// rest is reported lost, so shutdown cannot hang on a broken disk.
const SHUTDOWN_ATTEMPTS: u32 = 10;

/// The running batch writer: send messages with `sender()`, then `close()` to commit the last
/// batch and join the thread.
pub struct Writer {
    tx: UnboundedSender<Message>,
    thread: JoinHandle<Result<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, metrics: Arc<Metrics>, health: Health) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, rx, &metrics, &health))
            .map_err(|e| StoreError::Task(format!("cannot start the store writer: {e}")))?;
        Ok(Self { tx, thread })
    }

    pub fn sender(&self) -> UnboundedSender<Message> {
        self.tx.clone()
    }

    /// Stops accepting, commits everything received, joins the writer thread. Blocks.
    ///
    /// The channel closes when every sender is gone: drop the clones handed out by `sender()`
    /// (stop ingest) first, or this waits for them.
    pub fn close(self) -> Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| StoreError::Task("the store writer thread panicked".into()))?
    }
}

/// What one committed batch did.
#[derive(Debug, Default)]
struct Outcome {
    /// Messages written: event rows plus status updates.
    stored: u64,
    /// Redeliveries ignored.
    duplicates: u64,
}

fn run(
    mut conn: Connection,
    mut rx: UnboundedReceiver<Message>,
    metrics: &Metrics,
    health: &Health,
) -> Result<()> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let open = collect(&mut rx, &mut batch);
        if !batch.is_empty() && !commit_with_retry(&mut conn, &batch, &rx, metrics, health) {
            let mut lost = batch.len();
            while rx.blocking_recv().is_some() {
                lost += 1;
            }
            tracing::error!(lost, "store writer stopped: messages NOT stored");
            return Err(StoreError::Task(format!(
                "{lost} messages could not be stored"
            )));
        }
        batch.clear();
        if !open {
            tracing::debug!("store writer drained and stopped");
            return Ok(());
        }
    }
}

/// Waits for the next message, then gathers more until the batch is full or `MAX_WAIT` has
/// passed. `false` once the channel is closed (the batch then holds the last messages).
fn collect(rx: &mut UnboundedReceiver<Message>, batch: &mut Vec<Message>) -> bool {
    if rx.blocking_recv_many(batch, MAX_BATCH) == 0 {
        return false;
    }
    let deadline = Instant::now() + MAX_WAIT;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(TryRecvError::Empty) if Instant::now() < deadline => thread::sleep(POLL),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// Commits `batch`, retrying with back-off while it fails; counts the outcome only after the
/// commit. Gives up (`false`) only after the channel has closed and `SHUTDOWN_ATTEMPTS` failed.
fn commit_with_retry(
    conn: &mut Connection,
    batch: &[Message],
    rx: &UnboundedReceiver<Message>,
    metrics: &Metrics,
    health: &Health,
) -> bool {
    let mut delay = RETRY_FIRST;
    let mut failures_since_close = 0;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match write_batch(conn, batch) {
            Ok(out) => {
                metrics.store_committed.add(out.stored);
                metrics.store_duplicates.add(out.duplicates);
                if attempt > 1 {
                    tracing::warn!(attempt, "store commit succeeded after retrying");
                    health.set_ok(health::DATABASE);
                }
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), attempt, "store commit failed, will retry");
                health.set_failed(
                    health::DATABASE,
                    format!("device messages cannot be stored: {e}"),
                );
                if rx.is_closed() {
                    failures_since_close += 1;
                    if failures_since_close >= SHUTDOWN_ATTEMPTS {
                        return false;
                    }
                }
                thread::sleep(delay);
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Writes one batch in one IMMEDIATE transaction. Duplicate checks see the rows inserted
/// earlier in the same transaction, so a redelivery inside one batch is caught too.
fn write_batch(conn: &mut Connection, batch: &[Message]) -> rusqlite::Result<Outcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Outcome::default();
    let mut telemetry = TelemetryBatch::default();
    let mut last_seen: HashMap<&str, i64> = HashMap::new();
    for m in batch {
        let seen = last_seen.entry(m.device.as_str()).or_insert(m.ts_ms);
        *seen = (*seen).max(m.ts_ms);
        let written = match &m.body {
            Body::Telemetry(t) => telemetry.insert(&tx, m, t, DEDUP_WINDOW_MS)?,
            Body::Incident(i) => {
                let seq = seq_of(&i.payload);
                insert_event(&tx, m, seq, &i.payload, Table::Incident(&i.kind))?
            }
            Body::Access(a) => {
                insert_event(&tx, m, seq_of(&a.payload), &a.payload, Table::Access(a))?
            }
            Body::Status(s) => {
                set_status(&tx, m, *s)?;
                Written::Stored
            }
        };
        match written {
            Written::Stored => out.stored += 1,
            Written::Duplicate => out.duplicates += 1,
            Written::Unserializable => {}
        }
    }
    let mut bump = tx.prepare_cached(
        "INSERT INTO device_status (device, online, since_ms, last_seen_ms) VALUES (?1, 1, ?2, ?2)
         ON CONFLICT (device) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
    )?;
    for (device, ts_ms) in last_seen {
        bump.execute((device, ts_ms))?;
    }
    drop(bump);
    telemetry.rollups.write(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// "Is this a redelivery?" per event table. `INDEXED BY` pins the `(device, seq)` index: left
/// alone, the planner prefers `(device, ts_ms)` for the time-window term and then walks every
/// row the device sent in the last ten minutes, once per message (measured: 335 rows/s).
pub(super) const DUPLICATE_INCIDENT: &str = "SELECT EXISTS (SELECT 1 FROM incidents
    INDEXED BY incidents_device_seq
    WHERE device = ?1 AND seq = ?2 AND ts_ms >= ?3 AND payload = ?4)";
pub(super) const DUPLICATE_ACCESS: &str = "SELECT EXISTS (SELECT 1 FROM access_events
    INDEXED BY access_events_device_seq
    WHERE device = ?1 AND seq = ?2 AND ts_ms >= ?3 AND payload = ?4)";

/// The event table a message goes to, with the columns only that table has.
enum Table<'a> {
    Incident(&'a str),
    Access(&'a AccessEvent),
}

/// What became of one event message.
pub(super) enum Written {
    Stored,
    Duplicate,
    /// Its payload could not be turned into JSON text (cannot happen for a `serde_json` map;
    /// handled so that one message can never block the writer).
    Unserializable,
}

/// `seq` of an incident or access payload, when it is an integer.
fn seq_of(payload: &Map<String, Value>) -> Option<i64> {
    payload.get("seq").and_then(Value::as_i64)
}

fn insert_event(
    tx: &Transaction<'_>,
    m: &Message,
    seq: Option<i64>,
    payload: &Map<String, Value>,
    table: Table<'_>,
) -> rusqlite::Result<Written> {
    let json = match serde_json::to_string(payload) {
        Ok(json) => json,
        Err(e) => {
            tracing::error!(device = %m.device, error = %e, "payload not serializable, message NOT stored");
            return Ok(Written::Unserializable);
        }
    };
    let device = m.device.as_str();
    if let Some(seq) = seq {
        let sql = match table {
            Table::Incident(_) => DUPLICATE_INCIDENT,
            Table::Access(_) => DUPLICATE_ACCESS,
        };
        let since = m.ts_ms.saturating_sub(DEDUP_WINDOW_MS);
        let seen: bool = tx
            .prepare_cached(sql)?
            .query_row((device, seq, since, &json), |r| r.get(0))?;
        if seen {
            return Ok(Written::Duplicate);
        }
    }
    match table {
        Table::Incident(kind) => tx
            .prepare_cached(
                "INSERT INTO incidents (device, ts_ms, seq, type, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute((device, m.ts_ms, seq, kind, &json))?,
        Table::Access(a) => tx
            .prepare_cached(
                "INSERT INTO access_events (device, ts_ms, seq, access_id, granted, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute((device, m.ts_ms, seq, &a.access_id, a.granted, &json))?,
    };
    Ok(Written::Stored)
}

/// Records an announced online state; `since_ms` moves only when the state changes, so a
/// repeated `online` (retained message on reconnect) keeps the original time.
fn set_status(tx: &Transaction<'_>, m: &Message, status: Status) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO device_status (device, online, since_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (device) DO UPDATE SET
             online = excluded.online,
             since_ms = CASE WHEN online = excluded.online THEN since_ms ELSE excluded.since_ms END,
             last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
    )?
    .execute((m.device.as_str(), status == Status::Online, m.ts_ms))?;
    Ok(())
}
