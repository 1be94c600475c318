//! One worker per channel: reads the channel's open deliveries from the outbox and decides
//! what happens to them — resolved only after a sent firing, mute, quiet hours, storm cap,
//! grouping — then sends one message and records the outcome (sent, retry with back-off,
//! failed). A dead receiver only ever delays its own worker.

use super::channel::{Kind, Target};
use super::policy::{self, GIVE_UP_AFTER_MS, MAX_BACKOFF_MS, Policy};
use super::render::Batch;
use super::send::Failure;
use super::{Notice, Notifier, Severity};
use crate::model::now_ms;
use crate::store::{ChannelRow, DeliveryChange, OpenDelivery, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Open deliveries a worker looks at per step; a longer backlog is worked off step by step.
const BATCH_LIMIT: u32 = 500;
/// Pause after the outbox itself failed (disk trouble), before the worker tries again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// What the worker does after a step.
enum Next {
    /// Something changed: look again at once.
    Again,
    /// Nothing is due before this time (epoch ms).
    At(i64),
    /// Nothing is open: wait for a wake-up.
    Idle,
    /// The channel is gone.
    Exit,
}

/// Runs channel `id`'s worker until `stop` or until the channel is deleted.
pub async fn run(notifier: Notifier, id: i64, stop: CancellationToken) {
    let waker = notifier.waker(id);
    loop {
        // A send in flight is abandoned on stop; its row stays pending and goes out after the
        // next start (at least once, never lost).
        let stepped = tokio::select! {
            () = stop.cancelled() => return,
            r = step(&notifier, id) => r,
        };
        let wait = match stepped {
            Ok(Next::Again) => continue,
            Ok(Next::Exit) => return,
            Ok(Next::Idle) => None,
            Ok(Next::At(ms)) => Some(Duration::from_millis(
                u64::try_from(ms.saturating_sub(now_ms())).unwrap_or(0),
            )),
            Err(e) => {
                tracing::error!(channel = id, error = %e, "notification outbox failed; retrying");
                Some(STORE_RETRY)
            }
        };
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = waker.notified() => {}
            () = sleep => {}
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
) -> crate::store::Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| crate::store::StoreError::Task(e.to_string()))?
}

async fn mark(
    n: &Notifier,
    ids: Vec<i64>,
    change: DeliveryChange<'static>,
) -> crate::store::Result<()> {
    blocking(&n.inner.store, move |s| s.update_deliveries(&ids, &change)).await
}

