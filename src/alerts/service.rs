//! The running rule engine: feeds the engine from the hub's typed subscription (bounded; after
//! a lag it re-reads each device's newest telemetry from the store), a clock tick and rule
//! changes, and applies its effects — store first, then the notice, then the live event — so a
//! crash between them repeats nothing that was recorded and loses nothing that fired.

use super::engine::{Active, Effect, Engine, Key};
use super::{Alerts, rule, rule_from_row, view};
use crate::health::{Check, Health, Snapshot};
use crate::hub::Hub;
use crate::model::{Body, DeviceId, LiveEvent, Message, Telemetry, format_ts, now_ms};
use crate::notify::{Notice, NoticeKind, Notifier};
use crate::store::{NewAlert, PendingRow, Store};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How often timers, silence and reminders are checked.
pub const TICK: Duration = Duration::from_millis(500);

/// Every this many ticks (30 s) the engine forgets devices that were removed.
const DEVICE_CHECK_TICKS: u64 = 60;

/// What the engine needs.
pub struct Deps {
    pub store: Store,
    pub hub: Hub,
    pub alerts: Alerts,
    /// rzmon's own checks: a failed one raises a system alert, its recovery resolves it.
    pub health: Health,
    /// Delivery: a notice is in the persisted outbox when `submit` returns (a local commit;
    /// a slow disk slows the engine, never ingest: the hub ring decouples them).
    pub notifier: Notifier,
}

/// Runs until `stop`.
pub async fn run(deps: Deps, stop: CancellationToken) -> anyhow::Result<()> {
    // Subscribe before loading, so nothing published meanwhile is missed.
    let mut events = deps.hub.subscribe_events();
    let mut requests = deps.alerts.requests();
    let store = deps.store.clone();
    let (mut engine, leftovers) = blocking(&store, load)
        .await
        .context("cannot load the alert rules")?;
    tracing::info!(
        rules = engine.rules().len(),
        active = engine.active().count(),
        "rule engine started"
    );
    // `for` timers that started or ended since the last tick; written once per tick, so a value
    // flapping around a threshold costs no write per reading.
    let mut timers = Timers::new();
    for effect in leftovers {
        apply(&deps, &mut engine, &mut timers, effect).await;
    }
    let mut health = deps.health.subscribe();
    let mut checks = Snapshot::new();
    let first = health_changes(&mut engine, &mut checks, &health.borrow_and_update());
    for effect in first {
        apply(&deps, &mut engine, &mut timers, effect).await;
    }
    // The newest telemetry per device as the hub delivered it (ahead of its commit): a rule
    // loaded after a reading arrived still judges that reading.
    let mut latest = Latest::new();
    let mut tick = tokio::time::interval(TICK);
    let mut ticks: u64 = 0;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut reloaded = None;
        let effects = tokio::select! {
            () = stop.cancelled() => {
                flush(&store, &mut timers).await;
                return Ok(());
            }
            ev = events.recv() => match ev {
                Ok(m) => {
                    let effects = engine.on_message(&m);
                    if matches!(m.body, Body::Telemetry(_)) {
                        latest.insert(m.device.clone(), m);
                    }
                    effects
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "rule engine fell behind; re-reading the newest telemetry");
                    catch_up(&store, &mut engine).await
                }
                Err(RecvError::Closed) => {
                    flush(&store, &mut timers).await;
                    return Ok(());
                }
            },
            _ = tick.tick() => {
                flush(&store, &mut timers).await;
                ticks += 1;
                let mut effects = Vec::new();
                if ticks.is_multiple_of(DEVICE_CHECK_TICKS) {
                    effects = registered(&store, &mut engine, &mut latest).await;
                }
                effects.extend(engine.on_tick(now_ms()));
                effects
            }
            Ok(()) = requests.changed() => {
                reloaded = Some(*requests.borrow_and_update());
                reload(&store, &mut engine, &latest).await
            }
            Ok(()) = health.changed() => {
                let now = health.borrow_and_update().clone();
                health_changes(&mut engine, &mut checks, &now)
            }
        };
        for effect in effects {
            apply(&deps, &mut engine, &mut timers, effect).await;
        }
        if let Some(generation) = reloaded {
            deps.alerts.applied(generation);
        }
    }
}

