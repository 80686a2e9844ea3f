//! Alerts to a webhook, in Alertmanager's format (`POST /api/v2/alerts`
//! takes it as it is; chat tools take it through Alertmanager).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use aegis_core::action::Webhook;

use super::ExecError;

/// One alert, as Alertmanager's API v2 defines it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Identifying labels: `alertname`, `severity`, `instance`, `target`...
    pub labels: BTreeMap<String, String>,
    /// Human text: `summary`, `description`.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end; set when the alert is resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Where to look.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// RFC 3339 text of a Unix-ms time.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Posts `alerts` (a JSON array) to the webhook within `timeout`.
pub async fn post(
    hook: &Webhook,
    alerts: &[Alert],
    timeout: Duration,
) -> Result<String, ExecError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| ExecError::Unavailable(format!("HTTP client: {e}")))?;
    let mut req = client.post(&hook.url).json(alerts);
    if let Some(token) = &hook.token {
        req = req.bearer_auth(&token.0);
    }
    let response = req.send().await.map_err(|e| {
        if e.is_timeout() {
            ExecError::Timeout(timeout)
        } else {
            ExecError::Failed(format!("posting to {}: {e}", hook.url))
        }
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(format!(
            "{} alert(s) posted to {} ({status})",
            alerts.len(),
            hook.url
        ))
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(ExecError::Failed(format!(
            "{} answered {status}: {}",
            hook.url,
            body.chars().take(200).collect::<String>()
        )))
    }
}
