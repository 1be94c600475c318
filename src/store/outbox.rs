//! The notification outbox: submitted notices and their delivery rows, one per notice and
//! channel. A row is open while `pending`, `held` (quiet hours) or `suppressed` (storm cap),
//! and final once `sent`, `failed`, `muted` or `skipped`; the final row is the delivery record
//! that `GET /alerts` shows. What the states mean is decided by `notify`; this file stores them.

use super::channels::ChannelRow;
use super::{Result, Store};
use crate::model::now_ms;
use rusqlite::{OptionalExtension, TransactionBehavior, params_from_iter};
use serde::Serialize;

/// A notice as it is filed: the columns queries filter on, plus its full JSON body.
pub struct NewNotice<'a> {
    pub alert_id: i64,
    pub kind: &'a str,
    pub severity: &'a str,
    pub at_ms: i64,
    pub body: &'a str,
}

/// An open delivery with what its worker needs of the notice.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDelivery {
    pub id: i64,
    pub alert_id: i64,
    pub notice_kind: String,
    pub severity: String,
    pub state: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub next_ms: i64,
    /// The notice as JSON.
    pub body: String,
}

/// How a set of delivery rows changes after a decision or an attempt.
#[derive(Debug, Clone, Default)]
pub struct DeliveryChange<'a> {
    pub state: &'a str,
    pub detail: Option<&'a str>,
    /// When the row is due again (open states); unchanged if `None`.
    pub next_ms: Option<i64>,
    /// The message these rows went out in.
    pub message: Option<i64>,
    /// An attempt was made: `attempts` grows by one.
    pub attempted: bool,
}

/// One line of the delivery record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeliveryRow {
    pub alert_id: i64,
    pub channel_id: i64,
    pub channel: String,
    /// `firing`, `reminder` or `resolved`.
    pub notice: String,
    pub state: String,
    pub detail: Option<String>,
    pub attempts: i64,
    pub updated_ms: i64,
    /// When an open row (`pending`, `held`, `suppressed`) is due next; `None` once final.
    pub next_ms: Option<i64>,
}

const DELIVERY_ROW: &str = "SELECT n.alert_id, d.channel_id, c.name, n.kind, d.state, d.detail,
    d.attempts, d.updated_ms,
    CASE WHEN d.state IN ('pending', 'held', 'suppressed') THEN d.next_ms END FROM deliveries d
    JOIN notices n ON n.id = d.notice_id JOIN channels c ON c.id = d.channel_id";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        alert_id: r.get(0)?,
        channel_id: r.get(1)?,
        channel: r.get(2)?,
        notice: r.get(3)?,
        state: r.get(4)?,
        detail: r.get(5)?,
        attempts: r.get(6)?,
        updated_ms: r.get(7)?,
        next_ms: r.get(8)?,
    })
}

impl Store {
    /// Files a notice and, in the same transaction, one `pending` delivery per channel that
    /// `route` accepts (it answers when the row is first due). The channel ids routed to.
    pub fn enqueue_notice(
        &self,
        notice: &NewNotice<'_>,
        route: impl Fn(&ChannelRow) -> Option<i64>,
    ) -> Result<Vec<i64>> {
        let channels = self.channels()?;
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // A reminder for an alert acknowledged meanwhile is dropped here, in the same
            // transaction order as the acknowledgement: once `POST /alerts/{id}/ack` answered,
            // no reminder can follow.
            if notice.kind == "reminder" {
                let acked: bool = tx
                    .query_row(
                        "SELECT acked_ms IS NOT NULL FROM alerts WHERE id = ?1",
                        [notice.alert_id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(false);
                if acked {
                    return Ok(Vec::new());
                }
            }
            tx.execute(
                "INSERT INTO notices (alert_id, kind, severity, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                (notice.alert_id, notice.kind, notice.severity, notice.at_ms, notice.body),
            )?;
            let notice_id = tx.last_insert_rowid();
            // The alert's own record of what was handed to delivery, in the same commit: a
            // crash can neither lose a notice the engine counts as sent nor send it twice.
            tx.execute(
                "INSERT INTO alert_notices (alert_id, kind, at_ms) VALUES (?1, ?2, ?3)",
                (notice.alert_id, notice.kind, notice.at_ms),
            )?;
            let now = now_ms();
            let mut routed = Vec::new();
            for ch in &channels {
                let Some(next) = route(ch) else { continue };
                // A channel deleted since `channels()` read the list is simply skipped.
                let n = tx.execute(
                    "INSERT INTO deliveries (notice_id, channel_id, state, created_ms, next_ms, updated_ms)
                     SELECT ?1, id, 'pending', ?3, ?4, ?3 FROM channels WHERE id = ?2",
                    (notice_id, ch.id, now, next),
                )?;
                if n > 0 {
                    routed.push(ch.id);
                }
            }
            tx.commit()?;
            Ok(routed)
        })
    }

