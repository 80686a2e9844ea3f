//! The endpoints, one module per group. Each handler takes its access
//! extractor first, so a wrong method or path is answered before any
//! token is asked for.

pub(crate) mod checks;
pub(crate) mod heal;
pub(crate) mod history;
pub(crate) mod openapi;
pub(crate) mod series;
pub(crate) mod status;

use axum::http::Method;

use crate::ApiError;

/// Every path this API serves, with its methods (the OpenAPI description
/// is checked against it).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/healthz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/api/v1/openapi.json", &["GET"]),
    ("/api/v1/status", &["GET"]),
    ("/api/v1/series", &["GET"]),
    ("/api/v1/series/{name}", &["GET"]),
    ("/api/v1/anomalies", &["GET"]),
    ("/api/v1/incidents", &["GET"]),
    ("/api/v1/checks", &["GET"]),
    ("/api/v1/checks/{name}", &["GET"]),
    ("/api/v1/actions", &["GET", "POST"]),
    ("/api/v1/breakers", &["GET"]),
    ("/api/v1/heal/pause", &["POST"]),
    ("/api/v1/heal/resume", &["POST"]),
];

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub(crate) async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed here"))
}
