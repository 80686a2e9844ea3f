//! Healing records in SQLite: every decision, skip, attempt and verdict.

use aegis_core::status::{ActionQuery, ActionRecord, RecordOutcome};
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
        r.outcome.as_str(),
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
        record_of,
    )?;
    rows.collect()
}

/// The attempts (records of an action that was let through the guard:
/// succeeded, failed or not attempted) since `since_ms`, oldest first: what
/// a new run of the agent hands its guard. Their number is bounded by the
/// host budget, however many skips and decisions surround them.
pub fn attempts_since(
    conn: &Connection,
    since_ms: i64,
) -> Result<Vec<ActionRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, incident, anomaly_id, target, action, outcome, reason, attempt, duration_ms, detail
         FROM actions
         WHERE at_ms >= ?1 AND attempt > 0 AND outcome IN ('succeeded', 'failed', 'not_attempted')
         ORDER BY at_ms, id",
    )?;
    let rows = stmt.query_map(params![since_ms], record_of)?;
    rows.collect()
}

/// A text column that must parse as `T`.
pub(crate) fn parsed<T: std::str::FromStr<Err = String>>(
    row: &rusqlite::Row<'_>,
    i: usize,
) -> Result<T, rusqlite::Error> {
    let text: String = row.get(i)?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

pub(crate) fn record_of(row: &rusqlite::Row<'_>) -> Result<ActionRecord, rusqlite::Error> {
    let detail: String = row.get(10)?;
    Ok(ActionRecord {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        incident: row.get(2)?,
        anomaly_id: row.get(3)?,
        target: row.get(4)?,
        action: row.get(5)?,
        outcome: parsed::<RecordOutcome>(row, 6)?,
        reason: row.get(7)?,
        attempt: row.get(8)?,
        duration_ms: row.get(9)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: i64, outcome: &str, attempt: u32) -> ActionRecord {
        let outcome: RecordOutcome = outcome.parse().expect("an outcome");
        ActionRecord {
            id: 0,
            at_ms,
            incident: 1,
            anomaly_id: None,
            target: "web".into(),
            action: if attempt > 0 {
                "container_restart"
            } else {
                "none"
            }
            .into(),
            outcome,
            reason: String::new(),
            attempt,
            duration_ms: None,
            detail: serde_json::json!({"guard_target": "web"}),
        }
    }

    #[test]
    fn attempts_since_keeps_only_attempts_oldest_first_whatever_surrounds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::open_connection(&dir.path().join("a.db")).expect("open");
        // An old attempt, then many decisions and skips around recent ones.
        insert(&conn, &record(1_000, "succeeded", 1)).expect("insert");
        for i in 0..20_000 {
            insert(&conn, &record(10_000 + i, "skipped", 0)).expect("insert");
        }
        insert(&conn, &record(50_000, "failed", 2)).expect("insert");
        insert(&conn, &record(20_000, "succeeded", 1)).expect("insert");
        insert(&conn, &record(60_000, "healed", 1)).expect("insert");
        insert(&conn, &record(70_000, "not_attempted", 1)).expect("insert");
        let got: Vec<(i64, String)> = attempts_since(&conn, 5_000)
            .expect("query")
            .into_iter()
            .map(|r| (r.at_ms, r.outcome.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (20_000, "succeeded".to_string()),
                (50_000, "failed".to_string()),
                (70_000, "not_attempted".to_string()),
            ]
        );
    }
}
