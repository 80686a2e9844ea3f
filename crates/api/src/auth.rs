//! Bearer tokens, checked by extractors: a handler that changes state takes
//! [`WriteAccess`], a read takes [`ReadAccess`]. Because they are
//! extractors, they run only once a route and its method matched, so a
//! wrong method is a 405, never a 401. The scheme is matched without
//! regard to case (RFC 7235); tokens are compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::{ApiError, AppState};

/// Proof that the request may change state: the configured token was given.
#[derive(Debug)]
pub(crate) struct WriteAccess;

/// Proof that the request may read (always, unless reads need the token).
#[derive(Debug)]
pub(crate) struct ReadAccess;

impl FromRequestParts<AppState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(state.token.as_deref(), parts).map(|()| WriteAccess)
    }
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.read_requires_token {
            check(state.token.as_deref(), parts)?;
        }
        Ok(ReadAccess)
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, whatever the
/// scheme's case.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the request's bearer token against `expected`. With no token
/// configured, nothing that needs one is allowed.
fn check(expected: Option<&str>, parts: &Parts) -> Result<(), ApiError> {
    let Some(given) = bearer(parts) else {
        return Err(ApiError::Unauthorized);
    };
    match expected {
        Some(expected) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_scheme_is_matched_whatever_its_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            let req = axum::http::Request::builder()
                .header(AUTHORIZATION, header)
                .body(())
                .expect("request");
            let (parts, ()) = req.into_parts();
            assert_eq!(bearer(&parts), Some("abc"), "{header}");
        }
        let req = axum::http::Request::builder()
            .header(AUTHORIZATION, "Basic abc")
            .body(())
            .expect("request");
        assert_eq!(bearer(&req.into_parts().0), None);
    }
}
