//! The healing controls: `/api/v1/breakers`, manual actions and pause.

use std::sync::Arc;

use aegis_core::action::ActionSpec;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::auth::{ReadAccess, WriteAccess};
use crate::{ApiError, AppState, HealControl};

fn engine(state: &AppState) -> Result<&Arc<dyn HealControl>, ApiError> {
    state.heal.as_ref().ok_or_else(|| {
        ApiError::NotFound("healing is disabled in this agent's configuration".into())
    })
}

pub(crate) async fn breakers(
    _: ReadAccess,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    engine(&state)?
        .status()
        .await
        .map(Json)
        .ok_or(ApiError::Unavailable)
}

/// Body of `POST /api/v1/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManualBody {
    /// A name for the target (the breaker and the records use it).
    target: String,
    /// The action, tagged by `kind`.
    action: ActionSpec,
}

pub(crate) async fn manual(
    _: WriteAccess,
    State(state): State<AppState>,
    body: Result<Json<ManualBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body?;
    if body.target.trim().is_empty() || body.target.len() > 256 {
        return Err(ApiError::BadRequest(
            "`target` must be 1 to 256 characters".into(),
        ));
    }
    if let Some((field, why)) = body.action.problems(true).into_iter().next() {
        return Err(ApiError::BadRequest(format!("`action.{field}`: {why}")));
    }
    let incident = engine(&state)?
        .manual(body.target, body.action)
        .await
        .ok_or(ApiError::Unavailable)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "incident": incident,
            "records": format!("/api/v1/actions?incident={incident}"),
        })),
    ))
}

pub(crate) async fn pause(
    _: WriteAccess,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(&state, true).await
}

pub(crate) async fn resume(
    _: WriteAccess,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(&state, false).await
}

async fn set_paused(state: &AppState, paused: bool) -> Result<Json<serde_json::Value>, ApiError> {
    if engine(state)?.set_paused(paused).await {
        Ok(Json(serde_json::json!({ "paused": paused })))
    } else {
        Err(ApiError::Unavailable)
    }
}