    /// A channel's open deliveries in the order they were filed (at most `limit`).
    pub fn open_deliveries(&self, channel_id: i64, limit: u32) -> Result<Vec<OpenDelivery>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.id, n.alert_id, n.kind, n.severity, d.state, d.attempts, d.created_ms,
                        d.next_ms, n.body
                 FROM deliveries d JOIN notices n ON n.id = d.notice_id
                 WHERE d.channel_id = ?1 AND d.state IN ('pending', 'held', 'suppressed')
                 ORDER BY d.id LIMIT ?2",
            )?;
            let rows = stmt.query_map((channel_id, limit), |r| {
                Ok(OpenDelivery {
                    id: r.get(0)?,
                    alert_id: r.get(1)?,
                    notice_kind: r.get(2)?,
                    severity: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    created_ms: r.get(6)?,
                    next_ms: r.get(7)?,
                    body: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The newest delivery of an alert's `notice_kind` notice on a channel: `(id, state,
    /// attempts, next_ms)`.
    pub fn latest_delivery(
        &self,
        channel_id: i64,
        alert_id: i64,
        notice_kind: &str,
    ) -> Result<Option<(i64, String, i64, i64)>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.id, d.state, d.attempts, d.next_ms
                 FROM deliveries d JOIN notices n ON n.id = d.notice_id
                 WHERE d.channel_id = ?1 AND n.alert_id = ?2 AND n.kind = ?3
                 ORDER BY d.id DESC LIMIT 1",
            )?;
            let row = stmt
                .query_row((channel_id, alert_id, notice_kind), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            Ok(row)
        })
    }

    /// Applies `change` to the delivery rows `ids` in one transaction.
    pub fn update_deliveries(&self, ids: &[i64], change: &DeliveryChange<'_>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with_conn(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE deliveries SET state = ?2, detail = ?3, next_ms = COALESCE(?4, next_ms),
                        message = COALESCE(?5, message), attempts = attempts + ?6, updated_ms = ?7
                     WHERE id = ?1",
                )?;
                let now = now_ms();
                for id in ids {
                    stmt.execute((
                        id,
                        change.state,
                        change.detail,
                        change.next_ms,
                        change.message,
                        i64::from(change.attempted),
                        now,
                    ))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Messages a channel sent since `since_ms` and when the oldest of them went out (the
    /// storm cap's window).
    pub fn messages_since(&self, channel_id: i64, since_ms: i64) -> Result<(i64, Option<i64>)> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT COUNT(DISTINCT message), MIN(updated_ms) FROM deliveries
                 WHERE channel_id = ?1 AND updated_ms >= ?2 AND state = 'sent'
                   AND message IS NOT NULL",
            )?;
            Ok(stmt.query_row((channel_id, since_ms), |r| Ok((r.get(0)?, r.get(1)?)))?)
        })
    }

    /// The delivery record of one alert: every channel and notice, in the order filed.
    pub fn deliveries_for_alert(&self, alert_id: i64) -> Result<Vec<DeliveryRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "{DELIVERY_ROW} WHERE n.alert_id = ?1 ORDER BY d.id"
            ))?;
            let rows = stmt.query_map([alert_id], delivery_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The delivery records of several alerts at once (for alert lists), in the order filed.
    pub fn deliveries_for_alerts(&self, alert_ids: &[i64]) -> Result<Vec<DeliveryRow>> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(|c| {
            let marks = vec!["?"; alert_ids.len()].join(",");
            let mut stmt = c.prepare(&format!(
                "{DELIVERY_ROW} WHERE n.alert_id IN ({marks}) ORDER BY d.id"
            ))?;
            let rows = stmt.query_map(params_from_iter(alert_ids), delivery_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// A channel's newest delivery rows, newest first.
    pub fn channel_deliveries(&self, channel_id: i64, limit: u32) -> Result<Vec<DeliveryRow>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "{DELIVERY_ROW} WHERE d.channel_id = ?1 ORDER BY d.id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map((channel_id, limit), delivery_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Removes notices filed before `before_ms` whose deliveries are all final (their rows go
    /// with them); how many notices went.
    pub fn prune_notices(&self, before_ms: i64) -> Result<usize> {
        self.with_conn(|c| {
            Ok(c.execute(
                "DELETE FROM notices WHERE at_ms < ?1 AND id NOT IN (
                    SELECT notice_id FROM deliveries WHERE state IN ('pending', 'held', 'suppressed'))",
                [before_ms],
            )?)
        })
    }
}
