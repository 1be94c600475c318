//! The database schema as numbered migrations, and the code that applies the pending ones, each
//! in its own transaction, recording it in `schema_migrations` so re-opening is idempotent.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `n` is `MIGRATIONS[n - 1]`. Append only: never edit a released entry.
///
/// No foreign key ties an event row to `devices`: removing a device keeps its history.
/// `(device, seq)` indexes are partial (only rows that carry a `seq`), they serve the writer's
/// duplicate check and cost nothing for devices that send no `seq`.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, events, device status.
    "CREATE TABLE users (
        username      TEXT PRIMARY KEY NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE devices (
        id          TEXT PRIMARY KEY NOT NULL,
        secret_hash TEXT NOT NULL,
        enabled     INTEGER NOT NULL DEFAULT 1,
        created_ms  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE telemetry (
        id      INTEGER PRIMARY KEY,
        device  TEXT NOT NULL,
        ts_ms   INTEGER NOT NULL,
        seq     INTEGER,
        tmp     REAL,
        lf      REAL,
        locked  INTEGER,
        payload TEXT NOT NULL
    ) STRICT;
    CREATE INDEX telemetry_ts ON telemetry (ts_ms);
    CREATE INDEX telemetry_device_ts ON telemetry (device, ts_ms);
    CREATE INDEX telemetry_device_seq ON telemetry (device, seq) WHERE seq IS NOT NULL;
    CREATE TABLE incidents (
        id      INTEGER PRIMARY KEY,
        device  TEXT NOT NULL,
        ts_ms   INTEGER NOT NULL,
        seq     INTEGER,
        type    TEXT NOT NULL,
        payload TEXT NOT NULL
    ) STRICT;
    CREATE INDEX incidents_ts ON incidents (ts_ms);
    CREATE INDEX incidents_device_ts ON incidents (device, ts_ms);
    CREATE INDEX incidents_type_ts ON incidents (type, ts_ms);
    CREATE INDEX incidents_device_seq ON incidents (device, seq) WHERE seq IS NOT NULL;
    CREATE TABLE access_events (
        id        INTEGER PRIMARY KEY,
        device    TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        seq       INTEGER,
        access_id TEXT NOT NULL,
        granted   INTEGER NOT NULL,
        payload   TEXT NOT NULL
    ) STRICT;
    CREATE INDEX access_events_ts ON access_events (ts_ms);
    CREATE INDEX access_events_device_ts ON access_events (device, ts_ms);
    CREATE INDEX access_events_device_seq ON access_events (device, seq) WHERE seq IS NOT NULL;
    CREATE TABLE device_status (
        device       TEXT PRIMARY KEY NOT NULL,
        online       INTEGER NOT NULL,
        since_ms     INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    ) STRICT;",
    // 2: talking back to devices: access ids and list versions, reported configs and their
    // history, and the audit log of administrative actions.
    "CREATE TABLE access_ids (
        access_id TEXT PRIMARY KEY NOT NULL,
        name      TEXT NOT NULL,
        added_by  TEXT NOT NULL,
        added_ms  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO counters (name, value) VALUES ('access_version', 0);
    CREATE TABLE device_sync (
        device         TEXT PRIMARY KEY NOT NULL,
        access_version INTEGER NOT NULL,
        synced_ms      INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE device_config (
        device      TEXT PRIMARY KEY NOT NULL,
        config      TEXT NOT NULL,
        reported_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE config_history (
        id        INTEGER PRIMARY KEY,
        device    TEXT NOT NULL,
        ts_ms     INTEGER NOT NULL,
        username  TEXT NOT NULL,
        old       TEXT,
        new       TEXT NOT NULL,
        confirmed INTEGER NOT NULL,
        outcome   TEXT NOT NULL
    ) STRICT;
    CREATE INDEX config_history_device_ts ON config_history (device, ts_ms);
    CREATE TABLE audit (
        id       INTEGER PRIMARY KEY,
        ts_ms    INTEGER NOT NULL,
        username TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        detail   TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_ts ON audit (ts_ms);",
    // 3: alert rules (the rule itself is JSON owned by `alerts`), one row per firing alert,
    // the pending timers that must survive a restart, and what was handed to delivery.
    "CREATE TABLE alert_rules (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        enabled     INTEGER NOT NULL,
        spec        TEXT NOT NULL,
        builtin     INTEGER NOT NULL DEFAULT 0,
        snoozed_until_ms INTEGER,
        updated_ms  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE alerts (
        id          INTEGER PRIMARY KEY,
        rule_id     INTEGER NOT NULL,
        rule_name   TEXT NOT NULL,
        subject     TEXT NOT NULL,
        device      TEXT,
        severity    TEXT NOT NULL,
        summary     TEXT NOT NULL,
        value       REAL,
        threshold   REAL,
        started_ms  INTEGER NOT NULL,
        last_event_ms INTEGER NOT NULL,
        resolved_ms INTEGER,
        acked_ms    INTEGER,
        acked_by    TEXT
    ) STRICT;
    CREATE INDEX alerts_started ON alerts (started_ms);
    CREATE UNIQUE INDEX alerts_active ON alerts (rule_id, subject) WHERE resolved_ms IS NULL;
    CREATE TABLE alert_pending (
        rule_id  INTEGER NOT NULL,
        subject  TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        value    REAL,
        PRIMARY KEY (rule_id, subject)
    ) STRICT;
    CREATE TABLE alert_notices (
        id       INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        at_ms    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX alert_notices_alert ON alert_notices (alert_id);",
    // 4: sessions that end: a user id that is never reused (AUTOINCREMENT never hands out a
    // number twice, even after deletes), a token generation per user (bumped by a password
    // change and "sign out everywhere"), and the tokens ended one by one by logout.
    "CREATE TABLE user_ids (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL
    );
    ALTER TABLE users ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;
    INSERT INTO user_ids (username) SELECT username FROM users ORDER BY created_ms;
    UPDATE users SET uid = (SELECT id FROM user_ids WHERE user_ids.username = users.username);
    CREATE TABLE revoked_tokens (
        jti    TEXT PRIMARY KEY NOT NULL,
        exp_s  INTEGER NOT NULL
    ) STRICT;",
    // 5 (notify): notification channels (settings JSON holds the channel's secrets: this file
    // is 0600 in a 0700 directory), the outbox of submitted notices, and one delivery row per
    // notice and channel whose `state` is the delivery record (pending, held, suppressed are
    // open; sent, failed, muted, skipped are final). `message` groups the rows sent together.
    "CREATE TABLE channels (
        id             INTEGER PRIMARY KEY,
        name           TEXT NOT NULL,
        kind           TEXT NOT NULL,
        settings       TEXT NOT NULL,
        policy         TEXT NOT NULL,
        enabled        INTEGER NOT NULL DEFAULT 1,
        env_key        TEXT UNIQUE,
        muted_until_ms INTEGER,
        last_ms        INTEGER,
        last_state     TEXT,
        last_detail    TEXT,
        created_ms     INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE notices (
        id       INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        severity TEXT NOT NULL,
        at_ms    INTEGER NOT NULL,
        body     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX notices_alert ON notices (alert_id);
    CREATE TABLE deliveries (
        id         INTEGER PRIMARY KEY,
        notice_id  INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
        channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
        state      TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        next_ms    INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        message    INTEGER,
        detail     TEXT
    ) STRICT;
    CREATE INDEX deliveries_open ON deliveries (channel_id, id)
        WHERE state IN ('pending', 'held', 'suppressed');
    CREATE INDEX deliveries_notice ON deliveries (notice_id);
    CREATE INDEX deliveries_channel_updated ON deliveries (channel_id, updated_ms);",
    // 6: integrations: the upstream bridge's persisted cursor (last forwarded id per table), and
    // the device password in Mosquitto's PBKDF2-SHA512 form for `rzmon broker-config`
    // (set when a password is created or re-keyed; NULL for devices added before).
    "CREATE TABLE bridge_cursor (
        source  TEXT PRIMARY KEY NOT NULL,
        last_id INTEGER NOT NULL
    ) STRICT;
    ALTER TABLE devices ADD COLUMN broker_hash TEXT;",
    // 7 (roles and API tokens): a role per user (existing users stay admins), and long-lived
    // API tokens, stored as the SHA-256 of the token (a random 256-bit value, so a fast hash
    // is enough), tied to the user id (never reused) and carrying at most that user's role.
    "ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
        CHECK (role IN ('admin', 'viewer'));
    CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        uid          INTEGER NOT NULL,
        name         TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
        created_ms   INTEGER NOT NULL,
        last_used_ms INTEGER
    ) STRICT;
    CREATE INDEX api_tokens_uid ON api_tokens (uid);",
    // 8: compact telemetry (≤ 80 bytes a row with its indexes) and per-device rollups.
    // The row id carries the time, `(ts_ms << 10) + n`, so the table itself is the time index;
    // the device is a small integer key; `extra` keeps only what the typed columns cannot
    // reproduce exactly (NULL when nothing), so every field a device sent comes back.
    // Rollups: one row per (span, device, bucket) with count, n/min/sum/max of tmp and lf and
    // the locked share; maintained by the writer in each commit (see `rollups`).
    "CREATE TABLE device_keys (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    ) STRICT;
    INSERT INTO device_keys (name) SELECT DISTINCT device FROM telemetry ORDER BY device;
    CREATE TABLE telemetry_compact (
        id         INTEGER PRIMARY KEY,
        device_key INTEGER NOT NULL,
        seq        INTEGER,
        tmp        REAL,
        lf         REAL,
        locked     INTEGER,
        extra      TEXT
    ) STRICT;
    WITH a AS (SELECT id, ts_ms, device, seq, tmp, lf, locked, payload AS p FROM telemetry),
    b AS (SELECT id, ts_ms, device, seq, tmp, lf, locked,
            CASE WHEN json_type(p, '$.tmp') = 'real' AND json_extract(p, '$.tmp') = tmp
                 THEN json_remove(p, '$.tmp') ELSE p END AS p FROM a),
    c AS (SELECT id, ts_ms, device, seq, tmp, lf, locked,
            CASE WHEN json_type(p, '$.lf') = 'real' AND json_extract(p, '$.lf') = lf
                 THEN json_remove(p, '$.lf') ELSE p END AS p FROM b),
    d AS (SELECT id, ts_ms, device, seq, tmp, lf, locked,
            CASE WHEN json_type(p, '$.locked') IN ('true', 'false')
                      AND json_extract(p, '$.locked') = locked
                 THEN json_remove(p, '$.locked') ELSE p END AS p FROM c),
    e AS (SELECT id, ts_ms, device, seq, tmp, lf, locked,
            CASE WHEN json_type(p, '$.seq') = 'integer' AND json_extract(p, '$.seq') = seq
                 THEN json_remove(p, '$.seq') ELSE p END AS p FROM d)
    INSERT INTO telemetry_compact (id, device_key, seq, tmp, lf, locked, extra)
    SELECT (e.ts_ms << 10) + row_number() OVER (PARTITION BY e.ts_ms ORDER BY e.id) - 1,
           k.id, e.seq, e.tmp, e.lf, e.locked, CASE WHEN e.p = '{}' THEN NULL ELSE e.p END
    FROM e JOIN device_keys k ON k.name = e.device ORDER BY e.ts_ms, e.id;
    DROP TABLE telemetry;
    ALTER TABLE telemetry_compact RENAME TO telemetry;
    CREATE INDEX telemetry_device ON telemetry (device_key);
    CREATE INDEX telemetry_device_seq ON telemetry (device_key, seq) WHERE seq IS NOT NULL;
    CREATE TABLE rollups (
        span_ms    INTEGER NOT NULL,
        device_key INTEGER NOT NULL,
        bucket_ms  INTEGER NOT NULL,
        count      INTEGER NOT NULL,
        tmp_n      INTEGER NOT NULL,
        tmp_min    REAL,
        tmp_sum    REAL,
        tmp_max    REAL,
        lf_n       INTEGER NOT NULL,
        lf_min     REAL,
        lf_sum     REAL,
        lf_max     REAL,
        locked_n   INTEGER NOT NULL,
        locked_on  INTEGER NOT NULL,
        PRIMARY KEY (span_ms, device_key, bucket_ms)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rollups_span_bucket ON rollups (span_ms, bucket_ms);
    INSERT INTO rollups
    SELECT s.span, device_key, ((id >> 10) / s.span) * s.span, count(*),
           count(tmp), min(tmp), sum(tmp), max(tmp), count(lf), min(lf), sum(lf), max(lf),
           count(locked), coalesce(sum(locked), 0)
    FROM telemetry, (SELECT 300000 AS span UNION ALL SELECT 3600000) AS s
    GROUP BY s.span, device_key, ((id >> 10) / s.span);",
    // 9: the log of alert state changes (firing, acknowledged, resolved), one row per change,
    // written in the transaction of the change, so the upstream bridge forwards each in order
    // by its id (the `alerts` row itself is updated in place). `device` is '' for system alerts.
    "CREATE TABLE alert_events (
        id       INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        ts_ms    INTEGER NOT NULL,
        device   TEXT NOT NULL,
        state    TEXT NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
        payload  TEXT NOT NULL
    ) STRICT;",
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The highest migration recorded in the database (0 for a new file).
pub fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Applies every migration the database has not seen yet. Each runs in an IMMEDIATE
/// transaction that re-checks the version, so two processes opening the file at once (server
/// and CLI) cannot apply one twice.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, latest_version())
}

/// `migrate`, stopping after migration `last` (tests build old files with it).
pub(super) fn migrate_to(conn: &mut Connection, last: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_ms INTEGER NOT NULL
        ) STRICT;",
    )?;
    let seen = current_version(conn)?;
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .filter(|(v, _)| *v > seen && *v <= last)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if current_version(&tx)? < version {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                (version, crate::model::now_ms()),
            )?;
            tracing::info!(version, "applied database migration");
        }
        tx.commit()?;
    }
    if seen > latest_version() {
        tracing::warn!(
            found = seen,
            known = latest_version(),
            "database schema is newer than this binary"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles migration keeps every user who existed before as an admin, and the schema
    /// refuses a role it does not know.
    #[test]
    fn users_from_before_roles_are_admins() {
        let roles = MIGRATIONS
            .iter()
            .position(|m| m.contains("ADD COLUMN role"))
            .expect("the roles migration");
        let mut conn = Connection::open_in_memory().expect("db");
        for sql in &MIGRATIONS[..roles] {
            conn.execute_batch(sql).expect("older migration");
        }
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL) STRICT;
             INSERT INTO users (username, password_hash, created_ms, uid) VALUES ('old', 'h', 1, 1);",
        )
        .expect("an older database with a user");
        for v in 1..=roles {
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [v as i64])
                .expect("version");
        }
        migrate(&mut conn).expect("migrate");
        let role: String = conn
            .query_row("SELECT role FROM users WHERE username = 'old'", [], |r| {
                r.get(0)
            })
            .expect("role");
        assert_eq!(role, "admin");
        assert!(
            conn.execute("UPDATE users SET role = 'root'", []).is_err(),
            "unknown roles are refused"
        );
    }
}
