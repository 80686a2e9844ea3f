//! `[agent]` and `[log]`: the process itself.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Interval, LogFilter, Problems};

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the agent keeps its state (the SQLite file, its lock). Unset:
    /// `/var/lib/aegis` for root when it exists, else the platform's state
    /// directory (`$XDG_STATE_HOME/aegis`, else `~/.local/state/aegis`).
    pub state_dir: Option<PathBuf>,
    /// How long shutdown may take before remaining tasks are abandoned.
    pub shutdown_timeout: Interval,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            shutdown_timeout: Interval::secs(5),
        }
    }
}

impl AgentConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.shutdown_timeout.0 >= Duration::from_millis(100)
                && self.shutdown_timeout.0 <= Duration::from_secs(300),
            "agent.shutdown_timeout",
            || {
                format!(
                    "must be between 100ms and 5m, got {}",
                    self.shutdown_timeout
                )
            },
        );
        if let Some(dir) = &self.state_dir {
            p.check(!dir.as_os_str().is_empty(), "agent.state_dir", || {
                "is empty; leave it out for the default".to_string()
            });
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text.
    Text,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `aegis=debug,info`...
    pub level: LogFilter,
    /// `auto`, `json` or `text`.
    pub format: LogFormat,
}
