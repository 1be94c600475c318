//! Retention of the alert and notification tables: resolved alerts older than the cutoff go
//! with their notice records and finished outbox entries; an open delivery keeps its notice
//! (and so its alert), a firing alert stays, and newer rows stay.

use super::*;
use crate::store::Kept;

const OLD: i64 = 1_000_000;
const CUTOFF: i64 = 2_000_000;
const NEW: i64 = 3_000_000;

/// One alert (resolved at `resolved`, or firing) with one notice record and one outbox
/// notice whose single delivery is in `state`.
fn alert(c: &rusqlite::Connection, id: i64, resolved: Option<i64>, state: &str) {
    c.execute(
        "INSERT INTO alerts (id, rule_id, rule_name, subject, severity, summary, started_ms,
                             last_event_ms, resolved_ms)
         VALUES (?1, ?1, 'r', ?1, 'warning', 's', ?2, ?2, ?3)",
        (id, OLD, resolved),
    )
    .unwrap();
    c.execute(
        "INSERT INTO alert_notices (alert_id, kind, at_ms) VALUES (?1, 'firing', ?2)",
        (id, OLD),
    )
    .unwrap();
    c.execute(
        "INSERT INTO notices (id, alert_id, kind, severity, at_ms, body) VALUES (?1, ?1, 'firing', 'warning', ?2, '{}')",
        (id, resolved.unwrap_or(OLD)),
    )
    .unwrap();
    c.execute(
        "INSERT INTO deliveries (notice_id, channel_id, state, created_ms, next_ms, updated_ms)
         VALUES (?1, 1, ?2, ?3, ?3, ?3)",
        (id, state, OLD),
    )
    .unwrap();
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .with_conn(|c| Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn old_resolved_alerts_and_finished_notices_are_pruned_open_ones_stay() {
    let (_dir, store) = temp_store();
    store
        .with_conn(|c| {
            c.execute(
                "INSERT INTO channels (id, name, kind, settings, policy, created_ms)
                 VALUES (1, 'c', 'ntfy', '{}', '{}', 0)",
                [],
            )?;
            alert(c, 1, Some(OLD), "sent"); // old, finished: goes
            alert(c, 2, Some(OLD), "failed"); // old, finished: goes
            alert(c, 3, Some(OLD), "pending"); // old but still being delivered: stays
            alert(c, 4, None, "sent"); // still firing: the alert stays
            alert(c, 5, Some(NEW), "sent"); // newer than the cutoff: stays
            c.execute(
                "INSERT INTO revoked_tokens (jti, exp_s) VALUES ('old', 1), ('new', 9999999)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    while store.prune_batch(Kept::Incidents, CUTOFF, 1).unwrap() > 0 {}
    while store.prune_batch(Kept::Audit, CUTOFF, 1).unwrap() > 0 {}

    let ids = |sql: &str| -> Vec<i64> {
        store
            .with_conn(|c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .unwrap()
    };
    assert_eq!(ids("SELECT id FROM alerts ORDER BY id"), [3, 4, 5]);
    assert_eq!(
        ids("SELECT alert_id FROM alert_notices ORDER BY alert_id"),
        [4, 5]
    );
    // Notice 4 (of a firing alert) is old and finished: the outbox entry goes, the alert stays.
    assert_eq!(ids("SELECT id FROM notices ORDER BY id"), [3, 5]);
    assert_eq!(
        ids("SELECT notice_id FROM deliveries ORDER BY notice_id"),
        [3, 5]
    );
    assert_eq!(count(&store, "revoked_tokens"), 1);
}
