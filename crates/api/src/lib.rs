//! The HTTP API: status, series, `/metrics`, served by axum.
//!
//! The API only reads. It gets the status snapshot and the newest values from
//! `watch` channels the pipeline publishes, and asks the pipeline for series
//! history through a [`HistoryReader`]; it never reaches into a collector.
//! Errors are JSON `{"error": "..."}` with a fitting status code; internal
//! details are logged once and never leaked.

mod auth;
mod error;
pub mod metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aegis_core::action::ActionSpec;
use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, Incident, IncidentQuery, Latest,
    SeriesDetail, SeriesSummary, Status,
};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;

pub use error::ApiError;

/// A boxed, sendable future (the reader trait must be object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a history read could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable;

/// Reads series history from its owner.
pub trait HistoryReader: Send + Sync + 'static {
    /// Every series held.
    fn list(&self) -> BoxFuture<'_, Result<Vec<SeriesSummary>, Unavailable>>;
    /// One series, with its points at or after `since_ms`.
    fn get(
        &self,
        name: String,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Option<SeriesDetail>, Unavailable>>;
    /// Stored anomalies, newest first.
    fn anomalies(
        &self,
        query: AnomalyQuery,
    ) -> BoxFuture<'_, Result<Vec<AnomalyRecord>, Unavailable>>;
    /// Stored healing records, newest first.
    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, Result<Vec<ActionRecord>, Unavailable>>;
    /// Incidents, newest first.
    fn incidents(&self, query: IncidentQuery) -> BoxFuture<'_, Result<Vec<Incident>, Unavailable>>;
}

/// Controls the healing engine.
pub trait HealControl: Send + Sync + 'static {
    /// The engine's state (breakers, guard counters, success rates) as JSON.
    fn status(&self) -> BoxFuture<'_, Option<serde_json::Value>>;
    /// Pauses or resumes every action; false when the engine is gone.
    fn set_paused(&self, paused: bool) -> BoxFuture<'_, bool>;
    /// Runs an action through the guard; the incident id.
    fn manual(&self, target: String, spec: ActionSpec) -> BoxFuture<'_, Option<i64>>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The latest status snapshot.
    pub status: watch::Receiver<Status>,
    /// Series history.
    pub history: Arc<dyn HistoryReader>,
    /// Everything `/metrics` exports.
    pub registry: Arc<Registry>,
    /// Bearer token, when configured.
    pub token: Option<Arc<str>>,
    /// Whether reads need the token too.
    pub read_requires_token: bool,
    /// The healing engine, when it runs.
    pub heal: Option<Arc<dyn HealControl>>,
}

/// Builds the metrics registry from the published snapshots.
pub fn registry(status: watch::Receiver<Status>, latest: watch::Receiver<Arc<Latest>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics::AgentCollector::new(status, latest)));
    registry
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let reads = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/series", get(series_list))
        .route("/api/v1/series/{*name}", get(series_one))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/actions", get(actions_list))
        .route("/api/v1/incidents", get(incidents_list))
        .route("/api/v1/breakers", get(breakers))
        .route("/metrics", get(metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::reads,
        ));
    let writes = Router::new()
        .route("/api/v1/actions", axum::routing::post(actions_manual))
        .route("/api/v1/heal/pause", axum::routing::post(heal_pause))
        .route("/api/v1/heal/resume", axum::routing::post(heal_resume))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::writes,
        ));
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .merge(writes)
        .merge(reads)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// The dashboard: one page, every asset inline, nothing fetched from
/// elsewhere (a content security policy says so).
async fn dashboard() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        include_str!("../assets/dashboard.html"),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn status(State(state): State<AppState>) -> Json<Status> {
    Json(state.status.borrow().clone())
}

