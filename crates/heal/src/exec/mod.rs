//! Executors: the actions themselves, each with typed parameters, a timeout
//! and a clear error. Nothing here builds a shell string: processes are
//! started from an argv vector (see [`process`]), Redis and Memcached are
//! spoken to in their own protocols. [`dispatch`] maps an action to its
//! executor; alerts to people are not executed here but handed to the
//! notifier.

pub mod container;
pub mod dispatch;
pub mod memcached;
pub mod process;
pub mod redis;
pub mod service;
pub mod signal;

use std::time::Duration;

pub use aegis_core::action::Secret;
pub use dispatch::{Dispatch, ExecContext, Executor, ProcessFinder, WatchedProcess};

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

/// Runs `work` within `timeout`; a timeout is [`ExecError::Timeout`].
pub(crate) async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ExecError>>,
) -> Result<T, ExecError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ExecError::Timeout(timeout)),
    }
}
