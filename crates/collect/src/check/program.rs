//! `program` checks: a program run from its argv (never a shell), passing
//! when it exits with status 0 and, when asked, prints what is expected.
//! On timeout its whole process group is killed.

use std::time::Duration;

use aegis_argv::RunError;
use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::CheckConfig;

use super::Run;

/// A program check's probe.
pub struct ProgramProbe {
    argv: Vec<String>,
    expect_output: Option<String>,
}

impl ProgramProbe {
    /// The probe of a validated `program` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            argv: c.argv.clone().ok_or("a program check needs an argv")?,
            expect_output: c.expect_output.clone(),
        })
    }

    /// Runs the program within `timeout`.
    pub async fn run(&mut self, timeout: Duration) -> Run {
        let started = tokio::time::Instant::now();
        let program = self.argv.first().cloned().unwrap_or_default();
        let outcome = match aegis_argv::run(&self.argv, timeout).await {
            Ok(done) if !done.success() => CheckOutcome::failed(
                FailureClass::ExitStatus,
                format!(
                    "{program} exited with {}{}",
                    done.exit_text(),
                    if done.stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", done.stderr)
                    }
                ),
            ),
            Ok(done) => match &self.expect_output {
                Some(want) if !done.stdout.contains(want.as_str()) => CheckOutcome::failed(
                    FailureClass::OutputMismatch,
                    format!("{program}'s output lacks {want:?}"),
                ),
                _ => CheckOutcome::Passed,
            },
            Err(RunError::Timeout { timeout, .. }) => CheckOutcome::failed(
                FailureClass::Timeout,
                format!(
                    "{program} did not finish within {timeout:?}; its process group was killed"
                ),
            ),
            Err(RunError::NotFound(p)) => {
                CheckOutcome::failed(FailureClass::NotFound, format!("{p} not found"))
            }
            Err(e) => CheckOutcome::failed(FailureClass::Other, e.to_string()),
        };
        Run {
            latency: Some(started.elapsed()),
            outcome,
            value: None,
            observations: Vec::new(),
        }
    }
}
