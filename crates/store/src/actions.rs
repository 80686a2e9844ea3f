//! Healing records in SQLite: every decision, skip, attempt and verdict.

pub use aegis_core::status::ActionQuery;
use aegis_core::status::ActionRecord;
use rusqlite::{params, Connection};

/// Stores one record; returns its id.
pub fn insert(conn: &Connection, r: &ActionRecord) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO actions(at_ms, anomaly_id, target, action, outcome, reason, attempt, duration_ms, detail, incident)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        r.at_ms,
        r.anomaly_id,
        r.target,
        r.action,
        r.outcome,
        r.reason,
        r.attempt,
        r.duration_ms,
        r.detail.to_string(),
        r.incident
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The next free incident id.
pub fn next_incident(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row(
        "SELECT COALESCE(MAX(incident), 0) + 1 FROM actions",
        [],
        |r| r.get(0),
    )
}

/// Lists records, newest first.
pub fn list(conn: &Connection, q: &ActionQuery) -> Result<Vec<ActionRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, incident, anomaly_id, target, action, outcome, reason, attempt, duration_ms, detail
         FROM actions
         WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR incident = ?2) AND (?3 IS NULL OR at_ms >= ?3)
         ORDER BY at_ms DESC, id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![q.target, q.incident, q.since_ms, i64::from(q.limit.max(1))],
        |row| {
            let detail: String = row.get(10)?;
            Ok(ActionRecord {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                incident: row.get(2)?,
                anomaly_id: row.get(3)?,
                target: row.get(4)?,
                action: row.get(5)?,
                outcome: row.get(6)?,
                reason: row.get(7)?,
                attempt: row.get(8)?,
                duration_ms: row.get(9)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        },
    )?;
    rows.collect()
}
