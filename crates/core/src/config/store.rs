//! `[store]`: the SQLite file, how often it is committed, how long it keeps.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ByteSize, Interval, Problems};

/// `[store]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file. Unset: `aegis.db` in the state directory.
    pub path: Option<PathBuf>,
    /// How often pending rollups are committed (on the clock's multiples
    /// of it); a crash loses at most this much.
    pub flush_interval: Interval,
    /// Rows older than this are deleted.
    pub retention_max_age: Interval,
    /// The oldest rows are deleted while the file is larger than this.
    pub retention_max_size: ByteSize,
    /// How often retention runs.
    pub retention_interval: Interval,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: None,
            flush_interval: Interval::secs(60),
            retention_max_age: Interval::secs(7 * 24 * 3600),
            retention_max_size: ByteSize(256 << 20),
            retention_interval: Interval::secs(300),
        }
    }
}

impl StoreConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.flush_interval.0 >= Duration::from_millis(100)
                && self.flush_interval.0 <= Duration::from_secs(60),
            "store.flush_interval",
            || format!("must be between 100ms and 60s, got {}", self.flush_interval),
        );
        p.check(
            self.retention_max_age.0 >= Duration::from_secs(60),
            "store.retention_max_age",
            || format!("must be at least 1m, got {}", self.retention_max_age),
        );
        p.check(
            self.retention_max_size.0 >= 1 << 20,
            "store.retention_max_size",
            || format!("must be at least 1MiB, got {}", self.retention_max_size),
        );
        p.check(
            self.retention_interval.0 >= Duration::from_secs(1),
            "store.retention_interval",
            || format!("must be at least 1s, got {}", self.retention_interval),
        );
        if let Some(path) = &self.path {
            p.check(!path.as_os_str().is_empty(), "store.path", || {
                "is empty; leave it out for the default".to_string()
            });
        }
    }
}
