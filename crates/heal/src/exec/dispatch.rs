//! From an action to its executor. [`Dispatch`] is the real one; the
//! engine takes any [`Executor`], so its tests can drive it with one that
//! fails, hangs or panics.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::{ActionSpec, SignalProcess};

use super::container::Containers;
use super::{container, memcached, process, redis, service, signal, ExecError};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One process a watched-process name stands for now: its PID and the
/// start time read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchedProcess {
    /// Process id.
    pub pid: i32,
    /// Start time, clock ticks after boot.
    pub start_time: u64,
}

/// Finds the processes a watched-process name (a process check) stands
/// for, as `/proc` shows them now. Given to healing by whoever knows the
/// watched processes, so healing does not read their configuration.
pub trait ProcessFinder: Send + Sync + 'static {
    /// The processes of `name`; `None` when no watched process has that name.
    fn find(&self, name: &str) -> Option<Vec<WatchedProcess>>;
}

/// No watched processes at all.
#[derive(Debug, Default)]
pub struct NoProcesses;

impl ProcessFinder for NoProcesses {
    fn find(&self, _name: &str) -> Option<Vec<WatchedProcess>> {
        None
    }
}

/// What executors need from the host.
#[derive(Clone)]
pub struct ExecContext {
    /// Time allowed to one attempt.
    pub attempt_timeout: Duration,
    /// Where processes are looked up for signals.
    pub proc_root: PathBuf,
    /// Process names never signalled.
    pub deny_processes: Vec<String>,
    /// Root under which systemd is looked for (`/`).
    pub root: PathBuf,
    /// The watched processes, for `signal` with `pid = 0`.
    pub processes: Arc<dyn ProcessFinder>,
    /// The container engine.
    pub containers: Arc<Containers>,
}

impl std::fmt::Debug for ExecContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecContext")
            .field("attempt_timeout", &self.attempt_timeout)
            .field("proc_root", &self.proc_root)
            .finish_non_exhaustive()
    }
}

/// Runs one action once (no guard, no retry: the engine does both).
pub trait Executor: Send + Sync + 'static {
    /// Runs `spec` about `target` (the container, watched process or unit
    /// an action without its own target acts on).
    fn execute<'a>(
        &'a self,
        ctx: &'a ExecContext,
        spec: &'a ActionSpec,
        target: &'a str,
    ) -> BoxFuture<'a, Result<String, ExecError>>;
}

/// The real executors.
#[derive(Debug, Default)]
pub struct Dispatch;

impl Executor for Dispatch {
    fn execute<'a>(
        &'a self,
        ctx: &'a ExecContext,
        spec: &'a ActionSpec,
        target: &'a str,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        Box::pin(execute(ctx, spec, target))
    }
}

async fn execute(ctx: &ExecContext, spec: &ActionSpec, target: &str) -> Result<String, ExecError> {
    let t = ctx.attempt_timeout;
    // Checked when the configuration or the API took it; checked again
    // here, last, before anything happens. A rule's empty container, unit
    // or pid stands for the incident's target.
    if let Some((field, why)) = spec.problems(true).into_iter().next() {
        return Err(ExecError::Refused(format!("{field}: {why}")));
    }
    match spec {
        ActionSpec::Container(c) => {
            let docker = ctx.containers.client().await?;
            let name = if c.container.is_empty() {
                target
            } else {
                c.container.as_str()
            };
            let r = container::run(&docker, c, name, t).await;
            if let Err(ExecError::Unavailable(_)) = &r {
                ctx.containers.forget().await;
            }
            r
        }
        ActionSpec::RedisFlush(r) => redis::run(r, t).await,
        ActionSpec::MemcachedFlush(m) => memcached::run(m, t).await,
        ActionSpec::Signal(s) if s.pid == 0 => signal_watched(ctx, s, target),
        ActionSpec::Signal(s) => signal::run(s, &ctx.proc_root, &ctx.deny_processes),
        ActionSpec::ServiceRestart(s) if s.unit.is_empty() => {
            let unit = aegis_core::action::ServiceRestart {
                unit: target.to_string(),
            };
            service::run(&unit, &ctx.root, t).await
        }
        ActionSpec::ServiceRestart(s) => service::run(s, &ctx.root, t).await,
        ActionSpec::Command(c) => process::run_command(c, t).await,
        ActionSpec::Webhook(_) => Err(ExecError::Refused(
            "a webhook is an alert, delivered by the notifier, not executed".into(),
        )),
    }
}

/// Signals the watched process(es) named `target`: found now, each signalled
/// by its PID and the start time just read, so a PID recycled in between is
/// refused by the signal executor itself.
fn signal_watched(ctx: &ExecContext, s: &SignalProcess, target: &str) -> Result<String, ExecError> {
    let Some(found) = ctx.processes.find(target) else {
        return Err(ExecError::Refused(format!(
            "pid 0 means the watched process of the incident, and no process check is named {target:?}"
        )));
    };
    if found.is_empty() {
        return Err(ExecError::Refused(format!("no process of {target:?} runs")));
    }
    let mut done = Vec::new();
    for p in found {
        let exact = SignalProcess {
            pid: p.pid,
            start_time: p.start_time,
            signal: s.signal,
        };
        done.push(signal::run(&exact, &ctx.proc_root, &ctx.deny_processes)?);
    }
    Ok(done.join("; "))
}
