//! `/healthz`, `/api/v1/status`, `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use aegis_core::status::Status;

use crate::auth::ReadAccess;
use crate::{ApiError, AppState};

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

pub(crate) async fn status(_: ReadAccess, State(state): State<AppState>) -> Json<Status> {
    Json(state.status.borrow().clone())
}

pub(crate) async fn metrics(_: ReadAccess, State(state): State<AppState>) -> Response {
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
