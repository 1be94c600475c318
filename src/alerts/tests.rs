//! The state machine without I/O: messages and ticks in, effects out.

use super::engine::{Effect, Engine};
use super::rule::{Condition, Op, Rule, Spec};
use crate::model::{AccessEvent, Body, DeviceId, Incident, Message, Status, Telemetry};
use crate::notify::Severity;
use serde_json::{Map, json};

const S: i64 = 1000;

fn dev() -> DeviceId {
    DeviceId::parse("d1").unwrap()
}

fn rule(id: i64, condition: Condition, tweak: impl FnOnce(&mut Spec)) -> Rule {
    let mut spec = Spec::new(Severity::Warning, condition);
    tweak(&mut spec);
    Rule {
        id,
        name: format!("r{id}"),
        enabled: true,
        builtin: false,
        snoozed_until_ms: None,
        spec,
    }
}

pub(super) fn hot(for_secs: u64, keep: u64) -> Rule {
    let c = Condition::Threshold {
        metric: "tmp".into(),
        op: Op::Above,
        value: 30.0,
        hysteresis: 1.0,
    };
    rule(1, c, |s| {
        s.for_secs = for_secs;
        s.keep_firing_for_secs = keep;
    })
}

fn msg(ts_ms: i64, body: Body) -> Message {
    Message {
        device: dev(),
        ts_ms,
        body,
    }
}

fn tmp(ts_ms: i64, v: f64) -> Message {
    tmp_of("d1", ts_ms, v)
}

/// A reading of `tmp` only, from `device`.
pub(super) fn tmp_of(device: &str, ts_ms: i64, v: f64) -> Message {
    let payload: Map<_, _> = json!({"tmp": v}).as_object().unwrap().clone();
    Message {
        device: DeviceId::parse(device).unwrap(),
        ts_ms,
        body: Body::Telemetry(Telemetry {
            tmp: Some(v),
            lf: None,
            locked: None,
            seq: None,
            payload,
        }),
    }
}

pub(super) fn engine(rules: Vec<Rule>) -> Engine {
    let mut e = Engine::default();
    assert!(e.set_rules(rules, 0).is_empty());
    e
}

fn fires(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Fire { .. }))
        .count()
}

fn resolves(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Resolve { .. }))
        .count()
}

/// Fires after `for` on the tick, once; a dip below the threshold resets the timer.
#[test]
fn threshold_waits_for_its_duration() {
    let mut e = engine(vec![hot(10, 0)]);
    assert!(matches!(
        e.on_message(&tmp(0, 31.0))[..],
        [Effect::Pending { .. }]
    ));
    assert_eq!(fires(&e.on_tick(5 * S)), 0);
    assert!(matches!(
        e.on_message(&tmp(6 * S, 29.0))[..],
        [Effect::ClearPending { .. }]
    ));
    assert_eq!(fires(&e.on_tick(11 * S)), 0, "timer was reset");
    e.on_message(&tmp(12 * S, 31.0));
    assert_eq!(fires(&e.on_tick(21 * S)), 0);
    assert_eq!(fires(&e.on_tick(22 * S)), 1);
    assert_eq!(fires(&e.on_tick(23 * S)), 0, "exactly once");
}

/// Oscillating within the hysteresis: one firing, no resolve; below it: resolved.
#[test]
fn hysteresis_holds_an_alert() {
    let mut e = engine(vec![hot(0, 0)]);
    let mut all = Vec::new();
    for i in 0..10 {
        all.extend(e.on_message(&tmp(i * S, if i % 2 == 0 { 30.2 } else { 29.6 })));
    }
    assert_eq!((fires(&all), resolves(&all)), (1, 0));
    assert_eq!(resolves(&e.on_message(&tmp(11 * S, 28.9))), 1);
}

/// `keep_firing_for` delays the resolve; holding again cancels it.
#[test]
fn keep_firing_for_delays_resolve() {
    let mut e = engine(vec![hot(0, 10)]);
    assert_eq!(fires(&e.on_message(&tmp(0, 31.0))), 1);
    assert_eq!(resolves(&e.on_message(&tmp(S, 20.0))), 0);
    e.on_message(&tmp(5 * S, 31.0));
    assert_eq!(resolves(&e.on_tick(12 * S)), 0, "held again");
    e.on_message(&tmp(13 * S, 20.0));
    assert_eq!(resolves(&e.on_tick(22 * S)), 0);
    assert_eq!(resolves(&e.on_tick(23 * S)), 1);
}

