//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! A migration is never edited once released: a change is a new entry.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: series names, per-minute rollups, anomalies and actions.
    "
    CREATE TABLE series (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE rollup_1m (
        series_id INTEGER NOT NULL REFERENCES series(id),
        minute_ms INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        resets    INTEGER NOT NULL,
        sum       REAL NOT NULL,
        min       REAL,
        max       REAL,
        last      REAL,
        PRIMARY KEY (series_id, minute_ms)
    ) WITHOUT ROWID;
    CREATE INDEX rollup_1m_minute ON rollup_1m(minute_ms);
    CREATE TABLE anomalies (
        id          INTEGER PRIMARY KEY,
        opened_ms   INTEGER NOT NULL,
        closed_ms   INTEGER,
        series      TEXT NOT NULL,
        target      TEXT,
        kind        TEXT NOT NULL,
        severity    TEXT NOT NULL,
        score       REAL NOT NULL,
        explanation TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX anomalies_opened ON anomalies(opened_ms);
    CREATE TABLE actions (
        id          INTEGER PRIMARY KEY,
        at_ms       INTEGER NOT NULL,
        anomaly_id  INTEGER REFERENCES anomalies(id),
        target      TEXT NOT NULL,
        action      TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        attempt     INTEGER NOT NULL DEFAULT 1,
        duration_ms REAL,
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX actions_at ON actions(at_ms);
    ",
    // 2: actions belong to incidents (one problem, its decision, attempts
    // and verdicts).
    "
    ALTER TABLE actions ADD COLUMN incident INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX actions_incident ON actions(incident);
    ",
    // 3: checks' transitions, each with the result that caused it; an
    // anomaly can join a healing incident as its evidence.
    "
    CREATE TABLE check_transitions (
        id         INTEGER PRIMARY KEY,
        at_ms      INTEGER NOT NULL,
        check_name TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state   TEXT NOT NULL,
        reason     TEXT NOT NULL DEFAULT '',
        result     TEXT
    );
    CREATE INDEX check_transitions_name ON check_transitions(check_name, at_ms);
    CREATE INDEX check_transitions_at ON check_transitions(at_ms);
    ALTER TABLE anomalies ADD COLUMN incident INTEGER;
    ",
    // 4: anomalies that open together on related series are one incident:
    // each names its cause (the incident's first anomaly, or itself).
    "
    ALTER TABLE anomalies ADD COLUMN cause INTEGER;
    CREATE INDEX anomalies_cause ON anomalies(cause);
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`]. Refuses a database written by
/// a newer build rather than guess at its schema.
pub fn migrate(conn: &mut Connection) -> Result<u32, crate::StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(crate::StoreError::TooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(SCHEMA_VERSION)
}
