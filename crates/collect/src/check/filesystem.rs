//! `filesystem` checks: a mount point fuller than `max_used_ratio` (as `df`
//! counts it: reserved blocks are full), with more inodes used than
//! `max_inodes_ratio`, or mounted read-only when `writable = true`. The
//! used ratio is the value.

use std::path::PathBuf;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::CheckConfig;
use std::time::Duration;

use crate::statfs::{StatError, Statfs};

use super::Run;

/// A filesystem check's probe.
pub struct FilesystemProbe {
    mount: PathBuf,
    max_used: Option<f64>,
    max_inodes: Option<f64>,
    writable: bool,
    statfs: Statfs,
}

impl FilesystemProbe {
    /// The probe of a validated `filesystem` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            mount: c.mount.clone().ok_or("a filesystem check needs a mount")?,
            max_used: c.max_used_ratio,
            max_inodes: c.max_inodes_ratio,
            writable: c.writable.unwrap_or(false),
            statfs: Statfs::new(Duration::from_secs(1)),
        })
    }

    /// Reads the mount once, waiting at most `timeout` for an answer: a
    /// hung mount fails the check with a timeout and is not asked again
    /// until the stuck call returns.
    pub async fn run(&mut self, timeout: Duration) -> Run {
        self.statfs.set_timeout(timeout);
        let u = match self.statfs.stat_async(&self.mount).await {
            Ok(u) => u,
            Err(e @ (StatError::TimedOut(_) | StatError::Hung(_))) => {
                return Run::of(CheckOutcome::failed(
                    FailureClass::Timeout,
                    e.describe(&self.mount),
                ))
            }
            Err(e) => {
                return Run::of(CheckOutcome::failed(
                    FailureClass::Other,
                    e.describe(&self.mount),
                ))
            }
        };
        let used_ratio = u.used_ratio().unwrap_or(0.0);
        let inodes_ratio = u.inodes_ratio().unwrap_or(0.0);
        let m = self.mount.display();
        let outcome = if self.writable && u.read_only {
            CheckOutcome::failed(FailureClass::ReadOnly, format!("{m} is mounted read-only"))
        } else if self.max_used.is_some_and(|max| used_ratio > max) {
            CheckOutcome::failed(
                FailureClass::Threshold,
                format!(
                    "{m} is {:.1}% full, more than {:.1}%",
                    used_ratio * 100.0,
                    self.max_used.unwrap_or(1.0) * 100.0
                ),
            )
        } else if self.max_inodes.is_some_and(|max| inodes_ratio > max) {
            CheckOutcome::failed(
                FailureClass::Threshold,
                format!(
                    "{m} has {:.1}% of its inodes used, more than {:.1}%",
                    inodes_ratio * 100.0,
                    self.max_inodes.unwrap_or(1.0) * 100.0
                ),
            )
        } else {
            CheckOutcome::Passed
        };
        Run {
            outcome,
            latency: None,
            value: Some(used_ratio),
            observations: Vec::new(),
        }
    }
}
