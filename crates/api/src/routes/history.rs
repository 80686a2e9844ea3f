//! `/api/v1/anomalies`, `/api/v1/incidents` and `GET /api/v1/actions`:
//! what the store remembers.

use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, Incident, IncidentQuery,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use crate::auth::ReadAccess;
use crate::{params, ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnomaliesQuery {
    /// `open` or `closed`; both when absent.
    status: Option<String>,
    /// Only this series.
    series: Option<String>,
    /// Unix milliseconds, or a duration back from now (`24h`).
    since: Option<String>,
    /// Most rows (default 100, at most 1000).
    limit: Option<u32>,
}

pub(crate) async fn anomalies(
    _: ReadAccess,
    State(state): State<AppState>,
    query: Result<Query<AnomaliesQuery>, QueryRejection>,
) -> Result<Json<Vec<AnomalyRecord>>, ApiError> {
    let Query(q) = query?;
    let open = params::status(q.status.as_deref())?;
    let since_ms = params::time(q.since.as_deref(), "since", &state)?;
    let limit = params::limit(q.limit, 100, 1000)?;
    let rows = state
        .history
        .anomalies(AnomalyQuery {
            open,
            series: q.series,
            since_ms,
            limit,
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionsQuery {
    target: Option<String>,
    incident: Option<i64>,
    since: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn actions(
    _: ReadAccess,
    State(state): State<AppState>,
    query: Result<Query<ActionsQuery>, QueryRejection>,
) -> Result<Json<Vec<ActionRecord>>, ApiError> {
    let Query(q) = query?;
    let since_ms = params::time(q.since.as_deref(), "since", &state)?;
    let limit = params::limit(q.limit, 100, 1000)?;
    let rows = state
        .history
        .actions(ActionQuery {
            target: q.target,
            incident: q.incident,
            since_ms,
            limit,
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentsQuery {
    since: Option<String>,
    until: Option<String>,
    target: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub(crate) async fn incidents(
    _: ReadAccess,
    State(state): State<AppState>,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let Query(q) = query?;
    let open = params::status(q.status.as_deref())?;
    let min_severity = q
        .severity
        .as_deref()
        .map(str::parse::<aegis_core::Severity>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`severity`: {e}")))?;
    let limit = params::limit(q.limit, 50, 500)?;
    let rows = state
        .history
        .incidents(IncidentQuery {
            since_ms: params::time(q.since.as_deref(), "since", &state)?,
            until_ms: params::time(q.until.as_deref(), "until", &state)?,
            target: q.target,
            min_severity,
            open,
            limit,
            offset: q.offset.unwrap_or(0),
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(rows))
}
