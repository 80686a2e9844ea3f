//! Incidents, assembled from the anomalies and actions tables: an anomaly
//! with the healing records it caused, or a healing started by a container
//! event with its records.

use aegis_core::status::{ActionRecord, AnomalyQuery, Incident, IncidentQuery};
use rusqlite::{params, Connection};

use crate::actions::{self, ActionQuery};
use crate::anomalies;

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// The status an incident's records end in.
fn status_of(open: bool, actions: &[ActionRecord]) -> String {
    let last_verdict = actions.iter().rev().find(|a| {
        ["healed", "not_healed", "gave_up", "skipped", "dry_run"].contains(&a.outcome.as_str())
    });
    match (open, last_verdict) {
        (_, Some(a)) if a.outcome == "healed" || a.outcome == "gave_up" => a.outcome.clone(),
        (true, _) => "open".into(),
        (false, Some(a)) => a.outcome.clone(),
        (false, None) => "closed".into(),
    }
}

/// Lists incidents, newest first, filtered and paged.
pub fn list(conn: &Connection, q: &IncidentQuery) -> Result<Vec<Incident>, rusqlite::Error> {
    // Enough rows to fill the page after filtering.
    let window = (q.offset + q.limit.max(1))
        .saturating_mul(4)
        .clamp(50, 5_000);
    let mut out = Vec::new();
    for a in anomalies::list(
        conn,
        &AnomalyQuery {
            open: q.open,
            series: None,
            since_ms: q.since_ms,
            limit: window,
        },
    )? {
        let mut acts = actions_of_anomaly(conn, a.id)?;
        acts.reverse();
        let target = a.target.clone().unwrap_or_else(|| a.series.clone());
        out.push(Incident {
            id: format!("anomaly-{}", a.id),
            started_ms: a.opened_ms,
            ended_ms: a.closed_ms,
            status: status_of(a.closed_ms.is_none(), &acts),
            summary: format!(
                "{} {} on {}: {}",
                a.severity, a.kind, a.series, a.explanation
            ),
            severity: a.severity.clone(),
            target,
            anomaly: Some(a),
            actions: acts,
        });
    }
    // Healing incidents no anomaly started (container events, manual).
    let mut stmt = conn.prepare_cached(
        "SELECT incident, MIN(at_ms), MAX(at_ms) FROM actions
         WHERE anomaly_id IS NULL AND incident > 0 AND (?1 IS NULL OR at_ms >= ?1)
         GROUP BY incident ORDER BY MIN(at_ms) DESC LIMIT ?2",
    )?;
    let groups: Vec<(i64, i64, i64)> = stmt
        .query_map(params![q.since_ms, i64::from(window)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (incident, started, last) in groups {
        let mut acts = actions::list(
            conn,
            &ActionQuery {
                incident: Some(incident),
                limit: 1_000,
                ..ActionQuery::default()
            },
        )?;
        acts.reverse();
        let target = acts.first().map(|a| a.target.clone()).unwrap_or_default();
        let why = acts.first().map(|a| a.reason.clone()).unwrap_or_default();
        let status = status_of(true, &acts);
        let ended = (status != "open").then_some(last);
        out.push(Incident {
            id: format!("healing-{incident}"),
            started_ms: started,
            ended_ms: ended,
            target: target.clone(),
            severity: "warning".into(),
            summary: format!("healing of {target}: {why}"),
            status,
            anomaly: None,
            actions: acts,
        });
    }
    out.retain(|i| {
        q.until_ms.is_none_or(|u| i.started_ms < u)
            && q.target.as_ref().is_none_or(|t| {
                i.target == *t || i.anomaly.as_ref().is_some_and(|a| a.series == *t)
            })
            && q.min_severity
                .as_ref()
                .is_none_or(|m| rank(&i.severity) >= rank(m))
            && q.open.is_none_or(|open| (i.status == "open") == open)
    });
    out.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.id.cmp(&a.id)));
    Ok(out
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit.max(1) as usize)
        .collect())
}

fn actions_of_anomaly(conn: &Connection, id: i64) -> Result<Vec<ActionRecord>, rusqlite::Error> {
    let mut all = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT incident FROM actions WHERE anomaly_id = ?1")?;
    let incidents: Vec<i64> = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for incident in incidents {
        all.extend(actions::list(
            conn,
            &ActionQuery {
                incident: Some(incident),
                limit: 1_000,
                ..ActionQuery::default()
            },
        )?);
    }
    all.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.id.cmp(&a.id)));
    Ok(all)
}
