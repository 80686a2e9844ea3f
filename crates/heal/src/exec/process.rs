//! The one place where the agent starts a process: from an argv vector,
//! never through a shell, with a timeout, the child killed if it overruns.
//! Every launch is remembered (the last 64) so tests and operators can see
//! exactly what ran.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use super::ExecError;

/// Programs that interpret a command string. Refused as `argv[0]`: a
/// configured command is an argv, and a shell would turn it back into a
/// string to parse.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "ash", "busybox",
];

static LAUNCHED: Mutex<VecDeque<Vec<String>>> = Mutex::new(VecDeque::new());

/// The argv of the last processes started (oldest first, at most 64).
pub fn launched() -> Vec<Vec<String>> {
    match LAUNCHED.lock() {
        Ok(g) => g.iter().cloned().collect(),
        Err(p) => p.into_inner().iter().cloned().collect(),
    }
}

fn remember(argv: &[String]) {
    let mut g = match LAUNCHED.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if g.len() >= 64 {
        g.pop_front();
    }
    g.push_back(argv.to_vec());
}

/// Checks an argv before it is run.
pub fn validate(argv: &[String]) -> Result<(), ExecError> {
    let Some(program) = argv.first() else {
        return Err(ExecError::Refused("empty command".into()));
    };
    if program.trim().is_empty() {
        return Err(ExecError::Refused("empty program name".into()));
    }
    let base = program.rsplit('/').next().unwrap_or(program);
    if SHELLS.contains(&base) {
        return Err(ExecError::Refused(format!(
            "{program} is a shell; give the command itself as an argv list"
        )));
    }
    Ok(())
}

/// What a finished process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// The end of its standard output and error (at most 2 KiB each).
    pub stdout: String,
    /// See `stdout`.
    pub stderr: String,
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(2048);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// Runs `argv` with no shell, no standard input, within `timeout`. A
/// non-zero exit is a failure carrying the end of stderr.
pub async fn run(argv: &[String], timeout: Duration) -> Result<Finished, ExecError> {
    validate(argv)?;
    remember(argv);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExecError::Unavailable(format!("{} not found", argv[0])),
        _ => ExecError::Failed(format!("starting {}: {e}", argv[0])),
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| ExecError::Failed(format!("waiting for {}: {e}", argv[0])))?,
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => return Err(ExecError::Timeout(timeout)),
    };
    let finished = Finished {
        code: output.status.code(),
        stdout: tail(&output.stdout),
        stderr: tail(&output.stderr),
    };
    if output.status.success() {
        Ok(finished)
    } else {
        Err(ExecError::Failed(format!(
            "{} exited with {}{}",
            argv[0],
            finished
                .code
                .map_or("a signal".to_string(), |c| format!("status {c}")),
            if finished.stderr.is_empty() {
                String::new()
            } else {
                format!(": {}", finished.stderr)
            }
        )))
    }
}

pub use aegis_core::action::RunCommand;

/// Runs a configured command.
pub async fn run_command(c: &RunCommand, timeout: Duration) -> Result<String, ExecError> {
    let done = run(&c.argv, timeout).await?;
    Ok(if done.stdout.is_empty() {
        format!("{} exited with status 0", c.argv[0])
    } else {
        format!("{} exited with status 0: {}", c.argv[0], done.stdout)
    })
}
