//! The healing engine: one task that owns the guard and every incident.
//!
//! A trigger (a container event, an anomaly, a manual request) is matched to
//! a rule ([`trigger`]); the rule's ladder is climbed one rung at a time
//! ([`incident`]). Each rung passes the guard, runs on its own task with a
//! timeout and jittered retries ([`attempt`]), and is then **verified**
//! ([`verify`]): the engine watches the signal that triggered it (the
//! container healthy and running again, the anomaly closed) for a recovery
//! window. Not healed: the next rung; no rung left: give up and tell a
//! person. Every decision, skip (with the guard's reason), attempt and
//! verdict becomes an [`ActionRecord`] ([`record`]).
//!
//! An attempt that panics is still an attempt: its task's id maps back to
//! its guard ticket, which is returned as a failure, the failure is
//! recorded and the incident goes on. Nothing can leave the engine waiting.

mod attempt;
mod checks;
mod dependents;
mod incident;
mod record;
mod trigger;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::{ActionSpec, Webhook};
use aegis_core::container::ContainerInfo;
use aegis_core::status::{ActionRecord, HealSummary, RecordOutcome};
use aegis_core::Clock;
use aegis_notify::Notifier;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::exec::container::Containers;
use crate::exec::{Dispatch, ExecContext, Executor};
use crate::guard::{Guard, GuardConfig, GuardCounters, TargetStatus};
use crate::policy::Policy;

pub use record::Recorder;
pub use trigger::{AnomalyOpened, CheckFailing, Trigger};

/// Triggers waiting for the engine at most (events beyond are refused and
/// the sender says so).
pub const TRIGGER_QUEUE: usize = 4_096;
/// Requests (status, pause, manual actions) waiting at most.
const REQUEST_QUEUE: usize = 64;
/// How often the engine looks at timers and publishes its summary while
/// something is under way (an incident, a check waiting to be retried), and
/// at the latest this long after anything happened.
const TICK: Duration = Duration::from_millis(250);
/// How often it does when nothing is under way but a breaker is open or
/// half-open: its state changes with time, and the summary shows it.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often it does when nothing is under way and every breaker is closed:
/// nothing then changes with time alone, and every trigger or request wakes
/// the engine at once. A quiet host costs the engine one wake-up in ten
/// seconds.
const QUIET_TICK: Duration = Duration::from_secs(10);

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Take actions at all (false: decisions are recorded as `ignored`).
    pub enabled: bool,
    /// The guard.
    pub guard: GuardConfig,
    /// Time allowed to one attempt.
    pub attempt_timeout: Duration,
    /// Retries of a failed attempt.
    pub retries: u32,
    /// First retry delay (doubles, with jitter).
    pub retry_backoff: Duration,
    /// How long recovery is watched for.
    pub verify_window: Duration,
    /// Where give-ups are told (besides the notifier's receivers).
    pub alert_webhook: Option<Webhook>,
    /// A `die` within this long of a `kill`/`stop` is an operator's stop.
    pub operator_grace: Duration,
    /// How the heals of a check's target back off.
    pub check_backoff: aegis_core::check::HealBackoffPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            guard: GuardConfig::default(),
            attempt_timeout: Duration::from_secs(30),
            retries: 1,
            retry_backoff: Duration::from_secs(1),
            verify_window: Duration::from_secs(60),
            alert_webhook: None,
            operator_grace: Duration::from_secs(15),
            check_backoff: aegis_core::check::HealBackoffPolicy::default(),
        }
    }
}

/// Healing settings a reload can change while the engine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The engine's and its guard's settings.
    pub engine: EngineConfig,
    /// Time allowed to one attempt, for the executors.
    pub attempt_timeout: Duration,
    /// Process names never signalled.
    pub deny_processes: Vec<String>,
}