/// Newest telemetry per device seen on the hub.
type Latest = HashMap<DeviceId, Arc<Message>>;

/// Seeds the default rules on first start, then reads rules, open alerts, pending timers and
/// the devices' last messages.
fn load(store: &Store) -> crate::store::Result<(Engine, Vec<Effect>)> {
    let defaults: Vec<(String, bool, String)> = rule::defaults()
        .into_iter()
        .map(|(name, spec)| {
            let json = serde_json::to_string(&spec).unwrap_or_default();
            (name.to_owned(), true, json)
        })
        .collect();
    if store.seed_alert_rules(&defaults)? {
        tracing::info!(rules = defaults.len(), "created the default alert rules");
    }
    let now = now_ms();
    let mut engine = Engine::default();
    let active = store.active_alerts()?;
    let ids: Vec<i64> = active.iter().map(|a| a.id).collect();
    let notices = store.alert_notices(&ids)?;
    for a in active {
        let sent = notices.get(&a.id).map(Vec::as_slice).unwrap_or_default();
        let reminders = sent.iter().filter(|(k, _)| k == "reminder").count();
        engine.restore_alert(
            (a.rule_id, a.subject.clone()),
            Active {
                id: a.id,
                started_ms: a.started_ms,
                last_event_ms: a.last_event_ms,
                acked: a.acked_ms.is_some(),
                notified: sent.iter().any(|(k, _)| k == "firing"),
                reminders: u32::try_from(reminders).unwrap_or(u32::MAX),
                last_notice_ms: sent.last().map_or(a.started_ms, |(_, at)| *at),
            },
        );
    }
    for p in store.alert_pending()? {
        engine.restore_pending((p.rule_id, p.subject), p.since_ms, p.value);
    }
    for s in store.device_statuses()? {
        engine.restore_seen(s.device, s.last_seen_ms.max(now));
    }
    // Alerts of rules removed or disabled while rzmon was down resolve now.
    let rules = store
        .alert_rules()?
        .iter()
        .filter_map(rule_from_row)
        .collect();
    let effects = engine.set_rules(rules, now);
    Ok((engine, effects))
}

/// Feeds the checks that changed since `seen` (all of them the first time) to the engine.
fn health_changes(engine: &mut Engine, seen: &mut Snapshot, now: &Snapshot) -> Vec<Effect> {
    let mut out = Vec::new();
    for (check, state) in now {
        if seen.get(check) == Some(state) {
            continue;
        }
        let reason = match state {
            Check::Ok => None,
            Check::Failed(reason) => Some(reason.as_str()),
        };
        out.extend(engine.on_health(check, reason, now_ms()));
    }
    seen.clone_from(now);
    out
}

/// Drops removed devices from the engine (see `Engine::retain_devices`).
async fn registered(store: &Store, engine: &mut Engine, latest: &mut Latest) -> Vec<Effect> {
    match blocking(store, Store::devices).await {
        Ok(devices) => {
            let ids: Vec<String> = devices.into_iter().map(|d| d.id.to_string()).collect();
            latest.retain(|d, _| ids.iter().any(|r| r == d.as_str()));
            engine.retain_devices(&ids, now_ms())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the registered devices");
            Vec::new()
        }
    }
}

/// Re-reads rules and acknowledgements after the API changed them.
async fn reload(store: &Store, engine: &mut Engine, latest: &Latest) -> Vec<Effect> {
    let read = blocking(store, |s| Ok((s.alert_rules()?, s.active_alerts()?))).await;
    let (rows, active) = match read {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot re-read the alert rules");
            return Vec::new();
        }
    };
    for a in active.iter().filter(|a| a.acked_ms.is_some()) {
        engine.acked(a.id);
    }
    let mut effects = engine.set_rules(rows.iter().filter_map(rule_from_row).collect(), now_ms());
    // A new or changed rule judges the room as it is now: a reading that arrived just before the
    // rule was loaded (the door already open) must not be missed, even if it is not committed
    // yet (the hub delivers ahead of the commit), so the newer of stored and seen counts.
    let mut newest = stored_latest(store).await;
    for (device, m) in latest {
        let newer = newest.get(device).is_none_or(|s| s.ts_ms <= m.ts_ms);
        if newer {
            newest.insert(device.clone(), m.clone());
        }
    }
    for m in newest.values() {
        effects.extend(engine.on_message(m));
    }
    effects
}

