//! The one place where the agent starts a process: from an argv vector,
//! never through a shell (a shell as `argv[0]` is refused), with no standard
//! input and a timeout. The process runs in a process group of its own, and
//! on timeout the whole group is killed, so a child it spawned cannot
//! outlive it. Every launch is remembered (the last 64) so tests and
//! operators can see exactly what ran. Healing's `command` action and the
//! `program` check both run here.

use std::collections::VecDeque;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Most bytes of standard output and error kept (the end).
pub const TAIL_BYTES: usize = 2048;

/// Why a program could not be run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The argv was refused before anything started (empty, a shell...).
    #[error("refused: {0}")]
    Refused(String),
    /// The program does not exist here.
    #[error("{0} not found")]
    NotFound(String),
    /// It could not be started or waited for.
    #[error("{0}")]
    Io(String),
    /// It did not finish in time; its process group was killed.
    #[error("{program} did not finish within {timeout:?}; its process group was killed")]
    Timeout {
        /// `argv[0]`.
        program: String,
        /// The time it had.
        timeout: Duration,
    },
}

/// What a finished process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// The end of its standard output (at most [`TAIL_BYTES`]).
    pub stdout: String,
    /// The end of its standard error.
    pub stderr: String,
}

impl Finished {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `status N`, or `a signal`.
    pub fn exit_text(&self) -> String {
        self.code
            .map_or("a signal".to_string(), |c| format!("status {c}"))
    }
}

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

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// Reads a pipe to its end, keeping the last [`TAIL_BYTES`].
async fn drain(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    loop {
        // Read into the vector's own room: a buffer on the stack would sit
        // in the future across every await (twice, one per pipe).
        if kept.capacity() - kept.len() < 1024 {
            kept.reserve(4096);
        }
        match pipe.read_buf(&mut kept).await {
            Ok(0) | Err(_) => return kept,
            Ok(_) => {
                if kept.len() > 2 * TAIL_BYTES {
                    kept.drain(..kept.len() - TAIL_BYTES);
                }
            }
        }
    }
}

/// Runs `argv` to its end within `timeout`, whatever its exit status.
pub async fn run(argv: &[String], timeout: Duration) -> Result<Finished, RunError> {
    if let Some(why) = aegis_core::action::argv_problem(argv) {
        return Err(RunError::Refused(why));
    }
    let program = argv[0].clone();
    remember(argv);
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A group of its own: on timeout the group goes, grandchildren included.
    cmd.as_std_mut().process_group(0);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::NotFound(program.clone()),
        _ => RunError::Io(format!("starting {program}: {e}")),
    })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        // The pipes close when every process holding them is gone; a
        // grandchild keeping them open runs into the timeout.
        let (status, out, err) = tokio::join!(child.wait(), drain(stdout), drain(stderr));
        (status, out, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((status, out, err)) => {
            let status = status.map_err(|e| RunError::Io(format!("waiting for {program}: {e}")))?;
            Ok(Finished {
                code: status.code(),
                stdout: tail(&out),
                stderr: tail(&err),
            })
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(RunError::Timeout { program, timeout })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn exit_status_and_output_are_kept() {
        let done = run(&argv(&["printf", "hello"]), Duration::from_secs(5))
            .await
            .expect("ran");
        assert!(done.success());
        assert_eq!(done.stdout, "hello");
        let failed = run(&argv(&["false"]), Duration::from_secs(5))
            .await
            .expect("ran");
        assert_eq!(failed.code, Some(1));
    }

    #[tokio::test]
    async fn shells_and_empty_argvs_never_start() {
        for bad in [argv(&[]), argv(&[""]), argv(&["/bin/sh", "-c", "true"])] {
            assert!(matches!(
                run(&bad, Duration::from_secs(1)).await,
                Err(RunError::Refused(_))
            ));
        }
        assert!(matches!(
            run(&argv(&["/nonexistent/aegis-x"]), Duration::from_secs(1)).await,
            Err(RunError::NotFound(_))
        ));
    }
}
