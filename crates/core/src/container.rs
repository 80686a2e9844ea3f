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
    /// Its restart policy, when it has one other than `no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// `HostConfig.NetworkMode` (`bridge`, `host`, `container:ID`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// When its current run started, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// Its health check, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckSpec>,
    /// When its health check last finished, Unix ms (the newest entry of
    /// the engine's health log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checked_ms: Option<i64>,
}

/// Why `address` cannot name a container engine, if it cannot: a Unix
/// socket (`unix:///path`) or TCP (`tcp://host:port`, `http://...`).
pub fn address_problem(address: &str) -> Option<String> {
    match address.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => None,
        Some(("tcp" | "http", rest)) if !rest.is_empty() => None,
        _ => Some(format!(
            "{address:?} is not an engine address (unix:///path/to.sock, tcp://host:port)"
        )),
    }
}

/// A container's own health check, as the engine holds it (`None`: the
/// engine's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthcheckSpec {
    /// Between two runs.
    pub interval_ms: Option<i64>,
    /// One run at most.
    pub timeout_ms: Option<i64>,
    /// Failures in this time after the start do not count.
    pub start_period_ms: Option<i64>,
    /// Failures in a row that make it unhealthy.
    pub retries: Option<i64>,
}

impl HealthcheckSpec {
    /// The interval, or the engines' default of 30 s.
    pub fn interval(&self) -> std::time::Duration {
        ms_or(self.interval_ms, 30_000)
    }

    /// The timeout, or the engines' default of 30 s.
    pub fn timeout(&self) -> std::time::Duration {
        ms_or(self.timeout_ms, 30_000)
    }

    /// The start period, or none.
    pub fn start_period(&self) -> std::time::Duration {
        ms_or(self.start_period_ms, 0)
    }
}

fn ms_or(ms: Option<i64>, default: u64) -> std::time::Duration {
    std::time::Duration::from_millis(
        ms.and_then(|m| u64::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(default),
    )
}

impl ContainerInfo {
    /// A container with only an id and a name, running, no labels.
    pub fn named(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            state: "running".into(),
            health: None,
            restart_count: 0,
            exit_code: None,
            image: String::new(),
            labels: HashMap::new(),
            restart_policy: None,
            network_mode: None,
            started_at_ms: None,
            healthcheck: None,
            health_checked_ms: None,
        }
    }

    /// Whether its main process runs.
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// Whether it is paused (never touched).
    pub fn paused(&self) -> bool {
        self.state == "paused"
    }

    /// Whether it is failing now: not running, or its health check fails.
    pub fn failing(&self) -> bool {
        !self.running() || self.health == Some(ContainerHealth::Unhealthy)
    }

    /// Why the engine itself will start it again after its process exits
    /// with `exit_code`, if it will: its restart policy says so. `fresh`:
    /// this was inspected just after the exit, so its state is the
    /// engine's own decision (Docker counts the restart and marks the
    /// container `restarting` before it reports the exit).
    pub fn engine_restarts(&self, exit_code: Option<i64>, fresh: bool) -> Option<String> {
        let p = self.restart_policy.as_ref()?;
        let policy = if p.name == "on-failure" && p.max_retries > 0 {
            format!("\"on-failure:{}\"", p.max_retries)
        } else {
            format!("{:?}", p.name)
        };
        if fresh && matches!(self.state.as_str(), "restarting" | "running") {
            return Some(format!(
                "its restart policy is {policy} and the engine is restarting it (restart {})",
                self.restart_count
            ));
        }
        match p.name.as_str() {
            "always" | "unless-stopped" => Some(format!("its restart policy is {policy}")),
            // Inspected after the exit and not restarting: the engine has
            // used up the retries (or the exit was a success).
            "on-failure" if fresh => None,
            "on-failure" if exit_code != Some(0) => {
                if p.max_retries <= 0 {
                    Some("its restart policy is \"on-failure\" with no retry limit".into())
                } else if self.restart_count < p.max_retries {
                    Some(format!(
                        "its restart policy is {policy} and it was restarted {} time(s)",
                        self.restart_count
                    ))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The container whose network it shares (`container:ID` network mode).
    pub fn network_container(&self) -> Option<&str> {
        self.network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .filter(|id| !id.is_empty())
    }
}

/// A restart policy (`HostConfig.RestartPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// For `on-failure`: at most this many restarts (0: no limit).
    pub max_retries: i64,
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
    /// What inspecting it right after the event said, when the source did
    /// (`die`: its restart policy decides who restarts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspected: Option<Box<ContainerInfo>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_policy(name: &str, max: i64, state: &str, count: i64) -> ContainerInfo {
        let mut c = ContainerInfo::named("id", "c");
        c.restart_policy = Some(RestartPolicy {
            name: name.into(),
            max_retries: max,
        });
        c.state = state.into();
        c.restart_count = count;
        c
    }

    #[test]
    fn the_engine_restarts_what_its_policy_says() {
        assert!(ContainerInfo::named("id", "c")
            .engine_restarts(Some(1), true)
            .is_none());
        // Docker marks the container restarting before it reports the exit.
        let r = with_policy("on-failure", 1, "restarting", 1).engine_restarts(Some(3), true);
        assert!(r.is_some_and(|r| r.contains("on-failure:1")));
        // Inspected after the exit and not restarting: retries used up.
        assert!(with_policy("on-failure", 1, "exited", 1)
            .engine_restarts(Some(3), true)
            .is_none());
        // Not inspected: the policy and the count decide.
        assert!(with_policy("on-failure", 2, "running", 1)
            .engine_restarts(Some(3), false)
            .is_some());
        assert!(with_policy("on-failure", 2, "running", 2)
            .engine_restarts(Some(3), false)
            .is_none());
        assert!(with_policy("on-failure", 0, "exited", 0)
            .engine_restarts(Some(0), false)
            .is_none());
        assert!(with_policy("always", 0, "exited", 0)
            .engine_restarts(Some(0), true)
            .is_some());
        assert!(with_policy("unless-stopped", 0, "exited", 0)
            .engine_restarts(None, false)
            .is_some());
    }
}
