//! The HTTP API: status, series, anomalies, incidents, healing records and
//! controls, `/metrics`, the OpenAPI description and the dashboard, served
//! by axum.
//!
//! The API only reads what others own: the status snapshot and the newest
//! values from `watch` channels the pipeline publishes, history through a
//! [`HistoryReader`], healing through a [`HealControl`]; it never reaches
//! into a collector. Errors are JSON `{"error": "..."}` with a fitting
//! status code; internal details are logged once and never leaked.
//!
//! - [`routes`]: one module per group of endpoints.
//! - [`auth`]: bearer-token extractors for reads and writes.
//! - [`serve`]: the listener loop with its limits (connections, header
//!   and request timeouts, body size checked before reading).
//! - [`dashboard`]: the page and its assets.
//! - [`metrics`]: the Prometheus text exposition.

mod auth;
mod dashboard;
mod error;
pub mod metrics;
mod params;
mod routes;
mod serve;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aegis_core::action::ActionSpec;
use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, Incident, IncidentQuery, Latest,
    SeriesDetail, SeriesSummary, Status,
};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

pub use error::ApiError;
pub use routes::ROUTES;
pub use serve::{serve, ConnectionStats, Limits};

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

/// Reads the checks from their owner.
pub trait ChecksReader: Send + Sync + 'static {
    /// Every check's status.
    fn list(&self) -> Vec<aegis_core::check::CheckStatus>;
    /// One check with its recent results and transitions; `None` when no
    /// check has that name.
    fn detail(
        &self,
        name: String,
    ) -> BoxFuture<'_, Result<Option<aegis_core::check::CheckDetail>, Unavailable>>;
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
    /// The checks, when any are configured.
    pub checks: Option<Arc<dyn ChecksReader>>,
}

/// Builds the metrics registry from the published snapshots and the
/// listener's connection figures.
pub fn registry(
    status: watch::Receiver<Status>,
    latest: watch::Receiver<Arc<Latest>>,
    connections: Arc<ConnectionStats>,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics::AgentCollector::new(
        status,
        latest,
        connections,
    )));
    registry
}

/// Request bodies larger than this are refused with 413 (before reading,
/// when `Content-Length` says so).
pub const MAX_BODY: usize = 64 * 1024;

/// The whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(routes::status::healthz))
        .route("/api/v1/openapi.json", get(routes::openapi::document))
        .route("/api/v1/status", get(routes::status::status))
        .route("/api/v1/series", get(routes::series::list))
        .route("/api/v1/series/{*name}", get(routes::series::one))
        .route("/api/v1/anomalies", get(routes::history::anomalies))
        .route(
            "/api/v1/actions",
            get(routes::history::actions).post(routes::heal::manual),
        )
        .route("/api/v1/incidents", get(routes::history::incidents))
        .route("/api/v1/checks", get(routes::checks::list))
        .route("/api/v1/checks/{name}", get(routes::checks::one))
        .route("/api/v1/breakers", get(routes::heal::breakers))
        .route("/api/v1/heal/pause", post(routes::heal::pause))
        .route("/api/v1/heal/resume", post(routes::heal::resume))
        .route("/metrics", get(routes::status::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn(serve::limit_body))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
