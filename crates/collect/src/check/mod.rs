//! Checks at run time: each check on its own interval with its timeout,
//! all under one concurrency limit (a check that hangs delays nobody), and
//! one owner of every check's state ([`Checks`]).
//!
//! The owner takes each run's result, applies the thresholds and the start
//! period ([`CheckMachine`]), then the dependencies (a check whose
//! dependency fails is blocked, and when that dependency recovers its
//! dependents decide afresh), publishes every check's status on a `watch`
//! channel, answers questions about recent results, and sends each change
//! of state out as a [`TransitionRecord`] (to healing, the store and the
//! notifier; the agent wires which).
//!
//! One module per kind: [`http`], [`tcp`], [`tls`], [`process`],
//! [`program`], [`filesystem`], [`series`], [`container`].

pub mod container;
pub mod fetch;
pub mod filesystem;
pub mod http;
pub mod process;
pub mod program;
pub mod series;
pub mod tcp;
pub mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::{
    CheckMachine, CheckOutcome, CheckResult, CheckState, CheckStatus, CheckSubject, Dependencies,
    TransitionRecord,
};
use aegis_core::config::{CheckConfig, CheckKind, ProbeSettings};
use aegis_core::container::ContainerInfo;
use aegis_core::status::Latest;
use aegis_core::{Clock, Observation};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::sink::ObservationSink;

/// Results of one check kept in memory for the API, at most.
pub const RECENT_RESULTS: usize = 100;
/// Results waiting for the owner, at most (a run waits for room).
const RESULT_QUEUE: usize = 1_024;
/// Questions waiting for the owner, at most.
const QUERY_QUEUE: usize = 64;
/// How often the statuses are published when results came in, at most.
/// Transitions go out at once regardless.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// What the probes read besides the network.
#[derive(Clone)]
pub struct CheckContext {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where procfs is (process checks).
    pub proc_root: PathBuf,
    /// The newest value of every series (series checks).
    pub latest: Option<watch::Receiver<Arc<Latest>>>,
    /// The containers as last seen (container checks).
    pub containers: Option<watch::Receiver<Arc<Vec<ContainerInfo>>>>,
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The verdict of this run.
    pub outcome: CheckOutcome,
    /// Time to the answer, when one came.
    pub latency: Option<Duration>,
    /// The value measured.
    pub value: Option<f64>,
    /// Series the run feeds (endpoint latency, process figures...).
    pub observations: Vec<Observation>,
}

impl Run {
    /// A run with just a verdict.
    pub fn of(outcome: CheckOutcome) -> Self {
        Self {
            outcome,
            latency: None,
            value: None,
            observations: Vec::new(),
        }
    }
}

/// One check's probe, of its kind, with whatever it remembers between runs.
pub enum Probe {
    /// `http`.
    Http(http::HttpProbe),
    /// `tcp`.
    Tcp(tcp::TcpProbe),
    /// `tls`.
    Tls(tls::TlsProbe),
    /// `process`.
    Process(process::ProcessProbe),
    /// `program`.
    Program(program::ProgramProbe),
    /// `filesystem`.
    Filesystem(filesystem::FilesystemProbe),
    /// `series`.
    Series(series::SeriesProbe),
    /// `container`.
    Container(container::ContainerProbe),
}

impl Probe {
    /// The probe of a (validated) check.
    pub fn of(c: &CheckConfig, ctx: &CheckContext) -> Result<Self, String> {
        Ok(match c.kind {
            CheckKind::Http => Probe::Http(http::HttpProbe::new(c)?),
            CheckKind::Tcp => Probe::Tcp(tcp::TcpProbe::new(c)?),
            CheckKind::Tls => Probe::Tls(tls::TlsProbe::new(c)?),
            CheckKind::Process => Probe::Process(process::ProcessProbe::new(c, &ctx.proc_root)),
            CheckKind::Program => Probe::Program(program::ProgramProbe::new(c)?),
            CheckKind::Filesystem => Probe::Filesystem(filesystem::FilesystemProbe::new(c)?),
            CheckKind::Series => Probe::Series(series::SeriesProbe::new(c)?),
            CheckKind::Container => Probe::Container(container::ContainerProbe::new(c)?),
        })
    }

