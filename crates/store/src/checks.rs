//! Checks' transitions in SQLite, each with the result that caused it, so
//! a check's history survives restarts.

use aegis_core::check::{CheckState, TransitionRecord};
use rusqlite::{params, Connection};

fn state(s: &str) -> CheckState {
    match s {
        "passing" => CheckState::Passing,
        "failing" => CheckState::Failing,
        "blocked" => CheckState::Blocked,
        _ => CheckState::Unknown,
    }
}

/// Stores one transition.
pub fn insert(conn: &Connection, t: &TransitionRecord) -> Result<(), rusqlite::Error> {
    let result = t
        .result
        .as_ref()
        .and_then(|r| serde_json::to_string(r).ok());
    conn.prepare_cached(
        "INSERT INTO check_transitions(at_ms, check_name, from_state, to_state, reason, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        t.at_ms,
        t.check,
        t.from.as_str(),
        t.to.as_str(),
        t.reason,
        result
    ])?;
    Ok(())
}

/// The newest transitions of `check`, newest first.
pub fn list(
    conn: &Connection,
    check: &str,
    limit: u32,
) -> Result<Vec<TransitionRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, check_name, from_state, to_state, reason, result FROM check_transitions
         WHERE check_name = ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![check, i64::from(limit.max(1))], |row| {
        let from: String = row.get(2)?;
        let to: String = row.get(3)?;
        let result: Option<String> = row.get(5)?;
        Ok(TransitionRecord {
            at_ms: row.get(0)?,
            check: row.get(1)?,
            from: state(&from),
            to: state(&to),
            reason: row.get(4)?,
            result: result.and_then(|r| serde_json::from_str(&r).ok()),
        })
    })?;
    rows.collect()
}
