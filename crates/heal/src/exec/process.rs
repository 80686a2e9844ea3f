//! A configured command, run by the agent's one process launcher
//! (`aegis-argv`: an argv, never a shell, its process group killed on
//! timeout). A non-zero exit is a failure carrying the end of stderr.

use std::time::Duration;

pub use aegis_argv::{launched, Finished};
pub use aegis_core::action::RunCommand;

use super::ExecError;

/// Runs `argv` within `timeout`; a non-zero exit is [`ExecError::Failed`].
pub async fn run(argv: &[String], timeout: Duration) -> Result<Finished, ExecError> {
    let done = aegis_argv::run(argv, timeout).await.map_err(|e| match e {
        aegis_argv::RunError::Refused(why) => ExecError::Refused(why),
        aegis_argv::RunError::NotFound(p) => ExecError::Unavailable(format!("{p} not found")),
        aegis_argv::RunError::Io(why) => ExecError::Failed(why),
        aegis_argv::RunError::Timeout { timeout, .. } => ExecError::Timeout(timeout),
    })?;
    if done.success() {
        Ok(done)
    } else {
        Err(ExecError::Failed(format!(
            "{} exited with {}{}",
            argv.first().map_or("", String::as_str),
            done.exit_text(),
            if done.stderr.is_empty() {
                String::new()
            } else {
                format!(": {}", done.stderr)
            }
        )))
    }
}

/// Runs a configured command.
pub async fn run_command(c: &RunCommand, timeout: Duration) -> Result<String, ExecError> {
    let done = run(&c.argv, timeout).await?;
    let program = c.argv.first().map_or("", String::as_str);
    Ok(if done.stdout.is_empty() {
        format!("{program} exited with status 0")
    } else {
        format!("{program} exited with status 0: {}", done.stdout)
    })
}