    /// Runs once within `timeout`.
    pub async fn run(&mut self, ctx: &CheckContext, timeout: Duration) -> Run {
        let now = ctx.clock.monotonic();
        let at_ms = ctx.clock.wall_ms();
        let work = async {
            match self {
                Probe::Http(p) => p.run(timeout, at_ms).await,
                Probe::Tcp(p) => p.run(timeout).await,
                Probe::Tls(p) => p.run(timeout, at_ms).await,
                Probe::Process(p) => p.run(now, at_ms),
                Probe::Program(p) => p.run(timeout).await,
                Probe::Filesystem(p) => p.run(timeout).await,
                Probe::Series(p) => p.run(ctx.latest.as_ref(), now),
                Probe::Container(p) => p.run(ctx.containers.as_ref(), now),
            }
        };
        // Every kind bounds its own network waits; this is the backstop.
        match tokio::time::timeout(timeout + Duration::from_millis(250), work).await {
            Ok(run) => run,
            Err(_) => Run::of(CheckOutcome::failed(
                aegis_core::check::FailureClass::Timeout,
                format!("no result within {timeout:?}"),
            )),
        }
    }
}

/// One check as the owner knows it.
struct Tracked {
    config: CheckConfig,
    machine: CheckMachine,
    state: CheckState,
    since_ms: i64,
    blocked_by: Vec<String>,
    last: Option<CheckResult>,
    next_run_ms: Option<i64>,
    warning: Option<String>,
    recent: VecDeque<CheckResult>,
    failures: BTreeMap<aegis_core::check::FailureClass, u64>,
    runs: u64,
}

struct Finished {
    /// Which set of checks the run belonged to (a replacement starts a new
    /// one; results of the old set still in the queue are dropped).
    generation: u64,
    index: usize,
    result: CheckResult,
    next_run_ms: i64,
}

/// A question for the owner.
enum Query {
    Recent {
        name: String,
        reply: oneshot::Sender<Option<(CheckStatus, Vec<CheckResult>)>>,
    },
    Replace {
        configs: Vec<CheckConfig>,
        reply: oneshot::Sender<Result<Replaced, String>>,
    },
}

/// What replacing the checks changed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Checks that are new.
    pub added: Vec<String>,
    /// Checks that are gone.
    pub removed: Vec<String>,
    /// Checks whose configuration changed: they start afresh.
    pub changed: Vec<String>,
    /// Checks left as they were, state and history kept.
    pub kept: usize,
}

impl Replaced {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Asks the owner about a check's recent results.
#[derive(Clone)]
pub struct ChecksHandle {
    queries: mpsc::Sender<Query>,
    view: watch::Receiver<Arc<Vec<CheckStatus>>>,
}

impl ChecksHandle {
    /// Every check's status.
    pub fn statuses(&self) -> Arc<Vec<CheckStatus>> {
        Arc::clone(&self.view.borrow())
    }

    /// The status view, to watch.
    pub fn view(&self) -> watch::Receiver<Arc<Vec<CheckStatus>>> {
        self.view.clone()
    }

