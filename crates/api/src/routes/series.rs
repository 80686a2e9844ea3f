//! `/api/v1/series` and `/api/v1/series/{name}`.

use aegis_core::status::{SeriesDetail, SeriesSummary};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use crate::auth::ReadAccess;
use crate::{params, ApiError, AppState, Unavailable};

pub(crate) async fn list(
    _: ReadAccess,
    State(state): State<AppState>,
) -> Result<Json<Vec<SeriesSummary>>, ApiError> {
    let mut list = state
        .history
        .list()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesQuery {
    /// Unix milliseconds, or a duration back from now (`5m`).
    since: Option<String>,
}

pub(crate) async fn one(
    _: ReadAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Json<SeriesDetail>, ApiError> {
    let Path(name) = name?;
    let Query(query) = query?;
    let since_ms = params::time(query.since.as_deref(), "since", &state)?.unwrap_or(i64::MIN);
    match state.history.get(name.clone(), since_ms).await {
        Ok(Some(detail)) => Ok(Json(detail)),
        Ok(None) => Err(ApiError::NotFound(format!(
            "no series named {name:?}; GET /api/v1/series lists them"
        ))),
        Err(Unavailable) => Err(ApiError::Unavailable),
    }
}
