//! Anomalies in SQLite: written by the pipeline when an alert opens and
//! closes, read by the API.

use aegis_core::status::{AnomalyQuery, AnomalyRecord};
use rusqlite::{params, Connection};

/// Inserts a newly opened anomaly.
pub fn insert(conn: &Connection, a: &AnomalyRecord) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO anomalies(id, opened_ms, closed_ms, series, target, kind, severity, score, explanation, detail, cause)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        a.id,
        a.opened_ms,
        a.closed_ms,
        a.series,
        a.target,
        a.kind,
        a.severity.as_str(),
        a.score,
        a.explanation,
        a.detail.to_string(),
        a.cause
    ])?;
    Ok(())
}

/// Marks an anomaly closed and records its final details.
pub fn close(
    conn: &Connection,
    id: i64,
    closed_ms: i64,
    detail: &serde_json::Value,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("UPDATE anomalies SET closed_ms = ?2, detail = ?3 WHERE id = ?1")?
        .execute(params![id, closed_ms, detail.to_string()])?;
    Ok(())
}

/// Makes anomaly `id` part of the incident `cause` began (its evidence).
pub fn set_cause(conn: &Connection, id: i64, cause: i64) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("UPDATE anomalies SET cause = ?2 WHERE id = ?1")?
        .execute(params![id, cause])?;
    Ok(())
}

/// Makes an anomaly the evidence of healing incident `incident`.
pub fn join(conn: &Connection, id: i64, incident: i64) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("UPDATE anomalies SET incident = ?2 WHERE id = ?1")?
        .execute(params![id, incident])?;
    Ok(())
}

/// The anomalies that joined healing incident `incident`, with the
/// evidence of those that caused an incident of their own, oldest first.
pub fn evidence_of(
    conn: &Connection,
    incident: i64,
) -> Result<Vec<AnomalyRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, opened_ms, closed_ms, series, target, kind, severity, score, explanation, detail, cause
         FROM anomalies
         WHERE incident = ?1
            OR cause IN (SELECT id FROM anomalies WHERE incident = ?1 AND cause = id)
         ORDER BY opened_ms, id",
    )?;
    let rows = stmt.query_map([incident], anomaly_of)?;
    rows.collect()
}

/// Closes anomalies a previous run left open (it stopped while they were
/// open); returns how many.
pub fn close_stale(conn: &Connection, now_ms: i64) -> Result<usize, rusqlite::Error> {
    conn.execute(
        "UPDATE anomalies SET closed_ms = ?1,
            detail = json_set(detail, '$.closed_by', 'agent restart')
         WHERE closed_ms IS NULL",
        [now_ms],
    )
}

/// The next free anomaly id.
pub fn next_id(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM anomalies", [], |r| {
        r.get(0)
    })
}

/// The evidence of the incident anomaly `cause` began, oldest first.
pub fn evidence_of_cause(
    conn: &Connection,
    cause: i64,
) -> Result<Vec<AnomalyRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, opened_ms, closed_ms, series, target, kind, severity, score, explanation, detail, cause
         FROM anomalies WHERE cause = ?1 AND id != ?1 AND incident IS NULL
         ORDER BY opened_ms, id",
    )?;
    let rows = stmt.query_map([cause], anomaly_of)?;
    rows.collect()
}

/// Lists anomalies, newest first.
pub fn list(conn: &Connection, q: &AnomalyQuery) -> Result<Vec<AnomalyRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, opened_ms, closed_ms, series, target, kind, severity, score, explanation, detail, cause
         FROM anomalies
         WHERE (?1 IS NULL OR (?1 = 1 AND closed_ms IS NULL) OR (?1 = 0 AND closed_ms IS NOT NULL))
           AND (?2 IS NULL OR series = ?2)
           AND (?3 IS NULL OR opened_ms >= ?3)
         ORDER BY opened_ms DESC, id DESC
         LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![q.open, q.series, q.since_ms, i64::from(q.limit.max(1))],
        anomaly_of,
    )?;
    rows.collect()
}

fn anomaly_of(row: &rusqlite::Row<'_>) -> Result<AnomalyRecord, rusqlite::Error> {
    let detail: String = row.get(9)?;
    let severity: String = row.get(6)?;
    Ok(AnomalyRecord {
        id: row.get(0)?,
        opened_ms: row.get(1)?,
        closed_ms: row.get(2)?,
        series: row.get(3)?,
        target: row.get(4)?,
        kind: row.get(5)?,
        severity: severity
            .parse()
            .map_err(|e: aegis_core::severity::UnknownSeverity| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        score: row.get(7)?,
        explanation: row.get(8)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        cause: row.get(10)?,
    })
}