    /// One check's status and its recent results (newest last); `None`
    /// for an unknown name, or when the owner has stopped.
    pub async fn recent(&self, name: &str) -> Option<(CheckStatus, Vec<CheckResult>)> {
        let (reply, rx) = oneshot::channel();
        self.queries
            .send(Query::Recent {
                name: name.to_string(),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Replaces every check by `configs` (a reloaded configuration): checks
    /// whose configuration is unchanged keep their state and results, the
    /// others start afresh. Refused, with the old checks left running, when
    /// a probe cannot be built or the dependencies do not hold.
    pub async fn replace(&self, configs: Vec<CheckConfig>) -> Result<Replaced, String> {
        let (reply, rx) = oneshot::channel();
        self.queries
            .send(Query::Replace { configs, reply })
            .await
            .map_err(|_| "the checks have stopped".to_string())?;
        rx.await
            .map_err(|_| "the checks have stopped".to_string())?
    }
}

/// What can be built of a set of checks before anything stops: its probes
/// and its dependencies. Failing here leaves the running set untouched.
fn prepare(
    configs: &[CheckConfig],
    ctx: &CheckContext,
) -> Result<(Vec<Probe>, Dependencies), String> {
    let deps_list: Vec<(String, Vec<String>)> = configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.depends_on.iter().map(|d| d.to_string()).collect(),
            )
        })
        .collect();
    let deps = Dependencies::new(deps_list.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
        .map_err(|e| format!("check dependencies: {e:?}"))?;
    let probes = configs
        .iter()
        .map(|c| Probe::of(c, ctx).map_err(|e| format!("check {:?}: {e}", c.name.as_str())))
        .collect::<Result<_, _>>()?;
    Ok((probes, deps))
}

/// The states of `configs`, taking over from `previous` the state of every
/// check whose configuration is unchanged.
fn track(
    configs: Vec<CheckConfig>,
    ctx: &CheckContext,
    mut previous: Vec<Tracked>,
) -> (Vec<Tracked>, Replaced) {
    let now = ctx.clock.monotonic();
    let now_ms = ctx.clock.wall_ms();
    let mut tracked = Vec::with_capacity(configs.len());
    let mut replaced = Replaced::default();
    for c in configs {
        let old = previous
            .iter()
            .position(|t| t.config.name == c.name)
            .map(|i| previous.swap_remove(i));
        match old {
            Some(mut t) if t.config == c => {
                replaced.kept += 1;
                // Runs again at once: its runner is new.
                t.next_run_ms = Some(now_ms);
                tracked.push(t);
                continue;
            }
            Some(_) => replaced.changed.push(c.name.to_string()),
            None => replaced.added.push(c.name.to_string()),
        }
        tracked.push(Tracked {
            machine: CheckMachine::new(c.thresholds(), now),
            config: c,
            state: CheckState::Unknown,
            since_ms: now_ms,
            blocked_by: Vec::new(),
            last: None,
            next_run_ms: Some(now_ms),
            warning: None,
            recent: VecDeque::with_capacity(RECENT_RESULTS),
            failures: BTreeMap::new(),
            runs: 0,
        });
    }
    replaced.removed = previous
        .into_iter()
        .map(|t| t.config.name.to_string())
        .collect();
    (tracked, replaced)
}

/// Every check, built and not yet running.
pub struct Checks {
    /// Results arrived since the statuses were last published.
    dirty: bool,
    tracked: Vec<Tracked>,
    probes: Vec<Probe>,
    deps: Dependencies,
    generation: u64,
    settings: ProbeSettings,
    ctx: CheckContext,
    sink: ObservationSink,
    transitions: mpsc::Sender<TransitionRecord>,
    view: watch::Sender<Arc<Vec<CheckStatus>>>,
    queries: mpsc::Receiver<Query>,
}

impl Checks {
    /// Builds every check. `transitions` gets each change of state.
    pub fn new(
        configs: Vec<CheckConfig>,
        settings: ProbeSettings,
        ctx: CheckContext,
        sink: ObservationSink,
        transitions: mpsc::Sender<TransitionRecord>,
    ) -> Result<(Self, ChecksHandle), String> {
        let (probes, deps) = prepare(&configs, &ctx)?;
        let (tracked, _) = track(configs, &ctx, Vec::new());
        let (view, view_rx) = watch::channel(Arc::new(Vec::new()));
        let (qtx, queries) = mpsc::channel(QUERY_QUEUE);
        let checks = Self {
            dirty: false,
            tracked,
            probes,
            deps,
            generation: 0,
            settings,
            ctx,
            sink,
            transitions,
            view,
            queries,
        };
        checks.publish();
        Ok((
            checks,
            ChecksHandle {
                queries: qtx,
                view: view_rx,
            },
        ))
    }