/// What the engine works with: time, where records go, who executes and
/// who tells people.
pub struct EngineEnv {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where every record goes.
    pub records: Arc<dyn Recorder>,
    /// Who runs actions.
    pub executor: Arc<dyn Executor>,
    /// What executors need from the host.
    pub exec: Arc<ExecContext>,
    /// Who tells people (give-ups, alert rungs).
    pub notifier: Option<Notifier>,
    /// The first incident id of this run.
    pub next_incident: i64,
    /// The containers as the container source last saw them (their
    /// labels, restart policies, network modes and states), when it runs.
    pub inventory: Option<watch::Receiver<Arc<Vec<ContainerInfo>>>>,
}

impl EngineEnv {
    /// The real executors on this host, with records going to `records`.
    pub fn new(
        clock: Arc<dyn Clock>,
        records: Arc<dyn Recorder>,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            clock,
            records,
            executor: Arc::new(Dispatch),
            exec: Arc::new(ExecContext {
                attempt_timeout,
                proc_root: "/proc".into(),
                deny_processes: Vec::new(),
                root: "/".into(),
                processes: Arc::new(crate::exec::dispatch::NoProcesses),
                containers: Arc::new(Containers::new()),
            }),
            notifier: None,
            next_incident: 1,
            inventory: None,
        }
    }
}

/// The engine's state for `GET /api/v1/breakers`.
#[derive(Debug, Clone, Serialize)]
pub struct HealStatus {
    /// Whether actions are paused.
    pub paused: bool,
    /// Whether dry-run is on.
    pub dry_run: bool,
    /// Attempts running.
    pub in_flight: u32,
    /// Incidents being handled.
    pub open_incidents: usize,
    /// Each target's breaker and recent actions.
    pub targets: Vec<TargetStatus>,
    /// The guard's decisions since start.
    pub counters: GuardCounters,
    /// Verified success per (symptom, action).
    pub success: Vec<SuccessRate>,
}

/// How often an action healed a symptom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuccessRate {
    /// The trigger (`container_unhealthy`, `anomaly`...).
    pub symptom: String,
    /// The action.
    pub action: String,
    /// Verified healed.
    pub healed: u64,
    /// Verdicts given.
    pub verdicts: u64,
}

enum Request {
    Status(oneshot::Sender<HealStatus>),
    Pause(bool, oneshot::Sender<()>),
    Manual {
        target: String,
        spec: ActionSpec,
        reply: oneshot::Sender<i64>,
    },
}

/// A cloneable handle to the engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    triggers: mpsc::Sender<Trigger>,
    requests: mpsc::Sender<Request>,
    summary: watch::Receiver<HealSummary>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl EngineHandle {
    /// The engine's figures, refreshed every quarter second.
    pub fn summary(&self) -> watch::Receiver<HealSummary> {
        self.summary.clone()
    }

    /// Sends a trigger without waiting; false when the engine is busy or gone.
    pub fn trigger(&self, t: Trigger) -> bool {
        self.triggers.try_send(t).is_ok()
    }

    /// Sends a trigger, waiting for room (for sources that must not lose
    /// one and can afford to wait).
    pub async fn trigger_wait(&self, t: Trigger) -> bool {
        self.triggers.send(t).await.is_ok()
    }

    /// The engine's status.
    pub async fn status(&self) -> Option<HealStatus> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Pauses or resumes actions.
    pub async fn set_paused(&self, paused: bool) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .requests
            .send(Request::Pause(paused, tx))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.is_ok()
    }

    /// Runs a manual action through the guard; returns its incident id.
    pub async fn manual(&self, target: String, spec: ActionSpec) -> Option<i64> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Manual {
                target,
                spec,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }
}

