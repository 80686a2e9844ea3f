//! `/api/v1/checks` and `/api/v1/checks/{name}`.

use aegis_core::check::{CheckDetail, CheckStatus};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::auth::ReadAccess;
use crate::{ApiError, AppState, Unavailable};

pub(crate) async fn list(_: ReadAccess, State(state): State<AppState>) -> Json<Vec<CheckStatus>> {
    Json(state.checks.as_ref().map(|c| c.list()).unwrap_or_default())
}

pub(crate) async fn one(
    _: ReadAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<CheckDetail>, ApiError> {
    let Path(name) = name?;
    let Some(checks) = &state.checks else {
        return Err(ApiError::NotFound(format!(
            "no check named {name:?}: no checks are configured"
        )));
    };
    match checks.detail(name.clone()).await {
        Ok(Some(d)) => Ok(Json(d)),
        Ok(None) => Err(ApiError::NotFound(format!(
            "no check named {name:?}; GET /api/v1/checks lists them"
        ))),
        Err(Unavailable) => Err(ApiError::Unavailable),
    }
}