    fn status_of(t: &Tracked) -> CheckStatus {
        CheckStatus {
            name: t.config.name.to_string(),
            kind: t.config.kind.as_str().to_string(),
            subject: subject_of(&t.config),
            state: t.state,
            since_ms: t.since_ms,
            failures_in_row: t.machine.failures_in_row(),
            successes_in_row: t.machine.successes_in_row(),
            last: t.last.clone(),
            next_run_ms: t.next_run_ms,
            blocked_by: t.blocked_by.clone(),
            warning: t.warning.clone(),
            failures: t.failures.clone(),
            runs: t.runs,
        }
    }

    fn publish(&self) {
        self.view
            .send_replace(Arc::new(self.tracked.iter().map(Self::status_of).collect()));
    }

    /// Runs every check until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let limit = Arc::new(Semaphore::new(self.settings.max_concurrent.max(1) as usize));
        let (results_tx, mut results) = mpsc::channel::<Finished>(RESULT_QUEUE);
        let mut runners = tokio::task::JoinSet::new();
        self.spawn_runners(&mut runners, &results_tx, &limit, &cancel);
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = publish.tick(), if self.dirty => {
                    self.dirty = false;
                    self.publish();
                }
                Some(f) = results.recv() => {
                    if f.generation == self.generation {
                        self.on_result(f);
                    }
                }
                Some(q) = self.queries.recv() => match q {
                    Query::Replace { configs, reply } => {
                        let answer = self.replace(configs, &mut runners).await;
                        if answer.is_ok() {
                            self.spawn_runners(&mut runners, &results_tx, &limit, &cancel);
                        }
                        let _ = reply.send(answer);
                    }
                    q => self.answer(q),
                },
            }
        }
        runners.shutdown().await;
    }

    /// Swaps in a new set of checks; on an error the old set is untouched
    /// (and its runners keep running).
    async fn replace(
        &mut self,
        configs: Vec<CheckConfig>,
        runners: &mut tokio::task::JoinSet<()>,
    ) -> Result<Replaced, String> {
        // Nothing stops until the new set is known to be good.
        let (probes, deps) = prepare(&configs, &self.ctx)?;
        runners.shutdown().await;
        let previous = std::mem::take(&mut self.tracked);
        let (tracked, replaced) = track(configs, &self.ctx, previous);
        self.tracked = tracked;
        self.probes = probes;
        self.deps = deps;
        self.generation += 1;
        self.settle(None);
        self.publish();
        Ok(replaced)
    }

    /// One runner per check of the current set.
    fn spawn_runners(
        &mut self,
        runners: &mut tokio::task::JoinSet<()>,
        results_tx: &mpsc::Sender<Finished>,
        limit: &Arc<Semaphore>,
        cancel: &CancellationToken,
    ) {
        let generation = self.generation;
        let probes = std::mem::take(&mut self.probes);
        for (index, mut probe) in probes.into_iter().enumerate() {
            let c = &self.tracked[index].config;
            let interval = c.interval_or(&self.settings);
            let timeout = c.timeout_or(&self.settings);
            let (ctx, sink, tx, limit, stop) = (
                self.ctx.clone(),
                self.sink.clone(),
                results_tx.clone(),
                Arc::clone(limit),
                cancel.clone(),
            );
            let name = c.name.to_string();
            runners.spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = ticker.tick() => {}
                    }
                    let run = {
                        let Ok(_slot) = limit.acquire().await else {
                            break;
                        };
                        probe.run(&ctx, timeout).await
                    };
                    if let Some((class, msg)) = run.outcome.class().zip(Some(run.outcome.message()))
                    {
                        tracing::debug!(check = %name, %class, error = %msg, "check failed");
                    }
                    sink.send_all(run.observations);
                    let at_ms = ctx.clock.wall_ms();
                    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
                    let result = CheckResult {
                        at_ms,
                        outcome: run.outcome,
                        latency_ms: run.latency.map(|l| l.as_secs_f64() * 1000.0),
                        value: run.value,
                    };
                    let finished = Finished {
                        generation,
                        index,
                        result,
                        next_run_ms: at_ms.saturating_add(interval_ms),
                    };
                    if tx.send(finished).await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    fn answer(&self, q: Query) {
        match q {
            Query::Recent { name, reply } => {
                let found = self
                    .tracked
                    .iter()
                    .find(|t| t.config.name.as_str() == name)
                    .map(|t| (Self::status_of(t), t.recent.iter().cloned().collect()));
                let _ = reply.send(found);
            }
            Query::Replace { reply, .. } => {
                let _ = reply.send(Err("the checks are busy".to_string()));
            }
        }
    }

    fn on_result(&mut self, f: Finished) {
        let now = self.ctx.clock.monotonic();
        let Some(t) = self.tracked.get_mut(f.index) else {
            return;
        };
        t.runs += 1;
        t.next_run_ms = Some(f.next_run_ms);
        if let Some(class) = f.result.outcome.class() {
            *t.failures.entry(class).or_insert(0) += 1;
        }
        t.warning = match &f.result.outcome {
            CheckOutcome::NoData { message } => Some(message.clone()),
            _ => None,
        };
        // What the dependencies see of this check: whether it is down, and
        // whether it is doubtful (not known to pass).
        let seen = |m: &CheckMachine| {
            (
                m.state(),
                m.state() != CheckState::Passing || m.failures_in_row() > 0,
            )
        };
        let before = seen(&t.machine);
        t.machine.observe(f.result.outcome.ok(), now);
        let moved = seen(&t.machine) != before;
        if t.recent.len() >= RECENT_RESULTS {
            t.recent.pop_front();
        }
        t.recent.push_back(f.result.clone());
        t.last = Some(f.result.clone());
        // Settling walks every check; when what the dependencies see of
        // this one has not moved, nothing can move (the last settle left
        // every state as its inputs say).
        // A change of state is published at once, so that the status never
        // lags the transitions it announces; a result that changes no state
        // waits for the next tick (with hundreds of checks, copying every
        // status on every result was most of the checks' CPU).
        if moved && self.settle(Some((f.index, f.result))) {
            self.dirty = false;
            self.publish();
        } else {
            self.dirty = true;
        }
    }

    /// Applies the dependencies to every check's own verdict and sends out
    /// each change of state. `cause` is the result that started it. Returns
    /// whether any check changed state.
    fn settle(&mut self, cause: Option<(usize, CheckResult)>) -> bool {
        let now = self.ctx.clock.monotonic();
        let now_ms = self.ctx.clock.wall_ms();
        let mut changed = false;
        // Unblocking can change a verdict, which can block or unblock
        // others: repeat until nothing moves (bounded by the number of checks).
        for _ in 0..=self.tracked.len() {
            // Down: failing. Doubtful: not known to pass (no verdict yet, or
            // failures on the way to failing). A check whose dependency is
            // down is blocked; one that fails while a dependency is doubtful
            // is blocked too, so that a fault of the dependency, not yet
            // confirmed, never has its dependents healed first.
            let down: std::collections::HashSet<String> = self
                .tracked
                .iter()
                .filter(|t| t.machine.state() == CheckState::Failing)
                .map(|t| t.config.name.to_string())
                .collect();
            let doubtful: std::collections::HashSet<String> = self
                .tracked
                .iter()
                .filter(|t| {
                    t.machine.state() != CheckState::Passing || t.machine.failures_in_row() > 0
                })
                .map(|t| t.config.name.to_string())
                .collect();
            let blocked = self.deps.blocked(|d| down.contains(d));
            let waiting = self.deps.blocked(|d| doubtful.contains(d));
            let mut moved = false;
            for (i, t) in self.tracked.iter_mut().enumerate() {
                let mut by = blocked
                    .get(t.config.name.as_str())
                    .cloned()
                    .unwrap_or_default();
                if by.is_empty() && t.machine.state() == CheckState::Failing {
                    by = waiting
                        .get(t.config.name.as_str())
                        .cloned()
                        .unwrap_or_default();
                }
                let was_blocked = t.state == CheckState::Blocked;
                if was_blocked && by.is_empty() {
                    // Its dependency is back: what it says now counts, afresh.
                    t.machine.reset(now);
                }
                let state = if by.is_empty() {
                    t.machine.state()
                } else {
                    CheckState::Blocked
                };
                t.blocked_by = by.clone();
                if state != t.state {
                    let result = cause
                        .as_ref()
                        .filter(|(index, _)| *index == i)
                        .map(|(_, r)| r.clone());
                    let reason = match (state, &result) {
                        (CheckState::Blocked, _) => format!("blocked by {}", by.join(", ")),
                        (_, None) if was_blocked => "its dependencies pass again".to_string(),
                        (_, Some(r)) => r.outcome.message().to_string(),
                        (_, None) => String::new(),
                    };
                    let record = TransitionRecord {
                        check: t.config.name.to_string(),
                        at_ms: now_ms,
                        from: t.state,
                        to: state,
                        result,
                        reason,
                    };
                    tracing::info!(check = %record.check, from = %record.from, to = %record.to, reason = %record.reason, "check state changed");
                    t.state = state;
                    t.since_ms = now_ms;
                    moved = true;
                    if self.transitions.try_send(record).is_err() {
                        tracing::error!(check = %t.config.name.as_str(), "a check transition could not be handed on (queue full)");
                    }
                }
            }
            changed |= moved;
            if !moved {
                break;
            }
        }
        changed
    }
}

