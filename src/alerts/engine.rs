//! The rule state machine, pure: device messages, health changes and clock ticks go in, effects
//! (start or end a `for` timer, fire, touch, resolve, remind) come out; `service` applies them to
//! the store and delivery. State per (rule, subject): ok → pending → firing → resolved, with
//! hysteresis and `keep_firing_for`; acknowledgement only stops reminders.

use super::rule::{Condition, Op, Rule};
use crate::model::{Body, DeviceId, Message};
use std::collections::{HashMap, VecDeque};

/// (rule id, subject): the subject is a device id, or a health check's name for system alerts.
pub type Key = (i64, String);

/// An alert that is firing, as the engine tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    /// 0 until the store assigned the row id (see `Engine::opened`).
    pub id: i64,
    pub started_ms: i64,
    pub last_event_ms: i64,
    pub acked: bool,
    /// A firing notice was handed to delivery (not while the rule was snoozed).
    pub notified: bool,
    pub reminders: u32,
    pub last_notice_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    pending_since: Option<i64>,
    value: Option<f64>,
    alert: Option<Active>,
    /// A firing threshold alert recovered at this time (for `keep_firing_for`).
    clear_since: Option<i64>,
}

/// What `service` must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Pending {
        key: Key,
        since_ms: i64,
        value: Option<f64>,
    },
    ClearPending {
        key: Key,
    },
    /// A new alert: store it, then call `opened` with its id and announce it.
    Fire {
        key: Key,
        device: Option<DeviceId>,
        value: Option<f64>,
        threshold: Option<f64>,
        summary: String,
        at_ms: i64,
    },
    /// A new event kept an event-like alert firing.
    Touch {
        key: Key,
        alert_id: i64,
        summary: String,
        value: Option<f64>,
        at_ms: i64,
    },
    /// The alert recovered; `notify` tells whether a resolved notice is due.
    Resolve {
        key: Key,
        alert: Active,
        at_ms: i64,
    },
    /// A notice for a firing alert: a reminder, or the late firing notice (after a snooze, or
    /// one that a crash kept from being handed to delivery).
    Notify {
        key: Key,
        alert_id: i64,
        reminder: bool,
        at_ms: i64,
    },
}

/// Rule state for every (rule, subject), plus what the rules need to remember about devices.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Rule>,
    states: HashMap<Key, State>,
    /// Newest message per device (for `silence`), and whether it announced `offline` since.
    seen: HashMap<DeviceId, (i64, bool)>,
    /// Denied swipes per (rule, device) inside the rule's window.
    denials: HashMap<Key, VecDeque<i64>>,
}