/// The engine; build with [`Engine::new`], run with [`Engine::run`].
pub struct Engine {
    config: EngineConfig,
    policy: Policy,
    guard: Guard,
    env: EngineEnv,
    triggers: mpsc::Receiver<Trigger>,
    requests: mpsc::Receiver<Request>,
    incidents: incident::Incidents,
    containers: trigger::ContainerMemory,
    checks: checks::CheckWatches,
    attempts: attempt::Attempts,
    verifications: verify::Verifications,
    deliveries: record::Deliveries,
    success: HashMap<(&'static str, &'static str), (u64, u64)>,
    outcomes: HashMap<(&'static str, RecordOutcome), u64>,
    dependents: dependents::Cascade,
    labels: dependents::LabelProblems,
    summary: watch::Sender<HealSummary>,
}

impl Engine {
    /// An engine and its handle.
    pub fn new(config: EngineConfig, policy: Policy, env: EngineEnv) -> (Self, EngineHandle) {
        let (ttx, triggers) = mpsc::channel(TRIGGER_QUEUE);
        let (rtx, requests) = mpsc::channel(REQUEST_QUEUE);
        let guard = Guard::new(config.guard.clone());
        let (summary, summary_rx) = watch::channel(HealSummary::default());
        let next = env.next_incident;
        let check_backoff = config.check_backoff;
        (
            Self {
                config,
                policy,
                guard,
                env,
                triggers,
                requests,
                incidents: incident::Incidents::new(next),
                containers: trigger::ContainerMemory::default(),
                checks: checks::CheckWatches::new(check_backoff),
                attempts: attempt::Attempts::default(),
                verifications: verify::Verifications::default(),
                deliveries: record::Deliveries::default(),
                success: HashMap::new(),
                outcomes: HashMap::new(),
                dependents: dependents::Cascade::default(),
                labels: dependents::LabelProblems::default(),
                summary,
            },
            EngineHandle {
                triggers: ttx,
                requests: rtx,
                summary: summary_rx,
            },
        )
    }

    /// Takes reloaded settings (see [`Trigger::Settings`]).
    fn reconfigure(&mut self, settings: Settings) {
        let now = self.env.clock.monotonic();
        self.guard.reconfigure(settings.engine.guard.clone(), now);
        self.env.exec = Arc::new(ExecContext {
            attempt_timeout: settings.attempt_timeout,
            deny_processes: settings.deny_processes,
            ..(*self.env.exec).clone()
        });
        // How a check's target backs off is not a setting of the file.
        let check_backoff = self.config.check_backoff;
        self.config = EngineConfig {
            check_backoff,
            ..settings.engine
        };
        tracing::info!(
            enabled = self.config.enabled,
            dry_run = self.config.guard.dry_run,
            maintenance_windows = self.config.guard.maintenance.len(),
            "healing settings reloaded"
        );
    }

    /// How far back the records of an earlier run can still matter to the
    /// guard: hand [`Engine::remember`] the records since then.
    pub fn memory_horizon(&self) -> Duration {
        self.guard.horizon()
    }

    /// Takes in the attempts of earlier runs of the agent, oldest first (as
    /// the store's `attempts_since` gives them): each counts against its
    /// target's cooldown and rate limit and the host's budget, and its
    /// outcome goes to the target's breaker, so that restarting the agent
    /// does not reset them. Records that are not attempts are passed over.
    /// Returns the attempts taken in.
    pub fn remember(&mut self, past: &[ActionRecord]) -> usize {
        let now = self.env.clock.monotonic();
        let wall = self.env.clock.wall_ms();
        let mut taken = 0;
        for r in past.iter().filter(|r| r.attempt > 0) {
            let outcome = match r.outcome {
                RecordOutcome::Succeeded => crate::guard::Outcome::Succeeded,
                RecordOutcome::Failed => crate::guard::Outcome::Failed,
                RecordOutcome::NotAttempted => crate::guard::Outcome::NotAttempted,
                _ => continue,
            };
            let target = r.detail["guard_target"].as_str().unwrap_or(&r.target);
            // The guard counted the attempt when it began.
            let began = r.detail["started_ms"].as_i64().unwrap_or(r.at_ms);
            let ago = Duration::from_millis(u64::try_from(wall - began).unwrap_or(0));
            self.guard.remember(target, ago, now, outcome);
            taken += 1;
        }
        taken
    }