/// What a check is about.
pub fn subject_of(c: &CheckConfig) -> CheckSubject {
    CheckSubject {
        container: c.container.clone(),
        service: c.service.clone(),
        process: (c.kind == CheckKind::Process).then(|| c.name.to_string()),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// A check's run is a future held by its runner for the whole run and
    /// moved into its timeouts: buffers or TLS sessions inside it made an
    /// HTTP check's 12.5 KiB, copied at every run of every check.
    #[test]
    fn a_run_of_every_kind_is_a_small_future() {
        let ctx = CheckContext {
            clock: Arc::new(aegis_core::SystemClock::default()),
            proc_root: "/proc".into(),
            latest: None,
            containers: None,
        };
        for fields in [
            "kind = \"http\"\nurl = \"http://127.0.0.1:1/\"",
            "kind = \"http\"\nurl = \"https://127.0.0.1:1/\"",
            "kind = \"tcp\"\naddress = \"127.0.0.1:1\"",
            "kind = \"tls\"\naddress = \"127.0.0.1:1\"",
            "kind = \"program\"\nargv = [\"true\"]",
            "kind = \"process\"\ncomm = \"x\"",
            "kind = \"filesystem\"\nmount = \"/\"\nwritable = true",
            "kind = \"series\"\nseries = \"x\"\nabove = 1.0",
            "kind = \"container\"\ncontainer = \"x\"",
        ] {
            let config = aegis_core::config::Config::from_toml(&format!(
                "[[checks]]\nname = \"x\"\n{fields}"
            ))
            .unwrap_or_else(|e| panic!("{fields}: {e}"));
            let c = config.effective_checks().remove(0);
            let mut probe = Probe::of(&c, &ctx).expect("probe");
            let size = std::mem::size_of_val(&probe.run(&ctx, Duration::from_secs(1)));
            assert!(size <= 2048, "{fields}: a run is a future of {size} bytes");
        }
    }
}
