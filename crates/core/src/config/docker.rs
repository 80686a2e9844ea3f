//! `[docker]`: the container engine (Docker, or Podman's compatible API).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Interval, Problems};

/// `[docker]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Watch containers (when an engine answers at `DOCKER_HOST` or the local socket).
    pub enabled: bool,
    /// How often containers are polled (events arrive at once regardless).
    pub interval: Interval,
    /// The label that opts a container in to healing (`LABEL=true`).
    pub autoheal_label: String,
    /// The engine's address (`unix:///run/podman/podman.sock`,
    /// `tcp://127.0.0.1:2375`); unset: `DOCKER_HOST`, else Docker's socket,
    /// then Podman's.
    pub host: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Interval::secs(5),
            autoheal_label: "aegis.autoheal".to_string(),
            host: None,
        }
    }
}

impl DockerConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        if let Some(why) = self
            .host
            .as_deref()
            .and_then(crate::container::address_problem)
        {
            p.check(false, "docker.host", || why);
        }
        p.check(
            self.interval.0 >= Duration::from_millis(100)
                && self.interval.0 <= Duration::from_secs(3600),
            "docker.interval",
            || format!("must be between 100ms and 1h, got {}", self.interval),
        );
        p.check(
            !self.autoheal_label.trim().is_empty()
                && !self.autoheal_label.contains(['=', ' ', ',']),
            "docker.autoheal_label",
            || {
                format!(
                    "{:?} is not a label key (no spaces, `=` or `,`)",
                    self.autoheal_label
                )
            },
        );
    }
}