async fn series_list(State(state): State<AppState>) -> Result<Json<Vec<SeriesSummary>>, ApiError> {
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
struct SeriesQuery {
    /// Unix milliseconds, or a duration back from now (`5m`).
    since: Option<String>,
}

async fn series_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Json<SeriesDetail>, ApiError> {
    let Query(query) = query?;
    let since_ms = time_param(query.since.as_deref(), &state)?.unwrap_or(i64::MIN);
    match state.history.get(name.clone(), since_ms).await {
        Ok(Some(detail)) => Ok(Json(detail)),
        Ok(None) => Err(ApiError::NotFound(format!(
            "no series named {name:?}; GET /api/v1/series lists them"
        ))),
        Err(Unavailable) => Err(ApiError::Unavailable),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomaliesQuery {
    /// `open` or `closed`; both when absent.
    status: Option<String>,
    /// Only this series.
    series: Option<String>,
    /// Unix milliseconds, or a duration back from now (`24h`).
    since: Option<String>,
    /// Most rows (default 100, at most 1000).
    limit: Option<u32>,
}

async fn anomalies(
    State(state): State<AppState>,
    query: Result<Query<AnomaliesQuery>, QueryRejection>,
) -> Result<Json<Vec<AnomalyRecord>>, ApiError> {
    let Query(q) = query?;
    let open = status_param(q.status.as_deref())?;
    let since_ms = time_param(q.since.as_deref(), &state)?;
    let limit = limit_param(q.limit, 100, 1000)?;
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
struct ActionsQuery {
    target: Option<String>,
    incident: Option<i64>,
    since: Option<String>,
    limit: Option<u32>,
}

async fn actions_list(
    State(state): State<AppState>,
    query: Result<Query<ActionsQuery>, QueryRejection>,
) -> Result<Json<Vec<ActionRecord>>, ApiError> {
    let Query(q) = query?;
    let since_ms = time_param(q.since.as_deref(), &state)?;
    let limit = limit_param(q.limit, 100, 1000)?;
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
struct IncidentsQuery {
    since: Option<String>,
    until: Option<String>,
    target: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn incidents_list(
    State(state): State<AppState>,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let Query(q) = query?;
    let open = status_param(q.status.as_deref())?;
    if let Some(sev) = &q.severity {
        if !["info", "warning", "critical"].contains(&sev.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "`severity` must be info, warning or critical, got {sev:?}"
            )));
        }
    }
    let limit = limit_param(q.limit, 50, 500)?;
    let rows = state
        .history
        .incidents(IncidentQuery {
            since_ms: time_param(q.since.as_deref(), &state)?,
            until_ms: time_param(q.until.as_deref(), &state)?,
            target: q.target,
            min_severity: q.severity,
            open,
            limit,
            offset: q.offset.unwrap_or(0),
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(rows))
}

fn heal(state: &AppState) -> Result<&Arc<dyn HealControl>, ApiError> {
    state.heal.as_ref().ok_or_else(|| {
        ApiError::NotFound("healing is disabled in this agent's configuration".into())
    })
}

async fn breakers(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    heal(&state)?
        .status()
        .await
        .map(Json)
        .ok_or(ApiError::Unavailable)
}

/// Body of `POST /api/v1/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualBody {
    /// A name for the target (the breaker and the records use it).
    target: String,
    /// The action, tagged by `kind`.
    action: ActionSpec,
}

async fn actions_manual(
    State(state): State<AppState>,
    body: Result<Json<ManualBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body?;
    if body.target.trim().is_empty() || body.target.len() > 256 {
        return Err(ApiError::BadRequest(
            "`target` must be 1 to 256 characters".into(),
        ));
    }
    let incident = heal(&state)?
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

async fn heal_pause(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if heal(&state)?.set_paused(true).await {
        Ok(Json(serde_json::json!({"paused": true})))
    } else {
        Err(ApiError::Unavailable)
    }
}

async fn heal_resume(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if heal(&state)?.set_paused(false).await {
        Ok(Json(serde_json::json!({"paused": false})))
    } else {
        Err(ApiError::Unavailable)
    }
}

/// Parses an optional time parameter (Unix ms or a duration back from now).
fn time_param(value: Option<&str>, state: &AppState) -> Result<Option<i64>, ApiError> {
    let now_ms = state.status.borrow().updated_ms;
    value
        .map(|s| parse_since(s, now_ms))
        .transpose()
        .map_err(ApiError::BadRequest)
}

/// Parses `status=open|closed|all` into "only open" / "only closed" / both.
fn status_param(value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        None | Some("all") => Ok(None),
        Some("open") => Ok(Some(true)),
        Some("closed") => Ok(Some(false)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`status` must be open, closed or all, got {other:?}"
        ))),
    }
}

/// Checks a page size against its bound.
fn limit_param(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = value.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {max}, got {limit}"
        )));
    }
    Ok(limit)
}

/// `since` is Unix milliseconds or a duration back from `now_ms`.
fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_duration(s)
        .map(|d| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        .map_err(|_| format!("`since` must be Unix milliseconds or a duration like 5m, got {s:?}"))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("encoding metrics: {e}")).into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_accepts_ms_and_durations() {
        assert_eq!(parse_since("1700000000000", 0), Ok(1_700_000_000_000));
        assert_eq!(parse_since("5m", 1_000_000), Ok(700_000));
        assert!(parse_since("yesterday", 0).is_err());
    }
}
