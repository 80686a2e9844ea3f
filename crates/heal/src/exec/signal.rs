//! Signalling a process by PID **and** start time, so a recycled PID is
//! never hit. PID 1, the agent itself and deny-listed names are never targets.

use std::path::Path;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::ExecError;

pub use aegis_core::action::{SignalName, SignalProcess};

fn to_signal(name: SignalName) -> Signal {
    match name {
        SignalName::Term => Signal::SIGTERM,
        SignalName::Kill => Signal::SIGKILL,
        SignalName::Hup => Signal::SIGHUP,
        SignalName::Int => Signal::SIGINT,
        SignalName::Usr1 => Signal::SIGUSR1,
        SignalName::Usr2 => Signal::SIGUSR2,
    }
}

/// A process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (`comm`).
    pub comm: String,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// Reads `comm` and the start time of `pid` under `proc_root`.
pub fn read_stat(proc_root: &Path, pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    aegis_core::procfs::parse_pid_stat(&text).map(|s| ProcStat {
        comm: s.comm,
        start_time: s.start_time,
    })
}

/// Sends the signal after every check. `deny` holds command names never to
/// signal.
pub fn run(p: &SignalProcess, proc_root: &Path, deny: &[String]) -> Result<String, ExecError> {
    if p.pid <= 1 {
        return Err(ExecError::Refused(format!(
            "PID {} is never a target",
            p.pid
        )));
    }
    if p.pid as u32 == std::process::id() {
        return Err(ExecError::Refused("the agent never signals itself".into()));
    }
    let Some(stat) = read_stat(proc_root, p.pid) else {
        return Err(ExecError::Refused(format!(
            "process {} no longer exists",
            p.pid
        )));
    };
    if stat.start_time != p.start_time {
        return Err(ExecError::Refused(format!(
                "PID {} was recycled: it now belongs to {:?} started at tick {}, not the process started at tick {}",
                p.pid, stat.comm, stat.start_time, p.start_time
            )));
    }
    if deny.contains(&stat.comm) {
        return Err(ExecError::Refused(format!(
            "{:?} is on the deny list",
            stat.comm
        )));
    }
    nix::sys::signal::kill(Pid::from_raw(p.pid), to_signal(p.signal))
        .map_err(|e| ExecError::Failed(format!("kill({}, {:?}): {e}", p.pid, p.signal)))?;
    Ok(format!("sent {:?} to {} ({})", p.signal, p.pid, stat.comm))
}
