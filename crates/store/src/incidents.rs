//! Incidents, assembled from the anomalies and actions tables: an anomaly
//! with the anomalies it caused (opened with it on related series: its
//! evidence) and the healing records it caused, or a healing started by a
//! check, a container event or a person, with its records and the
//! anomalies that joined it.

use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, Incident, IncidentQuery, IncidentStatus, RecordOutcome,
};
use aegis_core::Severity;
use rusqlite::{params, Connection};

use crate::actions;
use crate::anomalies;

/// Where an incident stands, from its records (oldest first). `open`: its
/// anomaly is still open, or (healing incidents) nothing has ended it yet.
fn status_of(open: bool, actions: &[ActionRecord]) -> IncidentStatus {
    // A skip that names another incident ("already handling it") is news
    // about a duplicate event, not about this incident's end.
    let last = actions.iter().rev().find(|a| {
        a.detail.get("duplicate_of").is_none()
            && matches!(
                a.outcome,
                RecordOutcome::Healed
                    | RecordOutcome::NotHealed
                    | RecordOutcome::GaveUp
                    | RecordOutcome::Skipped
                    | RecordOutcome::DryRun
            )
    });
    let ends_by_guard = |a: &ActionRecord| {
        a.outcome == RecordOutcome::Skipped && matches!(a.reason.as_str(), "paused" | "maintenance")
    };
    match last {
        Some(a) if a.outcome == RecordOutcome::Healed => IncidentStatus::Healed,
        Some(a) if a.outcome == RecordOutcome::GaveUp => IncidentStatus::GaveUp,
        Some(a) if a.outcome == RecordOutcome::DryRun => IncidentStatus::DryRun,
        Some(a) if ends_by_guard(a) => IncidentStatus::Skipped,
        _ if open => IncidentStatus::Open,
        Some(a) if a.outcome == RecordOutcome::NotHealed => IncidentStatus::NotHealed,
        _ => IncidentStatus::Closed,
    }
}

/// Lists incidents, newest first, filtered and paged.
pub fn list(conn: &Connection, q: &IncidentQuery) -> Result<Vec<Incident>, rusqlite::Error> {
    // Enough rows to fill the page after filtering.
    let window = q
        .offset
        .saturating_add(q.limit.max(1))
        .saturating_mul(4)
        .clamp(50, 5_000);
    let mut out = Vec::new();
    // Anomalies that joined a healing incident are its evidence, shown
    // there, not incidents of their own.
    let joined: std::collections::HashSet<i64> = conn
        .prepare_cached("SELECT id FROM anomalies WHERE incident IS NOT NULL AND (?1 IS NULL OR opened_ms >= ?1)")?
        .query_map(params![q.since_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for a in anomalies::list(
        conn,
        &AnomalyQuery {
            open: q.open,
            series: None,
            since_ms: q.since_ms,
            limit: window,
        },
    )? {
        // Evidence of another anomaly's incident is shown there.
        if joined.contains(&a.id) || a.cause.is_some_and(|c| c != a.id) {
            continue;
        }
        let mut acts = actions_of_anomaly(conn, a.id)?;
        acts.reverse();
        let evidence = if a.cause == Some(a.id) {
            anomalies::evidence_of_cause(conn, a.id)?
        } else {
            Vec::new()
        };
        let target = a.target.clone().unwrap_or_else(|| a.series.clone());
        // Open while any of it is; ended with the last of it.
        let open = a.closed_ms.is_none() || evidence.iter().any(|e| e.closed_ms.is_none());
        let ended_ms = (!open).then(|| {
            evidence
                .iter()
                .filter_map(|e| e.closed_ms)
                .chain(a.closed_ms)
                .max()
                .unwrap_or(a.opened_ms)
        });
        let severity = evidence
            .iter()
            .map(|e| e.severity)
            .fold(a.severity, Severity::max);
        let mut summary = format!(
            "{} {} on {}: {}",
            a.severity, a.kind, a.series, a.explanation
        );
        if !evidence.is_empty() {
            summary.push_str(&format!(" (and {} related anomalies)", evidence.len()));
        }
        out.push(Incident {
            id: format!("anomaly-{}", a.id),
            started_ms: a.opened_ms,
            ended_ms,
            status: status_of(open, &acts),
            summary,
            severity,
            target,
            anomaly: Some(a),
            evidence,
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
        let ended = (status != IncidentStatus::Open).then_some(last);
        out.push(Incident {
            id: format!("healing-{incident}"),
            started_ms: started,
            ended_ms: ended,
            target: target.clone(),
            severity: Severity::Warning,
            summary: format!("healing of {target}: {why}"),
            status,
            anomaly: None,
            evidence: anomalies::evidence_of(conn, incident)?,
            actions: acts,
        });
    }
    out.retain(|i| {
        q.until_ms.is_none_or(|u| i.started_ms < u)
            && q.target.as_ref().is_none_or(|t| {
                i.target == *t || i.anomaly.as_ref().is_some_and(|a| a.series == *t)
            })
            && q.min_severity.is_none_or(|m| i.severity >= m)
            && q.open
                .is_none_or(|open| (i.status == IncidentStatus::Open) == open)
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
