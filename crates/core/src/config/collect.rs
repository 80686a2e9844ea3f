//! `[collect]` and `[history]`: what the host source reads and how much of
//! it is kept in memory.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Interval, Problems};

/// `[collect]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// How often the host source collects.
    pub interval: Interval,
    /// Where the host source reads procfs (a fake tree in tests, the host's
    /// `/proc` mounted elsewhere in a container).
    pub proc_root: PathBuf,
    /// Network interfaces not to report (exact names).
    pub exclude_interfaces: Vec<String>,
    /// Mount points not to report (exact paths).
    pub exclude_mountpoints: Vec<String>,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            interval: Interval::secs(5),
            proc_root: PathBuf::from("/proc"),
            exclude_interfaces: Vec::new(),
            exclude_mountpoints: Vec::new(),
        }
    }
}

impl CollectConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.interval.0 >= Duration::from_millis(100)
                && self.interval.0 <= Duration::from_secs(3600),
            "collect.interval",
            || format!("must be between 100ms and 1h, got {}", self.interval),
        );
        p.check(
            !self.proc_root.as_os_str().is_empty(),
            "collect.proc_root",
            || "is empty".to_string(),
        );
    }
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Most points kept per series in memory (oldest dropped first).
    pub max_points_per_series: usize,
    /// Oldest point kept in memory.
    pub max_age: Interval,
    /// Most series kept in memory (new series beyond it are refused).
    pub max_series: usize,
    /// Capacity of the observation channel between sources and the pipeline
    /// (newest observations are shed when it is full).
    pub channel_capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_points_per_series: 720,
            max_age: Interval::secs(3600),
            max_series: 10_000,
            channel_capacity: 8_192,
        }
    }
}

impl HistoryConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.range(
            "history.max_points_per_series",
            self.max_points_per_series,
            1,
            1_000_000,
        );
        p.range("history.max_series", self.max_series, 1, 1_000_000);
        p.range(
            "history.channel_capacity",
            self.channel_capacity,
            16,
            1_000_000,
        );
        p.check(
            self.max_age.0 >= Duration::from_secs(1),
            "history.max_age",
            || format!("must be at least 1s, got {}", self.max_age),
        );
    }
}