/// After a lag: evaluates each device's newest stored telemetry as if it had just arrived.
pub(super) async fn catch_up(store: &Store, engine: &mut Engine) -> Vec<Effect> {
    let mut out = Vec::new();
    for m in stored_latest(store).await.values() {
        out.extend(engine.on_message(m));
    }
    out
}

/// Each device's newest stored telemetry as a message.
async fn stored_latest(store: &Store) -> Latest {
    let rows = match blocking(store, Store::latest_telemetry).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "cannot re-read the newest telemetry");
            return Latest::new();
        }
    };
    let mut out = Latest::new();
    for (device, ts_ms, payload) in rows {
        let (Some(device), serde_json::Value::Object(payload)) =
            (DeviceId::parse(&device), payload)
        else {
            continue;
        };
        let num = |k: &str| payload.get(k).and_then(serde_json::Value::as_f64);
        let body = Body::Telemetry(Telemetry {
            tmp: num("tmp"),
            lf: num("lf"),
            locked: payload.get("locked").and_then(serde_json::Value::as_bool),
            seq: None,
            payload: payload.clone(),
        });
        let m = Message {
            device: device.clone(),
            ts_ms,
            body,
        };
        out.insert(device, Arc::new(m));
    }
    out
}

/// Timer changes not yet written: `Some` = started, `None` = ended.
type Timers = HashMap<Key, Option<PendingRow>>;

/// Writes the timer changes of the last tick in one transaction.
async fn flush(store: &Store, timers: &mut Timers) {
    if timers.is_empty() {
        return;
    }
    let changes: Vec<(Key, Option<PendingRow>)> = timers.drain().collect();
    if let Err(e) = blocking(store, move |s| s.sync_alert_pending(&changes)).await {
        tracing::error!(error = %e, "cannot record the alert timers");
    }
}

async fn apply(deps: &Deps, engine: &mut Engine, timers: &mut Timers, effect: Effect) {
    let store = &deps.store;
    let result = match effect {
        Effect::Pending {
            key,
            since_ms,
            value,
        } => {
            let p = PendingRow {
                rule_id: key.0,
                subject: key.1.clone(),
                since_ms,
                value,
            };
            timers.insert(key, Some(p));
            Ok(())
        }
        Effect::ClearPending { key } => {
            timers.insert(key, None);
            Ok(())
        }
        Effect::Fire {
            key,
            device,
            value,
            threshold,
            summary,
            at_ms,
        } => {
            // Opening the alert ends its timer in the same transaction.
            timers.remove(&key);
            fire(deps, engine, key, device, value, threshold, summary, at_ms).await;
            Ok(())
        }
        Effect::Touch {
            alert_id,
            summary,
            value,
            at_ms,
            ..
        } => {
            let r = blocking(store, move |s| {
                s.touch_alert(alert_id, at_ms, &summary, value)
            })
            .await;
            push(deps, alert_id).await;
            r
        }
        Effect::Resolve { key, alert, at_ms } => {
            let id = alert.id;
            let r = blocking(store, move |s| s.resolve_alert(id, at_ms)).await;
            if r.is_ok() && alert.notified && !snoozed(engine, &key, at_ms) {
                notify(deps, engine, &key, id, NoticeKind::Resolved, at_ms).await;
            }
            push(deps, id).await;
            r
        }
        Effect::Notify {
            key,
            alert_id,
            reminder,
            at_ms,
        } => {
            let kind = if reminder {
                NoticeKind::Reminder
            } else {
                NoticeKind::Firing
            };
            notify(deps, engine, &key, alert_id, kind, at_ms).await;
            push(deps, alert_id).await;
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record an alert change");
    }
}

fn snoozed(engine: &Engine, key: &Key, now: i64) -> bool {
    engine.rule(key.0).is_some_and(|r| r.snoozed(now))
}

#[allow(clippy::too_many_arguments)]
async fn fire(
    deps: &Deps,
    engine: &mut Engine,
    key: Key,
    device: Option<DeviceId>,
    value: Option<f64>,
    threshold: Option<f64>,
    summary: String,
    at_ms: i64,
) {
    let Some(rule) = engine.rule(key.0).cloned() else {
        return;
    };
    let severity = serde_json::to_value(rule.spec.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let incident_type = rule.incident_type();
    let payload = serde_json::json!({
        "type": incident_type, "rule": rule.name, "severity": severity,
        "summary": summary, "value": value, "threshold": threshold,
    });
    let new = NewAlert {
        rule_id: rule.id,
        rule_name: rule.name.clone(),
        subject: key.1.clone(),
        device: device.as_ref().map(ToString::to_string),
        severity,
        summary: summary.clone(),
        value,
        threshold,
        started_ms: at_ms,
        incident_type,
        incident_payload: payload.to_string(),
    };
    let id = match blocking(&deps.store, move |s| s.open_alert(&new)).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(rule = rule.id, subject = %key.1, error = %e, "cannot store a firing alert; will retry");
            engine.open_failed(&key);
            return;
        }
    };
    tracing::warn!(alert = id, rule = %rule.name, %summary, "alert firing");
    engine.opened(&key, id, false);
    deps.hub.publish(&LiveEvent {
        kind: "incident",
        device: device.map(|d| d.to_string()).unwrap_or_default(),
        timestamp: format_ts(at_ms),
        data: payload,
    });
    if !rule.snoozed(at_ms) {
        notify(deps, engine, &key, id, NoticeKind::Firing, at_ms).await;
    }
    push(deps, id).await;
}

