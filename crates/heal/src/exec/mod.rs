//! Executors: the actions themselves, each with typed parameters, a timeout
//! and a clear error. Nothing here builds a shell string: processes are
//! started from an argv vector (see [`process`]), Redis and Memcached are
//! spoken to in their own protocols.

pub mod container;
pub mod memcached;
pub mod process;
pub mod redis;
pub mod service;
pub mod signal;
pub mod webhook;

use std::time::Duration;

/// Why an action did not work. The distinction matters to the guard:
/// only [`ExecError::Failed`] and [`ExecError::Timeout`] are failures of the
/// target and feed its breaker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// What the action needs is not there on this host (no systemd, no
    /// Docker socket): not the target's fault.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The action was refused for safety (PID 1, the agent itself, a
    /// recycled PID, a deny-listed process): nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// The action ran against the target and failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The action did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl ExecError {
    /// Whether this counts as a failure of the target.
    pub fn is_target_failure(&self) -> bool {
        matches!(self, ExecError::Failed(_) | ExecError::Timeout(_))
    }
}

pub use aegis_core::action::Secret;
