//! Restarting a service through `systemctl` (an argv, never a shell).
//! Where systemd is not PID 1, says "systemd unavailable" and does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{process, ExecError};

/// Parameters of a service restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRestart {
    /// The unit, e.g. `nginx.service`.
    pub unit: String,
}

/// Whether systemd runs this host: the test `sd_booted(3)` makes.
pub fn systemd_running(root: &Path) -> bool {
    root.join("run/systemd/system").is_dir()
}

/// Checks a unit name: systemd's characters only, so it can never be read
/// as an option or anything else.
pub fn validate_unit(unit: &str) -> Result<(), ExecError> {
    let ok = !unit.is_empty()
        && !unit.starts_with('-')
        && unit.len() <= 256
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '-' | '\\'));
    if ok {
        Ok(())
    } else {
        Err(ExecError::Refused(format!(
            "{unit:?} is not a valid unit name"
        )))
    }
}

impl ServiceRestart {
    /// The argv that restarts the unit.
    pub fn argv(&self) -> Vec<String> {
        vec![
            "systemctl".into(),
            "restart".into(),
            "--".into(),
            self.unit.clone(),
        ]
    }

    /// Restarts the unit, if systemd runs this host (checked under `root`,
    /// `/` in production).
    pub async fn run(&self, root: &Path, timeout: Duration) -> Result<String, ExecError> {
        validate_unit(&self.unit)?;
        if !systemd_running(root) {
            return Err(ExecError::Unavailable(format!(
                "systemd unavailable: {} does not exist (PID 1 is not systemd), cannot restart {}",
                PathBuf::from(root).join("run/systemd/system").display(),
                self.unit
            )));
        }
        process::run(&self.argv(), timeout).await?;
        Ok(format!("restarted {}", self.unit))
    }
}