fn ids(rows: &[&OpenDelivery]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

async fn step(n: &Notifier, id: i64) -> crate::store::Result<Next> {
    let store = &n.inner.store;
    let Some(ch) = blocking(store, move |s| s.channel(id)).await? else {
        return Ok(Next::Exit);
    };
    let open = blocking(store, move |s| s.open_deliveries(id, BATCH_LIMIT)).await?;
    if open.is_empty() {
        return Ok(Next::Idle);
    }
    let now = now_ms();
    if !ch.enabled {
        let change = DeliveryChange {
            state: "skipped",
            detail: Some("the channel is disabled"),
            ..Default::default()
        };
        mark(n, open.iter().map(|r| r.id).collect(), change).await?;
        return Ok(Next::Again);
    }
    if ch.muted_until_ms.is_some_and(|m| m > now) {
        let change = DeliveryChange {
            state: "muted",
            detail: Some("the channel was muted"),
            ..Default::default()
        };
        mark(n, open.iter().map(|r| r.id).collect(), change).await?;
        return Ok(Next::Again);
    }
    if settle_resolved(n, id, &open, now).await? {
        return Ok(Next::Again);
    }
    let policy: Policy = serde_json::from_value(ch.policy.clone()).unwrap_or_default();
    let summary: Vec<&OpenDelivery> = open
        .iter()
        .filter(|r| r.state == "suppressed" && r.next_ms <= now)
        .collect();
    if !summary.is_empty() {
        deliver(n, &ch, &summary, true).await?;
        return Ok(Next::Again);
    }
    let quiet = policy
        .quiet_hours
        .as_ref()
        .and_then(|q| policy::quiet_until(q, &n.inner.settings.time_zone, now));
    // Due: its time has come, or it was held by quiet hours that are over (or were removed).
    let due = |r: &OpenDelivery| {
        r.state != "suppressed" && (r.next_ms <= now || (r.state == "held" && quiet.is_none()))
    };
    if !open.iter().any(due) {
        return Ok(next_due(&open));
    }
    // The group: what is due, plus fresh rows that arrived while the first one waited.
    let group: Vec<&OpenDelivery> = open
        .iter()
        .filter(|r| due(r) || (r.attempts == 0 && r.state == "pending"))
        .collect();
    let group = hold_quiet(n, &policy, quiet, group).await?;
    if group.is_empty() {
        return Ok(Next::Again);
    }
    let window = i64::from(policy.storm_window_s) * 1000;
    let (sent, oldest) = blocking(store, move |s| s.messages_since(id, now - window)).await?;
    if sent >= i64::from(policy.storm_cap) {
        let until = oldest.unwrap_or(now) + window;
        let change = DeliveryChange {
            state: "suppressed",
            detail: Some("storm cap reached: goes out in one summary"),
            next_ms: Some(until),
            ..Default::default()
        };
        mark(n, ids(&group), change).await?;
        return Ok(Next::Again);
    }
    deliver(n, &ch, &group, false).await?;
    Ok(Next::Again)
}

fn next_due(open: &[OpenDelivery]) -> Next {
    open.iter()
        .map(|r| r.next_ms)
        .min()
        .map_or(Next::Idle, Next::At)
}

/// Resolved notices go out only on a channel that got the firing. True if rows changed.
async fn settle_resolved(
    n: &Notifier,
    id: i64,
    open: &[OpenDelivery],
    now: i64,
) -> crate::store::Result<bool> {
    let mut changed = false;
    for r in open
        .iter()
        .filter(|r| r.notice_kind == "resolved" && r.next_ms <= now && r.state == "pending")
    {
        let alert = r.alert_id;
        let firing = blocking(&n.inner.store, move |s| {
            s.latest_delivery(id, alert, "firing")
        })
        .await?;
        let skip = |detail: &'static str| DeliveryChange {
            state: "skipped",
            detail: Some(detail),
            ..Default::default()
        };
        match firing {
            Some((_, state, _, _)) if state == "sent" || state == "suppressed" => {}
            // The firing is still being retried: the resolved waits behind it.
            Some((_, state, attempts, next)) if state == "pending" && attempts > 0 => {
                let change = DeliveryChange {
                    state: "pending",
                    next_ms: Some(next.max(now + 1)),
                    ..Default::default()
                };
                mark(n, vec![r.id], change).await?;
                changed = true;
            }
            Some((fid, state, _, _)) if state == "pending" || state == "held" => {
                mark(n, vec![fid], skip("resolved before it was sent")).await?;
                mark(
                    n,
                    vec![r.id],
                    skip("the firing was not sent on this channel"),
                )
                .await?;
                changed = true;
            }
            _ => {
                mark(
                    n,
                    vec![r.id],
                    skip("the firing was not sent on this channel"),
                )
                .await?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Holds what quiet hours (ending at `quiet`) hold; the rest of the group.
async fn hold_quiet<'a>(
    n: &Notifier,
    policy: &Policy,
    quiet: Option<i64>,
    group: Vec<&'a OpenDelivery>,
) -> crate::store::Result<Vec<&'a OpenDelivery>> {
    let Some(until) = quiet else {
        return Ok(group);
    };
    let (pass, hold): (Vec<_>, Vec<_>) = group.into_iter().partition(|r| {
        let severity = if r.severity == "critical" {
            Severity::Critical
        } else {
            Severity::Warning
        };
        policy.passes_quiet(severity)
    });
    let hold_ids: Vec<i64> = hold.iter().map(|r| r.id).collect();
    let change = DeliveryChange {
        state: "held",
        detail: Some("held by quiet hours"),
        next_ms: Some(until),
        ..Default::default()
    };
    mark(n, hold_ids, change).await?;
    Ok(pass)
}

/// Sends `rows` as one message and records the outcome on each.
async fn deliver(
    n: &Notifier,
    ch: &ChannelRow,
    rows: &[&OpenDelivery],
    summary: bool,
) -> crate::store::Result<()> {
    let notices: Vec<Notice> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    let target = Kind::parse(&ch.kind)
        .ok_or_else(|| format!("unknown channel kind {:?}", ch.kind))
        .and_then(|k| Target::parse(k, &ch.settings));
    let outcome = match target {
        Ok(t) => {
            let batch = Batch {
                notices: &notices,
                summary,
                channel_id: ch.id,
                channel_name: &ch.name,
                public_url: n.inner.settings.public_url.as_deref(),
                time_zone: &n.inner.settings.time_zone,
            };
            n.inner.sender.send(&t, &batch).await
        }
        Err(e) => Err(Failure::Fatal(format!(
            "the channel's settings are invalid: {e}"
        ))),
    };
    let now = now_ms();
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let first_ms = rows.iter().map(|r| r.created_ms).min().unwrap_or(now);
    let message = rows.first().map(|r| r.id);
    let ids = ids(rows);
    let (state, detail, next_ms) = match &outcome {
        Ok(detail) => ("sent", detail.clone(), None),
        Err(Failure::Retry { reason, .. }) if now - first_ms >= GIVE_UP_AFTER_MS => {
            ("failed", format!("gave up after 24 h: {reason}"), None)
        }
        Err(Failure::Retry { reason, after_ms }) => {
            let pause = policy::backoff_ms(n.inner.settings.retry_base_ms, attempts)
                .max(after_ms.unwrap_or(0).min(MAX_BACKOFF_MS));
            let keep = if summary { "suppressed" } else { "pending" };
            (keep, format!("retrying: {reason}"), Some(now + pause))
        }
        Err(Failure::Fatal(reason)) => ("failed", reason.clone(), None),
    };
    tracing::info!(
        channel = ch.id, name = %ch.name, kind = %ch.kind, notices = ids.len(), attempts,
        state, detail = %detail, "notification delivery"
    );
    match state {
        "sent" => (n.inner.metrics.notifications_sent).add(&ch.name, &ch.kind, ids.len() as u64),
        "failed" => {
            (n.inner.metrics.notifications_failed).add(&ch.name, &ch.kind, ids.len() as u64)
        }
        _ => (n.inner.metrics.notifications_retried).add(&ch.name, &ch.kind, 1),
    }
    let last_state = if next_ms.is_some() { "retrying" } else { state };
    let (store, ch_id, last_detail) = (n.inner.store.clone(), ch.id, detail.clone());
    blocking(&store, move |s| {
        s.update_deliveries(
            &ids,
            &DeliveryChange {
                state,
                detail: Some(&detail),
                next_ms,
                message: (state == "sent").then_some(message).flatten(),
                attempted: true,
            },
        )?;
        s.set_channel_last(ch_id, last_state, Some(&last_detail))
    })
    .await
}
