//! Restarting a service through `systemctl` (an argv, never a shell).
//! Where systemd is not PID 1, says "systemd unavailable" and does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use aegis_core::action::ServiceRestart;

use super::{process, ExecError};

/// Whether systemd runs this host: the test `sd_booted(3)` makes.
pub fn systemd_running(root: &Path) -> bool {
    root.join("run/systemd/system").is_dir()
}

/// Checks a unit name: systemd's characters only, so it can never be read
/// as an option or anything else.
pub fn validate_unit(unit: &str) -> Result<(), ExecError> {
    match aegis_core::action::unit_problem(unit) {
        Some(why) => Err(ExecError::Refused(why)),
        None => Ok(()),
    }
}

/// The argv that restarts the unit.
pub fn argv(s: &ServiceRestart) -> Vec<String> {
    vec![
        "systemctl".into(),
        "restart".into(),
        "--".into(),
        s.unit.clone(),
    ]
}

/// Restarts the unit, if systemd runs this host (checked under `root`, `/`
/// in production).
pub async fn run(s: &ServiceRestart, root: &Path, timeout: Duration) -> Result<String, ExecError> {
    validate_unit(&s.unit)?;
    if !systemd_running(root) {
        return Err(ExecError::Unavailable(format!(
            "systemd unavailable: {} does not exist (PID 1 is not systemd), cannot restart {}",
            PathBuf::from(root).join("run/systemd/system").display(),
            s.unit
        )));
    }
    process::run(&argv(s), timeout).await?;
    Ok(format!("restarted {}", s.unit))
}
