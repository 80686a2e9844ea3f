//! The dashboard: one page, its script and its style sheet, all served by
//! the agent (nothing fetched from elsewhere), under a content security
//! policy that allows only this origin's files: no inline script or style.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The policy every dashboard file is served with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn page() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "dashboard.js" => file("text/javascript; charset=utf-8", SCRIPT),
        "dashboard.css" => file("text/css; charset=utf-8", STYLE),
        _ => ApiError::NotFound(format!("no asset {name:?}")).into_response(),
    }
}