/// Going offline does not resolve a temperature alert.
#[test]
fn offline_keeps_a_threshold_alert() {
    let mut e = engine(vec![hot(0, 0)]);
    e.on_message(&tmp(0, 40.0));
    assert!(
        e.on_message(&msg(S, Body::Status(Status::Offline)))
            .is_empty()
    );
    assert_eq!(resolves(&e.on_tick(3600 * S)), 0);
    assert_eq!(e.active().count(), 1);
}

/// Incidents fire at once, keep the alert alive, and resolve `resolve_after` after the last.
#[test]
fn incidents_resolve_by_themselves() {
    let c = Condition::Incident {
        types: vec!["unauthorized_access".into()],
    };
    let mut e = engine(vec![rule(2, c, |s| s.resolve_after_secs = 60)]);
    let inc = |ts, kind: &str| {
        msg(
            ts,
            Body::Incident(Incident {
                kind: kind.into(),
                payload: Map::new(),
            }),
        )
    };
    assert_eq!(fires(&e.on_message(&inc(0, "door_open"))), 0);
    assert_eq!(fires(&e.on_message(&inc(0, "unauthorized_access"))), 1);
    let key = (2, "d1".to_owned());
    e.opened(&key, 7, true);
    assert!(matches!(
        e.on_message(&inc(30 * S, "unauthorized_access"))[..],
        [Effect::Touch { alert_id: 7, .. }]
    ));
    assert_eq!(resolves(&e.on_tick(89 * S)), 0);
    assert_eq!(resolves(&e.on_tick(90 * S)), 1);
}

/// N denials inside the window fire; fewer, or spread wider, do not.
#[test]
fn denied_swipes_in_a_window() {
    let c = Condition::AccessDenied {
        count: 3,
        window_secs: 10,
    };
    let mut e = engine(vec![rule(3, c, |_| {})]);
    let deny = |ts| {
        msg(
            ts,
            Body::Access(AccessEvent {
                access_id: crate::model::AccessId::parse("04AA").expect("access id"),
                granted: false,
                payload: Map::new(),
            }),
        )
    };
    let mut n = 0;
    for ts in [0, 6 * S, 12 * S, 18 * S] {
        n += fires(&e.on_message(&deny(ts)));
    }
    assert_eq!(n, 0, "never three within 10 s");
    // 12 s, 18 s, 19 s: three within 10 s.
    assert_eq!(fires(&e.on_message(&deny(19 * S))), 1);
    assert_eq!(fires(&e.on_message(&deny(20 * S))), 0, "already firing");
}

/// Reminders come after the first interval, then every interval; not once acknowledged.
#[test]
fn reminders_stop_on_acknowledge() {
    let mut e = engine(vec![hot(0, 0)]);
    e.set_rules(
        vec![rule(1, hot(0, 0).spec.condition, |s| {
            s.reminder_first_secs = 60;
            s.reminder_every_secs = 120;
        })],
        0,
    );
    e.on_message(&tmp(0, 40.0));
    let key = (1, "d1".to_owned());
    e.opened(&key, 9, false);
    assert!(
        matches!(
            e.on_tick(S)[..],
            [Effect::Notify {
                reminder: false,
                ..
            }]
        ),
        "late firing notice"
    );
    e.noticed(&key, false, S);
    assert!(e.on_tick(59 * S).is_empty());
    assert!(matches!(
        e.on_tick(60 * S)[..],
        [Effect::Notify { reminder: true, .. }]
    ));
    e.noticed(&key, true, 60 * S);
    assert!(e.on_tick(179 * S).is_empty());
    assert!(matches!(
        e.on_tick(180 * S)[..],
        [Effect::Notify { reminder: true, .. }]
    ));
    e.acked(9);
    assert!(e.on_tick(10_000 * S).is_empty());
}

/// Disabling a rule resolves its alerts.
#[test]
fn disabling_a_rule_resolves_its_alerts() {
    let mut e = engine(vec![hot(0, 0)]);
    e.on_message(&tmp(0, 40.0));
    let mut off = hot(0, 0);
    off.enabled = false;
    assert_eq!(resolves(&e.set_rules(vec![off], S)), 1);
    assert_eq!(e.active().count(), 0);
}
