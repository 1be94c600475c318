//! The one batching writer: a thread that owns its own connection, takes device messages from
//! a bounded channel and commits them in batches (group commit: whatever is queued when the
//! previous commit ends, so the fsync sets the batch size), ignoring QoS 1 redeliveries. Each
//! message's `Ack` runs only after its batch is committed; a batch that cannot be committed is
//! retried and never acknowledged.

use super::telemetry::TelemetryBatch;
use super::{Result, StoreError};
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::model::{AccessEvent, Ack, Body, Message, Status};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, Receiver, Sender};

/// Messages waiting for the writer. A full queue makes senders wait, which stops the gate
/// reading from the devices' sockets (TCP back-pressure). 4,096 small messages are about 2 MiB,
/// and more than one commit needs at 100,000 msg/s.
pub const QUEUE: usize = 4_096;
/// Most messages in one transaction; larger batches gain little and keep the write lock longer.
const MAX_BATCH: usize = 1_024;
/// A message whose (device, seq, payload) was stored this recently is a QoS 1 redelivery.
/// Older matches are a rebooted device that restarted its `seq` (and happens to repeat a
/// reading), so they are stored.
pub(super) const DEDUP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Back-off between attempts when a commit fails (disk full, file locked).
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Once `close` was called, a failing batch is retried this long, then given up (it was never
/// acknowledged, so the devices still have it): shutdown cannot hang on a full disk.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What travels on the writer's channel.
enum Item {
    Store(Message, Option<Ack>),
    /// Sent by `close`: commit what came before, then stop.
    Stop,
}

/// The writer's input; cheap to clone.
#[derive(Clone)]
pub struct WriterTx(Sender<Item>);

/// The writer has stopped; the message was not stored (and not acknowledged).
#[derive(Debug, thiserror::Error)]
#[error("the store writer has stopped")]
pub struct Stopped;

impl WriterTx {
    /// Queues `msg`; waits while the queue is full. `ack` runs after the commit.
    pub async fn send(&self, msg: Message, ack: Option<Ack>) -> std::result::Result<(), Stopped> {
        self.0
            .send(Item::Store(msg, ack))
            .await
            .map_err(|_| Stopped)
    }

    /// `send` for threads outside the async runtime.
    pub fn blocking_send(
        &self,
        msg: Message,
        ack: Option<Ack>,
    ) -> std::result::Result<(), Stopped> {
        self.0
            .blocking_send(Item::Store(msg, ack))
            .map_err(|_| Stopped)
    }
}

/// The running batch writer: send messages with `sender()`, then `close()` to commit what was
/// queued and join the thread.
pub struct Writer {
    tx: WriterTx,
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<Result<()>>,
}

impl Writer {
    pub(super) fn spawn(conn: Connection, metrics: Arc<Metrics>, health: Health) -> Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stopping = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            metrics,
            health,
            stopping: stopping.clone(),
        };
        let thread = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, rx, &ctx))
            .map_err(|e| StoreError::Task(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            tx: WriterTx(tx),
            stopping,
            thread,
        })
    }

    pub fn sender(&self) -> WriterTx {
        self.tx.clone()
    }

    /// Commits everything queued before this call, checkpoints the WAL into the main file and
    /// joins the writer thread. Blocks. If
    /// commits keep failing, gives up after `STOP_GRACE` (those messages were not
    /// acknowledged) and returns an error.
    pub fn close(self) -> Result<()> {
        self.stopping.store(true, Ordering::Release);
        // Fails only if the thread has already ended; its result says why.
        let _ = self.tx.0.blocking_send(Item::Stop);
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| StoreError::Task("the store writer thread panicked".into()))?
    }
}

/// What the writer thread reports to.
struct Ctx {
    metrics: Arc<Metrics>,
    health: Health,
    stopping: Arc<AtomicBool>,
}

/// What one committed batch did.
#[derive(Debug, Default)]
struct Outcome {
    /// Messages written: event rows plus status updates.
    stored: u64,
    /// Redeliveries ignored.
    duplicates: u64,
}

/// Waits on the channel (no polling), takes whatever is queued, commits it, acknowledges it.
fn run(mut conn: Connection, mut rx: Receiver<Item>, ctx: &Ctx) -> Result<()> {
    let mut items = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut acks = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.blocking_recv_many(&mut items, MAX_BATCH) == 0 {
            tracing::debug!("store writer: every sender is gone");
            return Ok(());
        }
        ctx.metrics.store_queue.set(rx.len() as i64);
        let mut stop = false;
        for item in items.drain(..) {
            match item {
                Item::Store(m, ack) => {
                    batch.push(m);
                    acks.extend(ack);
                }
                // Whatever follows `Stop` came after `close` and is dropped unacknowledged.
                Item::Stop => stop = true,
            }
            if stop {
                break;
            }
        }
        if !batch.is_empty() {
            if !commit_with_retry(&mut conn, &batch, ctx) {
                let pending = batch.len() + rx.len();
                tracing::error!(
                    pending,
                    "store writer stopped with messages it could not commit; they were not acknowledged"
                );
                return Err(StoreError::Task(format!(
                    "{pending} messages could not be stored (not acknowledged)"
                )));
            }
            batch.clear();
            acks.drain(..).for_each(Ack::done);
        }
        if stop {
            checkpoint(&conn);
            tracing::debug!("store writer drained and stopped");
            return Ok(());
        }
    }
}

/// Copies the WAL into the main file and empties it, so after a clean stop `rzmon.db` alone
/// holds everything (a user may copy just that file as a backup).
fn checkpoint(conn: &Connection) {
    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    });
    match r {
        Ok((0, _)) => tracing::debug!("WAL checkpointed into the main database file"),
        Ok((_, frames)) => {
            tracing::warn!(frames, "WAL checkpoint incomplete: a reader was still busy")
        }
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
    }
}

/// Commits `batch`, retrying with back-off while it fails; counts the outcome only after the
/// commit. Gives up (`false`) only once `close` was called and `STOP_GRACE` has passed.
fn commit_with_retry(conn: &mut Connection, batch: &[Message], ctx: &Ctx) -> bool {
    let mut delay = RETRY_FIRST;
    let mut attempt = 0u64;
    let mut stop_seen: Option<Instant> = None;
    loop {
        attempt += 1;
        let started = Instant::now();
        match write_batch(conn, batch) {
            Ok(out) => {
                ctx.metrics.store_commit_seconds.observe(started.elapsed());
                ctx.metrics.store_committed.add(out.stored);
                ctx.metrics.store_duplicates.add(out.duplicates);
                if attempt > 1 {
                    tracing::warn!(attempt, "store commit succeeded after retrying");
                    ctx.health.set_ok(health::DATABASE);
                }
                return true;
            }
            Err(e) => {
                if attempt == 1 {
                    tracing::error!(error = %e, messages = batch.len(), "store commit failed, will retry");
                }
                ctx.metrics.store_commit_failures.inc();
                if super::is_corruption(&e) {
                    super::report_damage(&ctx.health, Path::new(conn.path().unwrap_or("")), &e);
                }
                ctx.health.set_failed(
                    health::DATABASE,
                    format!(
                        "device messages cannot be stored ({e}); they are not acknowledged, so the devices keep them"
                    ),
                );
                if ctx.stopping.load(Ordering::Acquire) {
                    let since = *stop_seen.get_or_insert_with(Instant::now);
                    if since.elapsed() >= STOP_GRACE {
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
            .execute((device, m.ts_ms, seq, a.access_id.as_str(), a.granted, &json))?,
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
