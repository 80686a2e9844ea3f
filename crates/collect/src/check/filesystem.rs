//! `filesystem` checks: a mount point fuller than `max_used_ratio` (as `df`
//! counts it: reserved blocks are full), with more inodes used than
//! `max_inodes_ratio`, or mounted read-only when `writable = true`. The
//! used ratio is the value.

use std::path::PathBuf;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::CheckConfig;
use nix::sys::statvfs::{statvfs, FsFlags};

use super::Run;

/// A filesystem check's probe.
pub struct FilesystemProbe {
    mount: PathBuf,
    max_used: Option<f64>,
    max_inodes: Option<f64>,
    writable: bool,
}

/// What `statvfs` says of a mount: the used share of space and of inodes,
/// and whether it is read-only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Used space over used plus available, as `df`.
    pub used_ratio: f64,
    /// Used inodes over all inodes (0 where the file system has none).
    pub inodes_ratio: f64,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Reads the usage of the file system holding `mount`.
pub fn usage(mount: &std::path::Path) -> Result<Usage, String> {
    let s = statvfs(mount).map_err(|e| format!("statvfs {}: {e}", mount.display()))?;
    let frag = s.fragment_size() as f64;
    let size = s.blocks() as f64 * frag;
    let free = s.blocks_free() as f64 * frag;
    let avail = s.blocks_available() as f64 * frag;
    let used = size - free;
    let files = s.files() as f64;
    Ok(Usage {
        used_ratio: if used + avail > 0.0 {
            used / (used + avail)
        } else {
            0.0
        },
        inodes_ratio: if files > 0.0 {
            (files - s.files_free() as f64) / files
        } else {
            0.0
        },
        read_only: s.flags().contains(FsFlags::ST_RDONLY),
    })
}

impl FilesystemProbe {
    /// The probe of a validated `filesystem` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            mount: c.mount.clone().ok_or("a filesystem check needs a mount")?,
            max_used: c.max_used_ratio,
            max_inodes: c.max_inodes_ratio,
            writable: c.writable.unwrap_or(false),
        })
    }

    /// Reads the mount once.
    pub fn run(&mut self) -> Run {
        let u = match usage(&self.mount) {
            Ok(u) => u,
            Err(e) => return Run::of(CheckOutcome::failed(FailureClass::Other, e)),
        };
        let m = self.mount.display();
        let outcome = if self.writable && u.read_only {
            CheckOutcome::failed(FailureClass::ReadOnly, format!("{m} is mounted read-only"))
        } else if self.max_used.is_some_and(|max| u.used_ratio > max) {
            CheckOutcome::failed(
                FailureClass::Threshold,
                format!(
                    "{m} is {:.1}% full, more than {:.1}%",
                    u.used_ratio * 100.0,
                    self.max_used.unwrap_or(1.0) * 100.0
                ),
            )
        } else if self.max_inodes.is_some_and(|max| u.inodes_ratio > max) {
            CheckOutcome::failed(
                FailureClass::Threshold,
                format!(
                    "{m} has {:.1}% of its inodes used, more than {:.1}%",
                    u.inodes_ratio * 100.0,
                    self.max_inodes.unwrap_or(1.0) * 100.0
                ),
            )
        } else {
            CheckOutcome::Passed
        };
        Run {
            outcome,
            latency: None,
            value: Some(u.used_ratio),
            observations: Vec::new(),
        }
    }
}
