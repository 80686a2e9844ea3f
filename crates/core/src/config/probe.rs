//! `[probe]` and `[[probes]]`: HTTP endpoints probed on their own schedule.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HttpMethod, HttpUrl, Interval, JsonPointer, Name, Problems, StatusRange};

/// `[probe]`: settings shared by every endpoint probe.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// Probes in flight at once, over all endpoints.
    pub max_concurrent: u32,
    /// Default interval between two probes of one endpoint.
    pub interval: Interval,
    /// Default timeout of one probe.
    pub timeout: Interval,
    /// Consecutive failures that open an endpoint's breaker (it then rests
    /// and is probed again after a cooldown that grows).
    pub breaker_failures: u32,
    /// First breaker cooldown.
    pub breaker_cooldown: Interval,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            interval: Interval::secs(10),
            timeout: Interval::secs(5),
            breaker_failures: 3,
            breaker_cooldown: Interval::secs(30),
        }
    }
}

/// `[[probes]]`: one HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// A short name (the series' instance).
    pub name: Name,
    /// `http://` or `https://` URL.
    pub url: HttpUrl,
    /// `GET`, `HEAD` or `POST`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Accepted status codes: `"200-399"` or `"204"`.
    #[serde(default)]
    pub expect_status: StatusRange,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// A JSON pointer (`/status`) into the body...
    #[serde(default)]
    pub json_pointer: Option<JsonPointer>,
    /// ...whose value, as text, must equal this.
    #[serde(default)]
    pub json_equals: Option<String>,
    /// Overrides `probe.timeout`.
    #[serde(default)]
    pub timeout: Option<Interval>,
    /// Overrides `probe.interval`.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Verify TLS certificates (on unless turned off here).
    #[serde(default = "default_true")]
    pub tls_verify: bool,
}

pub(super) fn default_true() -> bool {
    true
}

impl ProbeSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.range("probe.max_concurrent", self.max_concurrent, 1, 1024);
        p.check(self.breaker_failures >= 1, "probe.breaker_failures", || {
            "must be at least 1".to_string()
        });
        p.check(
            self.breaker_cooldown.0 >= Duration::from_millis(100),
            "probe.breaker_cooldown",
            || format!("must be at least 100ms, got {}", self.breaker_cooldown),
        );
    }
}

/// Checks every `[[probes]]` entry against the shared settings.
pub(super) fn validate_probes(probes: &[ProbeConfig], settings: &ProbeSettings, p: &mut Problems) {
    let mut names = HashSet::new();
    for (i, pr) in probes.iter().enumerate() {
        let field = format!("probes.{i}");
        p.check(
            names.insert(pr.name.as_str()),
            format!("{field}.name"),
            || format!("the name {:?} is used twice", pr.name.as_str()),
        );
        p.check(
            pr.json_pointer.is_some() == pr.json_equals.is_some(),
            format!(
                "{field}.{}",
                if pr.json_pointer.is_some() {
                    "json_pointer"
                } else {
                    "json_equals"
                }
            ),
            || "`json_pointer` and `json_equals` go together".to_string(),
        );
        let timeout = pr.timeout.unwrap_or(settings.timeout).0;
        p.check(
            timeout >= Duration::from_millis(10) && timeout <= Duration::from_secs(300),
            format!("{field}.timeout"),
            || format!("must be between 10ms and 5m, got {}", Interval(timeout)),
        );
        let interval = pr.interval.unwrap_or(settings.interval).0;
        p.check(
            interval >= Duration::from_millis(100),
            format!("{field}.interval"),
            || format!("must be at least 100ms, got {}", Interval(interval)),
        );
    }
}
