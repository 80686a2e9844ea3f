//! The API's one error type: a status code and a JSON body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed; the text says how.
    BadRequest(String),
    /// No token was given where one is needed.
    Unauthorized,
    /// A token was given and is wrong.
    Forbidden,
    /// Nothing at that address.
    NotFound(String),
    /// The path exists, not with this method.
    MethodNotAllowed(String),
    /// The request took too long.
    Timeout,
    /// The body is larger than allowed.
    TooLarge(String),
    /// The part of the agent that answers this is busy or stopped.
    Unavailable,
    /// A bug or an unexpected failure; logged, not shown.
    Internal(String),
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e {
            JsonRejection::BytesRejection(b) => ApiError::TooLarge(b.body_text()),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer ...)".to_string(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "the bearer token is not valid".to_string(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, m),
            ApiError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request took too long".to_string(),
            ),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent is busy or shutting down; try again".to_string(),
            ),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal API error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the agent's log".to_string(),
                )
            }
        };
        let mut response = (code, Json(json!({ "error": message }))).into_response();
        if code == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
