//! Query parameters shared by several endpoints, each checked with a
//! message that says what is wrong.

use crate::{ApiError, AppState};

/// Parses an optional time parameter (Unix ms or a duration back from now).
pub(crate) fn time(
    value: Option<&str>,
    name: &str,
    state: &AppState,
) -> Result<Option<i64>, ApiError> {
    let now_ms = state.status.borrow().updated_ms;
    value
        .map(|s| parse_since(s, now_ms).map_err(|e| ApiError::BadRequest(format!("`{name}` {e}"))))
        .transpose()
}

/// Parses `status=open|closed|all` into "only open" / "only closed" / both.
pub(crate) fn status(value: Option<&str>) -> Result<Option<bool>, ApiError> {
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
pub(crate) fn limit(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = value.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {max}, got {limit}"
        )));
    }
    Ok(limit)
}

/// A time is Unix milliseconds (not negative) or a duration back from
/// `now_ms`.
pub(crate) fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        if ms < 0 {
            return Err(format!(
                "must be Unix milliseconds (0 or more) or a duration like 5m, got {s:?}"
            ));
        }
        return Ok(ms);
    }
    humantime::parse_duration(s)
        .map(|d| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        .map_err(|_| format!("must be Unix milliseconds or a duration like 5m, got {s:?}"))
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

    /// Regression (hardening, item 11): `since=-1` silently meant "everything".
    #[test]
    fn a_negative_time_is_refused() {
        assert!(parse_since("-1", 0).is_err());
    }
}
