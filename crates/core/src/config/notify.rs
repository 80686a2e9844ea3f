//! `[notify]`: where anomalies and healing outcomes are announced.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Interval, Problems};
use crate::action::Webhook;
use crate::severity::Severity;

/// `[notify]`: anomalies posted as Alertmanager alerts (firing, then
/// resolved) to webhooks, Alertmanager's `/api/v2/alerts` among them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Receivers, e.g. `[{ url = "http://127.0.0.1:9093/api/v2/alerts" }]`.
    pub webhooks: Vec<Webhook>,
    /// Only what is at least this severe (`info`, `warning`, `critical`).
    pub min_severity: Severity,
    /// Alerts arriving within this window are sent together.
    pub group_wait: Interval,
    /// At most this many posts per receiver per minute; the rest wait and
    /// are merged into the next post.
    pub max_posts_per_minute: u32,
    /// Delivery attempts per post (with exponential backoff).
    pub attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            min_severity: Severity::Warning,
            group_wait: Interval::secs(5),
            max_posts_per_minute: 6,
            attempts: 5,
        }
    }
}

impl NotifyConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.max_posts_per_minute >= 1,
            "notify.max_posts_per_minute",
            || "must be at least 1".to_string(),
        );
        p.range("notify.attempts", self.attempts, 1, 20);
        p.check(
            self.group_wait.0 <= Duration::from_secs(600),
            "notify.group_wait",
            || format!("must be at most 10m, got {}", self.group_wait),
        );
    }
}