    /// Runs until `cancel`. Attempts in flight are abandoned.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut next = tokio::time::Instant::now() + TICK;
        loop {
            let tick = tokio::time::sleep_until(next);
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(t) = self.triggers.recv() => self.on_trigger(t),
                Some(r) = self.requests.recv() => self.on_request(r),
                Some(joined) = self.attempts.join_next(), if !self.attempts.is_empty() => {
                    self.on_attempt_joined(joined);
                }
                Some(joined) = self.verifications.join_next(), if !self.verifications.is_empty() => {
                    self.on_verification_joined(joined);
                }
                Some(done) = self.deliveries.join_next(), if !self.deliveries.is_empty() => {
                    self.on_delivery(done);
                }
                _ = tick => {
                    self.on_tick();
                    let every = if self.under_way() {
                        TICK
                    } else if self.breakers_closed() {
                        QUIET_TICK
                    } else {
                        IDLE_TICK
                    };
                    next = tokio::time::Instant::now() + every;
                    continue;
                }
            }
            // Something happened: its effects are published (and its timers
            // looked at) within a tick.
            next = next.min(tokio::time::Instant::now() + TICK);
        }
    }

    /// Whether every breaker was closed at the last publication.
    fn breakers_closed(&self) -> bool {
        let s = self.summary.borrow();
        s.breakers_open == 0 && s.breakers_half_open == 0
    }

    /// Whether anything waits on a timer: an incident (waiting, queued,
    /// attempting, verifying) or a failing check's next try.
    fn under_way(&self) -> bool {
        self.incidents.len() > 0
            || !self.attempts.is_empty()
            || !self.verifications.is_empty()
            || !self.deliveries.is_empty()
            || self.checks.retry_pending()
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Pause(paused, reply) => {
                self.guard.set_paused(paused);
                tracing::warn!(
                    paused,
                    "healing {}",
                    if paused { "paused" } else { "resumed" }
                );
                let _ = reply.send(());
            }
            Request::Manual {
                target,
                spec,
                reply,
            } => {
                let id = self.open(incident::Opening::manual(target, spec));
                let _ = reply.send(id.unwrap_or(0));
            }
        }
    }

    fn status(&mut self) -> HealStatus {
        let now = self.env.clock.monotonic();
        let mut success: Vec<SuccessRate> = self
            .success
            .iter()
            .map(|((s, a), (healed, verdicts))| SuccessRate {
                symptom: s.to_string(),
                action: a.to_string(),
                healed: *healed,
                verdicts: *verdicts,
            })
            .collect();
        success.sort_by(|a, b| (&a.symptom, &a.action).cmp(&(&b.symptom, &b.action)));
        HealStatus {
            paused: self.guard.paused(),
            dry_run: self.guard.dry_run(),
            in_flight: self.guard.in_flight(),
            open_incidents: self.incidents.len(),
            targets: self.guard.snapshot(now),
            counters: self.guard.counters().clone(),
            success,
        }
    }

    fn publish(&mut self) {
        self.read_inventory_labels();
        let now = self.env.clock.monotonic();
        let targets = self.guard.snapshot(now);
        let mut outcomes: Vec<(String, String, u64)> = self
            .outcomes
            .iter()
            .map(|((a, o), n)| (a.to_string(), o.as_str().to_string(), *n))
            .collect();
        outcomes.sort();
        let mut skipped: Vec<(String, u64)> = self
            .guard
            .counters()
            .skipped
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        skipped.sort();
        let summary = HealSummary {
            paused: self.guard.paused(),
            dry_run: self.guard.dry_run(),
            in_flight: self.guard.in_flight(),
            open_incidents: self.incidents.len() as u64,
            breakers_open: targets
                .iter()
                .filter(|t| matches!(t.breaker, crate::breaker::BreakerState::Open { .. }))
                .count() as u64,
            breakers_half_open: targets
                .iter()
                .filter(|t| matches!(t.breaker, crate::breaker::BreakerState::HalfOpen { .. }))
                .count() as u64,
            outcomes,
            skipped,
            label_problems: self.labels.list(),
        };
        self.summary.send_if_modified(|s| {
            if *s == summary {
                false
            } else {
                *s = summary;
                true
            }
        });
    }

    fn on_tick(&mut self) {
        self.publish();
        self.retry_waiting();
        self.retry_checks();
        self.expire_verifications();
    }
}
