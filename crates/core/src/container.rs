//! Containers as the rest of the agent sees them: what one is, and what
//! happened to it. The Docker source emits these, healing reacts to them;
//! neither needs the other to know them.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A container's health-check verdict, when it has a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerHealth {
    /// The check has not passed yet.
    Starting,
    /// The check passes.
    Healthy,
    /// The check failed `retries` times in a row.
    Unhealthy,
}

impl ContainerHealth {
    /// Parses the engine's word for it (`none` and anything else: no verdict).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "starting" => Some(Self::Starting),
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for ContainerHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a container is, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// `running`, `exited`, `paused`, `restarting`...
    pub state: String,
    /// The health check's verdict; `None` without a health check.
    pub health: Option<ContainerHealth>,
    /// The engine's restart count.
    pub restart_count: i64,
    /// Exit code of the last run.
    pub exit_code: Option<i64>,
    /// Image.
    pub image: String,
    /// Labels.
    pub labels: HashMap<String, String>,
}

impl ContainerInfo {
    /// Whether its main process runs.
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// What happened to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Its health check changed verdict.
    Health {
        /// The new verdict.
        status: ContainerHealth,
    },
    /// Its main process exited.
    Die {
        /// Exit code, when the engine gave one.
        exit_code: Option<i64>,
    },
    /// The kernel killed it for memory.
    Oom,
    /// It started.
    Start,
    /// Someone (an operator, `docker stop`) stopped it.
    Stop,
    /// Someone sent it a signal (`docker stop`/`kill` do before `die`).
    Kill,
    /// It was removed.
    Destroy,
}

/// One container event, as the engine reported it (or as polling inferred it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// What happened.
    pub kind: EventKind,
    /// When the engine says it happened, Unix ns; for an event inferred by
    /// polling, when the poll asked.
    pub engine_time_ns: i64,
    /// Whether it came from the event stream (false: inferred by polling).
    pub from_stream: bool,
}
