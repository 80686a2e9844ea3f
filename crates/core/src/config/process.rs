//! `[[processes]]`: processes watched by name, command line or pidfile.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Glob, Name, Problems};

/// `[[processes]]`: a process to watch, found by exactly one of `comm`,
/// `cmdline` or `pidfile`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// A short name (the series' instance).
    pub name: Name,
    /// Exact command name (`/proc/PID/comm`).
    #[serde(default)]
    pub comm: Option<String>,
    /// Pattern over the command line (`*` wildcard).
    #[serde(default)]
    pub cmdline: Option<Glob>,
    /// A pidfile naming the process.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
}

impl ProcessConfig {
    /// Checks the selector of an entry at `field`.
    pub(super) fn validate_selector(&self, field: &str, p: &mut Problems) {
        let ways = usize::from(self.comm.is_some())
            + usize::from(self.cmdline.is_some())
            + usize::from(self.pidfile.is_some());
        p.check(ways == 1, field.to_string(), || {
            format!(
                "{:?} needs exactly one of comm, cmdline or pidfile",
                self.name.as_str()
            )
        });
        if let Some(comm) = &self.comm {
            // The kernel keeps at most 15 bytes of a command name.
            p.check(
                !comm.is_empty() && comm.len() <= 15,
                format!("{field}.comm"),
                || format!("{comm:?} is not a command name (1 to 15 bytes, as in /proc/PID/comm)"),
            );
        }
        if let Some(pidfile) = &self.pidfile {
            p.check(pidfile.is_absolute(), format!("{field}.pidfile"), || {
                format!("{} is not an absolute path", pidfile.display())
            });
        }
    }
}

pub(super) fn validate_processes(processes: &[ProcessConfig], p: &mut Problems) {
    let mut names = HashSet::new();
    for (i, pr) in processes.iter().enumerate() {
        let field = format!("processes.{i}");
        pr.validate_selector(&field, p);
        p.check(
            names.insert(pr.name.as_str()),
            format!("{field}.name"),
            || format!("the name {:?} is used twice", pr.name.as_str()),
        );
    }
}