/// Builds the notice from the stored alert, hands it to delivery and records that.
async fn notify(
    deps: &Deps,
    engine: &mut Engine,
    key: &Key,
    id: i64,
    kind: NoticeKind,
    at_ms: i64,
) {
    let Some(rule) = engine.rule(key.0).cloned() else {
        return;
    };
    let row = match blocking(&deps.store, move |s| s.alert(id)).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(alert = id, error = %e, "cannot read an alert for its notice");
            return;
        }
    };
    let mut labels = BTreeMap::from([
        ("alertname".to_owned(), rule.name.clone()),
        ("kind".to_owned(), rule.spec.condition.kind().to_owned()),
    ]);
    if let super::Condition::Threshold { metric, .. } = &rule.spec.condition {
        labels.insert("metric".into(), metric.clone());
    }
    let notice = Notice {
        alert_id: id,
        kind,
        rule_id: rule.id,
        rule_name: rule.name.clone(),
        device: row.device.as_deref().and_then(DeviceId::parse),
        severity: rule.spec.severity,
        summary: row.summary.clone(),
        value: row.value,
        threshold: row.threshold,
        started_ms: row.started_ms,
        at_ms,
        labels,
    };
    // The outbox and the alert's notice record are written in one transaction.
    if let Err(e) = deps.notifier.submit_async(notice).await {
        tracing::error!(alert = id, error = %e, "a notice could not be filed for delivery");
        return;
    }
    if kind != NoticeKind::Resolved {
        engine.noticed(key, kind == NoticeKind::Reminder, at_ms);
    }
}

/// Pushes the alert's current row as `{"type":"alert"}` on `/ws`.
async fn push(deps: &Deps, id: i64) {
    let read = blocking(&deps.store, move |s| {
        let row = s.alert(id)?;
        let notices = s.alert_notices(&[id])?;
        Ok(row.map(|r| (r, notices)))
    })
    .await;
    if let Ok(Some((row, notices))) = read {
        let empty = Vec::new();
        publish_alert(&deps.hub, &row, notices.get(&id).unwrap_or(&empty));
    }
}

/// Publishes an alert row as `{"type":"alert","device","timestamp","data":{...}}`.
pub fn publish_alert(hub: &Hub, row: &crate::store::AlertRow, notices: &[(String, i64)]) {
    hub.publish(&LiveEvent {
        kind: "alert",
        device: row.device.clone().unwrap_or_default(),
        timestamp: format_ts(now_ms()),
        data: view::alert(row, notices),
    });
}

async fn blocking<T, F>(store: &Store, f: F) -> crate::store::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| crate::store::StoreError::Task(format!("alert task failed: {e}")))?
}