impl Engine {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: i64) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Replaces the rules. Alerts and timers of rules that vanished, were disabled or no longer
    /// cover their device end (`Resolve` for alerts); the others keep their state.
    pub fn set_rules(&mut self, rules: Vec<Rule>, now_ms: i64) -> Vec<Effect> {
        self.rules = rules;
        let mut out = Vec::new();
        let keys: Vec<Key> = self.states.keys().cloned().collect();
        for key in keys {
            if self.live_rule(&key).is_some() {
                continue;
            }
            if let Some(state) = self.states.remove(&key) {
                if let Some(alert) = state.alert {
                    out.push(Effect::Resolve {
                        key,
                        alert,
                        at_ms: now_ms,
                    });
                } else if state.pending_since.is_some() {
                    out.push(Effect::ClearPending { key });
                }
            }
        }
        self.denials
            .retain(|k, _| self.rules.iter().any(|r| r.id == k.0));
        out
    }

    /// The enabled rule of `key` if it still covers the key's subject.
    fn live_rule(&self, key: &Key) -> Option<&Rule> {
        let rule = self.rule(key.0).filter(|r| r.enabled)?;
        let device = DeviceId::parse(&key.1);
        let covered = match &rule.spec.condition {
            Condition::Health => true,
            _ => rule.covers(device.as_ref()),
        };
        covered.then_some(rule)
    }

    /// Restores an alert that was firing before a restart.
    pub fn restore_alert(&mut self, key: Key, alert: Active) {
        self.states.entry(key).or_default().alert = Some(alert);
    }

    /// Restores a `for` timer that was running before a restart.
    pub fn restore_pending(&mut self, key: Key, since_ms: i64, value: Option<f64>) {
        let s = self.states.entry(key).or_default();
        s.pending_since = Some(since_ms);
        s.value = value;
    }

    /// Starts the silence clock of a device (restart: from the later of its last message and
    /// now, so a restart after downtime does not fire for devices that are reconnecting).
    pub fn restore_seen(&mut self, device: DeviceId, at_ms: i64) {
        self.seen.insert(device, (at_ms, false));
    }

    /// Forgets devices that are no longer registered: no silence for them, and their alerts
    /// resolve (a removed device cannot recover by itself).
    pub fn retain_devices(&mut self, registered: &[String], now_ms: i64) -> Vec<Effect> {
        self.seen
            .retain(|d, _| registered.iter().any(|r| r == d.as_str()));
        let gone: Vec<Key> = self
            .states
            .keys()
            .filter(|k| {
                DeviceId::parse(&k.1).is_some()
                    && !matches!(
                        self.rule(k.0).map(|r| &r.spec.condition),
                        Some(Condition::Health)
                    )
                    && !registered.contains(&k.1)
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in gone {
            if let Some(state) = self.states.remove(&key) {
                if let Some(alert) = state.alert {
                    out.push(Effect::Resolve {
                        key,
                        alert,
                        at_ms: now_ms,
                    });
                } else if state.pending_since.is_some() {
                    out.push(Effect::ClearPending { key });
                }
            }
        }
        out
    }

    /// The store assigned `id` to the alert `Fire` opened.
    pub fn opened(&mut self, key: &Key, id: i64, notified: bool) {
        if let Some(a) = self.states.get_mut(key).and_then(|s| s.alert.as_mut()) {
            a.id = id;
            a.notified = notified;
        }
    }

    /// Storing a fired alert failed: forget it, so the next evaluation fires again.
    pub fn open_failed(&mut self, key: &Key) {
        if let Some(s) = self.states.get_mut(key) {
            s.alert = None;
        }
    }

    /// A notice for the alert of `key` was handed to delivery.
    pub fn noticed(&mut self, key: &Key, reminder: bool, at_ms: i64) {
        if let Some(a) = self.states.get_mut(key).and_then(|s| s.alert.as_mut()) {
            a.notified = true;
            a.last_notice_ms = at_ms;
            a.reminders += u32::from(reminder);
        }
    }

    /// Someone acknowledged alert `id`: no more reminders.
    pub fn acked(&mut self, id: i64) {
        for s in self.states.values_mut() {
            if let Some(a) = s.alert.as_mut().filter(|a| a.id == id) {
                a.acked = true;
            }
        }
    }

    /// Active alerts (for tests and the service's bookkeeping).
    pub fn active(&self) -> impl Iterator<Item = (&Key, &Active)> {
        self.states
            .iter()
            .filter_map(|(k, s)| s.alert.as_ref().map(|a| (k, a)))
    }

    /// Evaluates one device message.
    pub fn on_message(&mut self, m: &Message) -> Vec<Effect> {
        let mut out = Vec::new();
        let now = m.ts_ms;
        let announced_offline = matches!(m.body, Body::Status(crate::model::Status::Offline));
        if announced_offline {
            if let Some(s) = self.seen.get_mut(&m.device) {
                s.1 = true;
            }
            return out;
        }
        match self.seen.get_mut(&m.device) {
            Some(seen) => *seen = (now, false),
            None => {
                self.seen.insert(m.device.clone(), (now, false));
            }
        }
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let relevant = match (&rule.spec.condition, &m.body) {
                (Condition::Threshold { metric, .. }, Body::Telemetry(t)) => {
                    t.payload.contains_key(metric)
                }
                (Condition::DoorOpenFor, Body::Telemetry(t)) => t.locked.is_some(),
                (Condition::Silence { .. }, _) => true,
                (Condition::Incident { .. }, Body::Incident(_)) => true,
                (Condition::AccessDenied { .. }, Body::Access(a)) => !a.granted,
                _ => false,
            };
            if !relevant || !rule.enabled || !rule.covers(Some(&m.device)) {
                continue;
            }
            let rule = &self.rules[i];
            let key: Key = (rule.id, m.device.to_string());
            match (&rule.spec.condition, &m.body) {
                (
                    Condition::Threshold {
                        metric,
                        op,
                        value,
                        hysteresis,
                    },
                    Body::Telemetry(t),
                ) => {
                    let Some(v) = t.payload.get(metric).and_then(serde_json::Value::as_f64) else {
                        continue;
                    };
                    let (op, value, hysteresis) = (*op, *value, *hysteresis);
                    let firing = self.firing(&key);
                    let holds = match (op, firing) {
                        (Op::Above, false) => v >= value,
                        (Op::Above, true) => v >= value - hysteresis,
                        (Op::Below, false) => v <= value,
                        (Op::Below, true) => v <= value + hysteresis,
                    };
                    self.level(i, key, holds, Some(v), now, &mut out);
                }
                (Condition::DoorOpenFor, Body::Telemetry(t)) => {
                    if let Some(locked) = t.locked {
                        self.level(i, key, !locked, None, now, &mut out);
                    }
                }
                (Condition::Silence { .. }, _) => {
                    if let Some(alert) = self.states.get_mut(&key).and_then(|s| s.alert.take()) {
                        out.push(Effect::Resolve {
                            key,
                            alert,
                            at_ms: now,
                        });
                    }
                }
                (Condition::Incident { types }, Body::Incident(inc))
                    if types.contains(&inc.kind) =>
                {
                    let detail = inc
                        .payload
                        .get("message")
                        .and_then(serde_json::Value::as_str)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    let summary = format!("{}: incident {}{detail}", m.device, inc.kind);
                    self.event(key, Some(m.device.clone()), summary, None, now, &mut out);
                }
                (Condition::AccessDenied { count, window_secs }, Body::Access(a)) if !a.granted => {
                    let (count, window_ms) = (*count as usize, secs_ms(*window_secs));
                    let q = self.denials.entry(key.clone()).or_default();
                    q.push_back(now);
                    while q.front().is_some_and(|&t| t <= now - window_ms) || q.len() > count {
                        q.pop_front();
                    }
                    if q.len() >= count {
                        let summary = format!(
                            "{}: {count} denied card swipes within {} (last: {})",
                            m.device,
                            human_secs(*window_secs),
                            a.access_id
                        );
                        self.event(
                            key,
                            Some(m.device.clone()),
                            summary,
                            Some(count as f64),
                            now,
                            &mut out,
                        );
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// A health check changed: `Some(reason)` when it failed, `None` when it recovered.
    pub fn on_health(&mut self, check: &str, failed: Option<&str>, now: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        let rules: Vec<usize> = (0..self.rules.len())
            .filter(|&i| {
                self.rules[i].enabled && matches!(self.rules[i].spec.condition, Condition::Health)
            })
            .collect();
        for i in rules {
            let key: Key = (self.rules[i].id, check.to_owned());
            match failed {
                Some(reason) if !self.firing(&key) => {
                    let summary = format!("rzmon: the {check} check failed: {reason}");
                    self.start(key, None, summary, None, None, now, &mut out);
                }
                None => {
                    if let Some(alert) = self.states.get_mut(&key).and_then(|s| s.alert.take()) {
                        out.push(Effect::Resolve {
                            key,
                            alert,
                            at_ms: now,
                        });
                    }
                }
                Some(_) => {}
            }
        }
        out
    }

    /// The clock: `for` timers that ran out, silent devices, event-like alerts whose
    /// `resolve_after` passed, `keep_firing_for` that ended, reminders and late notices.
    pub fn on_tick(&mut self, now: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        self.silence(now, &mut out);
        let keys: Vec<Key> = self.states.keys().cloned().collect();
        for key in keys {
            let Some(rule) = self.live_rule(&key).cloned() else {
                continue;
            };
            let spec = &rule.spec;
            let state = self.states.get_mut(&key).expect("key from the map");
            if let (Some(since), None) = (state.pending_since, &state.alert)
                && now - since >= secs_ms(spec.for_secs)
            {
                let value = state.value;
                let idx = self
                    .rules
                    .iter()
                    .position(|r| r.id == rule.id)
                    .expect("live rule");
                self.fire_level(idx, key, value, now, &mut out);
                continue;
            }
            let Some(alert) = state.alert.clone() else {
                continue;
            };
            let resolve_at = if spec.condition.event_like() {
                Some(alert.last_event_ms + secs_ms(spec.resolve_after_secs))
            } else {
                state
                    .clear_since
                    .map(|t| t + secs_ms(spec.keep_firing_for_secs))
            };
            if resolve_at.is_some_and(|t| now >= t) {
                state.alert = None;
                state.clear_since = None;
                out.push(Effect::Resolve {
                    key,
                    alert,
                    at_ms: now,
                });
                continue;
            }
            if alert.acked || alert.id == 0 || rule.snoozed(now) {
                continue;
            }
            if !alert.notified {
                out.push(Effect::Notify {
                    key,
                    alert_id: alert.id,
                    reminder: false,
                    at_ms: now,
                });
                continue;
            }
            let due = if alert.reminders == 0 {
                (spec.reminder_first_secs > 0)
                    .then(|| alert.started_ms + secs_ms(spec.reminder_first_secs))
            } else {
                (spec.reminder_every_secs > 0)
                    .then(|| alert.last_notice_ms + secs_ms(spec.reminder_every_secs))
            };
            if due.is_some_and(|t| now >= t) {
                out.push(Effect::Notify {
                    key,
                    alert_id: alert.id,
                    reminder: true,
                    at_ms: now,
                });
            }
        }
        out
    }

    fn silence(&mut self, now: i64, out: &mut Vec<Effect>) {
        let silent: Vec<(usize, DeviceId, i64, bool)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled)
            .filter_map(|(i, r)| match r.spec.condition {
                Condition::Silence { after_secs } => Some((i, r, after_secs)),
                _ => None,
            })
            .flat_map(|(i, r, after)| {
                self.seen
                    .iter()
                    .filter(move |(d, (last, _))| r.covers(Some(d)) && now - last >= secs_ms(after))
                    .map(move |(d, (last, off))| (i, d.clone(), *last, *off))
            })
            .collect();
        for (i, device, last, offline) in silent {
            let key: Key = (self.rules[i].id, device.to_string());
            if self.firing(&key) {
                continue;
            }
            let how = if offline {
                " (it announced offline)"
            } else {
                ""
            };
            let summary = format!(
                "{device}: no message for {}{how}",
                human_secs(((now - last) / 1000) as u64)
            );
            self.start(key, Some(device), summary, None, None, now, out);
        }
    }

    fn firing(&self, key: &Key) -> bool {
        self.states.get(key).is_some_and(|s| s.alert.is_some())
    }

    /// A level condition (`threshold`, `door_open_for`) holds or not at `now`.
    fn level(
        &mut self,
        idx: usize,
        key: Key,
        holds: bool,
        value: Option<f64>,
        now: i64,
        out: &mut Vec<Effect>,
    ) {
        let for_ms = secs_ms(self.rules[idx].spec.for_secs);
        let keep = self.rules[idx].spec.keep_firing_for_secs;
        let state = self.states.entry(key.clone()).or_default();
        if let Some(alert) = &state.alert {
            if holds {
                state.clear_since = None;
            } else if keep == 0 {
                let alert = alert.clone();
                state.alert = None;
                out.push(Effect::Resolve {
                    key,
                    alert,
                    at_ms: now,
                });
            } else {
                state.clear_since.get_or_insert(now);
            }
            return;
        }
        if !holds {
            if state.pending_since.take().is_some() {
                out.push(Effect::ClearPending { key });
            }
            return;
        }
        state.value = value;
        let started = state.pending_since.is_none();
        let since = *state.pending_since.get_or_insert(now);
        if now - since >= for_ms {
            self.fire_level(idx, key, value, now, out);
        } else if started {
            out.push(Effect::Pending {
                key,
                since_ms: since,
                value,
            });
        }
    }

    fn fire_level(
        &mut self,
        idx: usize,
        key: Key,
        value: Option<f64>,
        now: i64,
        out: &mut Vec<Effect>,
    ) {
        let rule = &self.rules[idx];
        let device = DeviceId::parse(&key.1);
        let since = self
            .states
            .get(&key)
            .and_then(|s| s.pending_since)
            .unwrap_or(now);
        let (summary, threshold) = match &rule.spec.condition {
            Condition::Threshold {
                metric,
                op,
                value: t,
                ..
            } => {
                let (name, unit) = match metric.as_str() {
                    "tmp" => ("temperature", " °C"),
                    "lf" => ("humidity", " %"),
                    m => (m, ""),
                };
                let sign = if *op == Op::Above { "≥" } else { "≤" };
                let v = value.map_or("?".into(), |v| format!("{v:.1}"));
                (
                    format!("{}: {name} {v}{unit} {sign} {t}{unit}", key.1),
                    Some(*t),
                )
            }
            _ => (
                format!(
                    "{}: door unlocked for {}",
                    key.1,
                    human_secs(((now - since) / 1000) as u64)
                ),
                None,
            ),
        };
        if let Some(s) = self.states.get_mut(&key) {
            s.pending_since = None;
        }
        self.start(key, device, summary, value, threshold, now, out);
    }

    /// An event-like rule saw a matching event: fire, or keep the firing alert alive.
    fn event(
        &mut self,
        key: Key,
        device: Option<DeviceId>,
        summary: String,
        value: Option<f64>,
        now: i64,
        out: &mut Vec<Effect>,
    ) {
        if let Some(a) = self.states.get_mut(&key).and_then(|s| s.alert.as_mut()) {
            a.last_event_ms = now;
            if a.id != 0 {
                out.push(Effect::Touch {
                    key,
                    alert_id: a.id,
                    summary,
                    value,
                    at_ms: now,
                });
            }
            return;
        }
        self.start(key, device, summary, value, None, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        key: Key,
        device: Option<DeviceId>,
        summary: String,
        value: Option<f64>,
        threshold: Option<f64>,
        now: i64,
        out: &mut Vec<Effect>,
    ) {
        let state = self.states.entry(key.clone()).or_default();
        state.pending_since = None;
        state.clear_since = None;
        state.alert = Some(Active {
            id: 0,
            started_ms: now,
            last_event_ms: now,
            acked: false,
            notified: false,
            reminders: 0,
            last_notice_ms: now,
        });
        out.push(Effect::Fire {
            key,
            device,
            value,
            threshold,
            summary,
            at_ms: now,
        });
    }
}

pub fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// "90 s", "10 min", "2 h" for summaries.
pub fn human_secs(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}
