//! The healing engine: one task that owns the guard and every incident.
//!
//! A trigger (a container event, an anomaly) is matched to a rule; the
//! rule's ladder is climbed one rung at a time. Each rung passes the guard,
//! runs on its own task with a timeout and jittered retries, and is then
//! **verified**: the engine watches the signal that triggered it (the
//! container healthy and running again, the anomaly closed) for a recovery
//! window. Not healed: the next rung; no rung left: give up and alert. Every
//! decision, skip (with the guard's reason), attempt and verdict becomes an
//! [`ActionRecord`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aegis_collect::docker::{ContainerEvent, EventKind};
use aegis_core::action::{ActionSpec, Webhook};
use aegis_core::config::RuleTrigger;
use aegis_core::status::{ActionRecord, HealSummary};
use aegis_core::Clock;
use bollard::Docker;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::exec::{self, webhook::Alert, ExecError};
use crate::guard::{Guard, GuardConfig, GuardCounters, Outcome, Skip, TargetStatus, Ticket};
use crate::policy::{Policy, Symptom};

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
    /// Where processes are looked up for signals.
    pub proc_root: PathBuf,
    /// Process names never signalled.
    pub deny_processes: Vec<String>,
    /// Where give-ups are told.
    pub alert_webhook: Option<Webhook>,
    /// A `die` within this long of a `kill`/`stop` is an operator's stop.
    pub operator_grace: Duration,
    /// Root under which systemd is looked for (`/`).
    pub root: PathBuf,
    /// The watched processes: a `signal` action with `pid = 0` signals the
    /// process(es) of the incident's target by these, each by PID and start
    /// time as found at that moment.
    pub processes: Vec<aegis_core::config::ProcessConfig>,
}

/// Something that may need healing.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A container event from the Docker source.
    Container(ContainerEvent),
    /// An anomaly opened.
    AnomalyOpened {
        /// Its id.
        id: i64,
        /// Its series.
        series: String,
        /// What it concerns.
        target: String,
        /// The component that opened it.
        component: String,
        /// Its severity.
        severity: String,
        /// Its explanation.
        explanation: String,
    },
    /// An anomaly closed.
    AnomalyClosed {
        /// Its id.
        id: i64,
    },
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

/// A manual action from the API.
#[derive(Debug)]
pub struct Manual {
    /// What it is for (a name for records and the breaker).
    pub target: String,
    /// The action.
    pub spec: ActionSpec,
    /// Answered with the incident id once the action is decided.
    pub reply: oneshot::Sender<i64>,
}

enum Request {
    Status(oneshot::Sender<HealStatus>),
    Pause(bool, oneshot::Sender<()>),
    Manual(Manual),
}

/// A cloneable handle to the engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    triggers: mpsc::Sender<Trigger>,
    requests: mpsc::Sender<Request>,
    summary: tokio::sync::watch::Receiver<HealSummary>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl EngineHandle {
    /// The engine's figures, refreshed every quarter second.
    pub fn summary(&self) -> tokio::sync::watch::Receiver<HealSummary> {
        self.summary.clone()
    }

    /// Sends a trigger without waiting; false when the engine is busy or gone.
    pub fn trigger(&self, t: Trigger) -> bool {
        self.triggers.try_send(t).is_ok()
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
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Manual(Manual {
                target,
                spec,
                reply: tx,
            }))
            .await
            .ok()?;
        rx.await.ok()
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Acting,
    Verifying { deadline: Duration },
    Waiting { until: Duration, tries: u32 },
}

#[derive(Debug, Clone)]
struct Incident {
    id: i64,
    key: String,
    symptom_name: &'static str,
    target: String,
    container_id: Option<String>,
    anomaly_id: Option<i64>,
    ladder: Vec<ActionSpec>,
    rung: usize,
    phase: Phase,
    event_ns: Option<i64>,
}

struct AttemptDone {
    incident: i64,
    ticket: Ticket,
    result: Result<String, ExecError>,
    attempts: u32,
    started_ms: i64,
    duration: Duration,
    call_ns: i64,
    docker: Option<Docker>,
}

/// One record's content, before the engine stamps it.
struct Step<'a> {
    action: &'a str,
    outcome: &'a str,
    reason: String,
    attempt: u32,
    duration: Option<Duration>,
    detail: serde_json::Value,
}

struct VerifyDone {
    incident: i64,
    healed: bool,
    detail: String,
}

/// The engine; build with [`Engine::new`], run with [`Engine::run`].
pub struct Engine {
    config: EngineConfig,
    policy: Policy,
    guard: Guard,
    clock: Arc<dyn Clock>,
    records: mpsc::Sender<ActionRecord>,
    triggers: mpsc::Receiver<Trigger>,
    requests: mpsc::Receiver<Request>,
    incidents: HashMap<i64, Incident>,
    by_key: HashMap<String, i64>,
    next_incident: i64,
    operator_stops: HashMap<String, Duration>,
    docker: Option<Docker>,
    success: HashMap<(&'static str, &'static str), (u64, u64)>,
    attempts: JoinSet<AttemptDone>,
    verifications: JoinSet<VerifyDone>,
    outcomes: HashMap<(String, String), u64>,
    summary: tokio::sync::watch::Sender<HealSummary>,
}

fn symptom_name(t: RuleTrigger) -> &'static str {
    match t {
        RuleTrigger::ContainerUnhealthy => "container_unhealthy",
        RuleTrigger::ContainerDied => "container_died",
        RuleTrigger::ContainerOom => "container_oom",
        RuleTrigger::Anomaly => "anomaly",
    }
}

fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Engine {
    /// An engine and its handle. Records go to `records`; incident ids start
    /// at `next_incident`.
    pub fn new(
        config: EngineConfig,
        policy: Policy,
        clock: Arc<dyn Clock>,
        records: mpsc::Sender<ActionRecord>,
        next_incident: i64,
    ) -> (Self, EngineHandle) {
        let (ttx, triggers) = mpsc::channel(1024);
        let (rtx, requests) = mpsc::channel(64);
        let guard = Guard::new(config.guard.clone());
        let (summary, summary_rx) = tokio::sync::watch::channel(HealSummary::default());
        (
            Self {
                config,
                policy,
                guard,
                clock,
                records,
                triggers,
                requests,
                incidents: HashMap::new(),
                by_key: HashMap::new(),
                next_incident,
                operator_stops: HashMap::new(),
                docker: None,
                success: HashMap::new(),
                attempts: JoinSet::new(),
                verifications: JoinSet::new(),
                outcomes: HashMap::new(),
                summary,
            },
            EngineHandle {
                triggers: ttx,
                requests: rtx,
                summary: summary_rx,
            },
        )
    }

    /// How far back the records of an earlier run can still matter to the
    /// guard: hand [`Engine::remember`] the records since then.
    pub fn memory_horizon(&self) -> Duration {
        self.guard.horizon()
    }

    /// Takes in the attempts of earlier runs of the agent, oldest first (as
    /// `aegis_store::actions::attempts_since` gives them): each counts
    /// against its target's cooldown and rate limit and the host's budget,
    /// and its outcome goes to the target's breaker, so that restarting the
    /// agent does not reset them. Records that are not attempts are passed
    /// over. Returns the attempts taken in.
    pub fn remember(&mut self, past: &[ActionRecord]) -> usize {
        let now = self.clock.monotonic();
        let wall = self.clock.wall_ms();
        let mut taken = 0;
        for r in past.iter().filter(|r| r.attempt > 0) {
            let outcome = match r.outcome.as_str() {
                "succeeded" => Outcome::Succeeded,
                "failed" => Outcome::Failed,
                "not_attempted" => Outcome::NotAttempted,
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

    /// Runs until `cancel`. Attempts in flight are abandoned (their tasks
    /// end with the runtime's shutdown).
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(t) = self.triggers.recv() => self.on_trigger(t),
                Some(r) = self.requests.recv() => self.on_request(r),
                Some(done) = self.attempts.join_next(), if !self.attempts.is_empty() => {
                    if let Ok(done) = done {
                        self.on_attempt(done);
                    }
                }
                Some(done) = self.verifications.join_next(), if !self.verifications.is_empty() => {
                    if let Ok(done) = done {
                        self.on_verdict(done.incident, done.healed, &done.detail);
                    }
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn record(&mut self, inc: &Incident, step: Step<'_>) {
        let r = ActionRecord {
            id: 0,
            at_ms: self.clock.wall_ms(),
            incident: inc.id,
            anomaly_id: inc.anomaly_id,
            target: inc.target.clone(),
            action: step.action.to_string(),
            outcome: step.outcome.to_string(),
            reason: step.reason,
            attempt: step.attempt,
            duration_ms: step.duration.map(|d| d.as_secs_f64() * 1000.0),
            detail: step.detail,
        };
        tracing::info!(incident = r.incident, target = %r.target, action = %r.action, outcome = %r.outcome, reason = %r.reason, "healing");
        if self.outcomes.len() < 1_000 {
            *self
                .outcomes
                .entry((r.action.clone(), r.outcome.clone()))
                .or_insert(0) += 1;
        }
        if self.records.try_send(r).is_err() {
            tracing::error!("healing record dropped: the record channel is full");
        }
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::Status(reply) => {
                let now = self.clock.monotonic();
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
                let _ = reply.send(HealStatus {
                    paused: self.guard.paused(),
                    dry_run: self.guard.dry_run(),
                    in_flight: self.guard.in_flight(),
                    open_incidents: self.incidents.len(),
                    targets: self.guard.snapshot(now),
                    counters: self.guard.counters().clone(),
                    success,
                });
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
            Request::Manual(m) => {
                let id = self.open(
                    format!("manual:{}", m.target),
                    Symptom::Anomaly {
                        series: "manual".into(),
                        component: "manual".into(),
                        severity: "warning".into(),
                    },
                    "manual",
                    m.target,
                    None,
                    None,
                    vec![m.spec],
                    None,
                    "manual request".into(),
                );
                let _ = m.reply.send(id.unwrap_or(0));
            }
        }
    }

    fn on_trigger(&mut self, t: Trigger) {
        match t {
            Trigger::Container(e) => self.on_container(e),
            Trigger::AnomalyOpened {
                id,
                series,
                target,
                component,
                severity,
                explanation,
            } => {
                let symptom = Symptom::Anomaly {
                    series: series.clone(),
                    component,
                    severity,
                };
                let Some(rule) = self.policy.decide(&symptom) else {
                    return;
                };
                let (name, ladder) = (rule.name.clone(), rule.actions.clone());
                self.open(
                    format!("anomaly:{series}"),
                    symptom,
                    "anomaly",
                    target,
                    None,
                    Some(id),
                    ladder,
                    None,
                    format!("rule {name:?}: {explanation}"),
                );
            }
            Trigger::AnomalyClosed { id } => {
                let found = self
                    .incidents
                    .values()
                    .find(|i| {
                        i.anomaly_id == Some(id) && matches!(i.phase, Phase::Verifying { .. })
                    })
                    .map(|i| i.id);
                if let Some(inc) = found {
                    self.on_verdict(inc, true, "the anomaly closed");
                }
            }
        }
    }

    fn on_container(&mut self, e: ContainerEvent) {
        let now = self.clock.monotonic();
        let trigger = match &e.kind {
            EventKind::Kill | EventKind::Stop => {
                // Our own restarts also stop containers; either way a die
                // right after is not a crash.
                if self.operator_stops.len() > 10_000 {
                    self.operator_stops.clear();
                }
                self.operator_stops.insert(e.id.clone(), now);
                return;
            }
            EventKind::Start | EventKind::Destroy => {
                // The stop is over (started again, by a person or by the
                // engine coming back) or the container is gone: a check
                // failing from now on is a sickness again, even within the
                // grace that covered the stop.
                self.operator_stops.remove(&e.id);
                return;
            }
            EventKind::Health { status } if status == "unhealthy" => {
                // A container being stopped can fail its last check: that
                // is the stop, not a sickness.
                let stopping = self
                    .operator_stops
                    .get(&e.id)
                    .is_some_and(|t| now.saturating_sub(*t) <= self.config.operator_grace);
                if stopping {
                    return;
                }
                RuleTrigger::ContainerUnhealthy
            }
            EventKind::Die { exit_code } => {
                let stopped = self
                    .operator_stops
                    .get(&e.id)
                    .is_some_and(|t| now.saturating_sub(*t) <= self.config.operator_grace);
                if stopped || *exit_code == Some(0) {
                    return;
                }
                RuleTrigger::ContainerDied
            }
            EventKind::Oom => RuleTrigger::ContainerOom,
            _ => return,
        };
        // Our own action's side effects (a restart dies and starts) are not
        // new incidents.
        if self.by_key.contains_key(&format!("container:{}", e.id)) {
            return;
        }
        let symptom = Symptom::Container {
            trigger,
            name: e.name.clone(),
            labels: e.labels.clone(),
        };
        let Some(rule) = self.policy.decide(&symptom) else {
            tracing::debug!(container = %e.name, ?trigger, "no rule for this container; left alone");
            return;
        };
        let (name, ladder) = (rule.name.clone(), rule.actions.clone());
        self.open(
            format!("container:{}", e.id),
            symptom,
            symptom_name(trigger),
            e.name.clone(),
            Some(e.id.clone()),
            None,
            ladder,
            Some(e.docker_time_ns),
            format!(
                "rule {name:?}: Docker reported {:?}{}",
                e.kind,
                if e.from_stream {
                    ""
                } else {
                    " (found by polling)"
                }
            ),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        key: String,
        symptom: Symptom,
        symptom_name: &'static str,
        target: String,
        container_id: Option<String>,
        anomaly_id: Option<i64>,
        ladder: Vec<ActionSpec>,
        event_ns: Option<i64>,
        reason: String,
    ) -> Option<i64> {
        if self.by_key.contains_key(&key) {
            return None;
        }
        let id = self.next_incident;
        self.next_incident += 1;
        let _ = symptom;
        let inc = Incident {
            id,
            key: key.clone(),
            symptom_name,
            target,
            container_id,
            anomaly_id,
            ladder,
            rung: 0,
            phase: Phase::Acting,
            event_ns,
        };
        let enabled = self.config.enabled;
        self.record(
            &inc,
            Step {
                action: "none",
                outcome: if enabled { "decided" } else { "ignored" },
                reason,
                attempt: 0,
                duration: None,
                detail: json!({"symptom": symptom_name}),
            },
        );
        if !enabled {
            return Some(id);
        }
        self.incidents.insert(id, inc);
        self.by_key.insert(key, id);
        self.try_rung(id);
        Some(id)
    }

    fn close(&mut self, id: i64) {
        if let Some(inc) = self.incidents.remove(&id) {
            self.by_key.remove(&inc.key);
        }
    }

    fn target_of(inc: &Incident, spec: &ActionSpec) -> String {
        match spec {
            ActionSpec::Container(c) if !c.container.is_empty() => c.container.clone(),
            ActionSpec::Container(_) => inc.target.clone(),
            ActionSpec::RedisFlush(r) => format!("redis://{}", r.address),
            ActionSpec::MemcachedFlush(m) => format!("memcached://{}", m.address),
            ActionSpec::Signal(s) if s.pid == 0 => format!("process:{}", inc.target),
            ActionSpec::Signal(s) => format!("pid:{}", s.pid),
            ActionSpec::ServiceRestart(s) => format!("unit:{}", s.unit),
            ActionSpec::Command(c) => {
                format!("command:{}", c.argv.first().cloned().unwrap_or_default())
            }
            ActionSpec::Webhook(w) => w.url.clone(),
        }
    }

    fn try_rung(&mut self, id: i64) {
        let Some(inc) = self.incidents.get(&id).cloned() else {
            return;
        };
        let Some(spec) = inc.ladder.get(inc.rung).cloned() else {
            self.give_up(id, "every rung of the ladder was tried".into());
            return;
        };
        if let ActionSpec::Webhook(hook) = &spec {
            // Telling a person is the last resort and not a risk to the
            // target: no guard, only dry-run.
            self.alert(
                &inc,
                hook.clone(),
                "the ladder reached its alert rung".into(),
            );
            self.close(id);
            return;
        }
        let target = Self::target_of(&inc, &spec);
        let now = self.clock.monotonic();
        match self.guard.check(&target, now, self.clock.wall_ms()) {
            Ok(ticket) => self.start_attempt(&inc, spec, ticket),
            Err(skip) => self.on_skip(id, &inc, &spec, skip),
        }
    }

    fn on_skip(&mut self, id: i64, inc: &Incident, spec: &ActionSpec, skip: Skip) {
        let detail = json!({"rung": inc.rung, "skip": skip});
        let outcome = if skip == Skip::DryRun {
            "dry_run"
        } else {
            "skipped"
        };
        self.record(
            inc,
            Step {
                action: spec.name(),
                outcome,
                reason: skip.as_str().to_string(),
                attempt: 0,
                duration: None,
                detail,
            },
        );
        match skip {
            Skip::Shed => {
                // Queued: try again shortly, a few times. Never a failure.
                let tries = match inc.phase {
                    Phase::Waiting { tries, .. } => tries + 1,
                    _ => 1,
                };
                if tries > 20 {
                    self.give_up(id, "no free slot after 20 tries".into());
                } else if let Some(i) = self.incidents.get_mut(&id) {
                    i.phase = Phase::Waiting {
                        until: self.clock.monotonic() + Duration::from_millis(500),
                        tries,
                    };
                }
            }
            Skip::Cooldown { retry_in_s }
                if Duration::from_secs(retry_in_s) <= self.config.verify_window =>
            {
                if let Some(i) = self.incidents.get_mut(&id) {
                    i.phase = Phase::Waiting {
                        until: self.clock.monotonic() + Duration::from_secs(retry_in_s),
                        tries: 0,
                    };
                }
            }
            Skip::RateLimited { .. }
            | Skip::BreakerOpen { .. }
            | Skip::BudgetExhausted { .. }
            | Skip::Cooldown { .. } => {
                self.give_up(id, format!("the guard stopped healing: {}", skip.as_str()));
            }
            Skip::Paused | Skip::Maintenance | Skip::DryRun => self.close(id),
        }
    }

    fn start_attempt(&mut self, inc: &Incident, spec: ActionSpec, ticket: Ticket) {
        if let Some(i) = self.incidents.get_mut(&inc.id) {
            i.phase = Phase::Acting;
        }
        let config = self.config.clone();
        let docker = self.docker.clone();
        let container = inc.target.clone();
        let incident = inc.id;
        let started_ms = self.clock.wall_ms();
        let clock = Arc::clone(&self.clock);
        self.attempts.spawn(async move {
            let started = clock.monotonic();
            let call_ns = wall_ns();
            let mut attempts = 0;
            let mut delay = config.retry_backoff;
            let mut docker = docker;
            let result = loop {
                attempts += 1;
                let r = execute(&config, &mut docker, &spec, &container).await;
                match &r {
                    Err(e) if e.is_target_failure() && attempts <= config.retries => {
                        // Jittered exponential backoff: delay x [0.5, 1.5).
                        let jitter = 0.5 + rand::random::<f64>();
                        tokio::time::sleep(delay.mul_f64(jitter)).await;
                        delay = delay.saturating_mul(2);
                    }
                    _ => break r,
                }
            };
            AttemptDone {
                incident,
                ticket,
                result,
                attempts,
                started_ms,
                duration: clock.monotonic().saturating_sub(started),
                call_ns,
                docker,
            }
        });
    }

    fn on_attempt(&mut self, done: AttemptDone) {
        let now = self.clock.monotonic();
        let outcome = match &done.result {
            Ok(_) => Outcome::Succeeded,
            Err(e) if e.is_target_failure() => Outcome::Failed,
            Err(_) => Outcome::NotAttempted,
        };
        // Keep the client the attempt connected (verification needs it),
        // unless the engine proved unreachable.
        if let Err(ExecError::Unavailable(_)) = &done.result {
            self.docker = None;
        } else if done.docker.is_some() {
            self.docker = done.docker;
        }
        let target = done.ticket.target().to_string();
        self.guard.finish(done.ticket, outcome, now);
        let Some(inc) = self.incidents.get(&done.incident).cloned() else {
            return;
        };
        let spec = inc.ladder.get(inc.rung).cloned();
        let action = spec.as_ref().map_or("none", ActionSpec::name);
        // The guard's name for the target (a Redis address, a unit...), so
        // that a later run of the agent can remember this attempt.
        let mut detail = json!({
            "rung": inc.rung,
            "retries": done.attempts - 1,
            "started_ms": done.started_ms,
            "guard_target": target,
        });
        if let Some(ev) = inc.event_ns {
            detail["event_to_call_ms"] = json!((done.call_ns - ev) as f64 / 1e6);
        }
        match done.result {
            Ok(message) => {
                self.record(
                    &inc,
                    Step {
                        action,
                        outcome: "succeeded",
                        reason: message,
                        attempt: done.attempts,
                        duration: Some(done.duration),
                        detail,
                    },
                );
                self.verify(&inc);
            }
            Err(e) => {
                let outcome_name = if e.is_target_failure() {
                    "failed"
                } else {
                    "not_attempted"
                };
                self.record(
                    &inc,
                    Step {
                        action,
                        outcome: outcome_name,
                        reason: format!("{target}: {e}"),
                        attempt: done.attempts,
                        duration: Some(done.duration),
                        detail,
                    },
                );
                self.escalate(inc.id);
            }
        }
    }

    fn verify(&mut self, inc: &Incident) {
        let deadline = self.clock.monotonic() + self.config.verify_window;
        if let Some(i) = self.incidents.get_mut(&inc.id) {
            i.phase = Phase::Verifying { deadline };
        }
        // Containers: poll until running and healthy (or no health check).
        // Anomalies: the AnomalyClosed trigger decides, or the deadline.
        if let (Some(container), None) = (inc.container_id.clone(), inc.anomaly_id) {
            let window = self.config.verify_window;
            let incident = inc.id;
            let docker = self.docker.clone();
            self.verifications.spawn(async move {
                let docker = match docker {
                    Some(d) => Some(d),
                    None => aegis_collect::docker::connect().await.ok(),
                };
                let Some(docker) = docker else {
                    return VerifyDone {
                        incident,
                        healed: false,
                        detail: "no Docker engine to verify with".into(),
                    };
                };
                let end = tokio::time::Instant::now() + window;
                let mut last = String::from("not inspected");
                while tokio::time::Instant::now() < end {
                    if let Ok(c) = docker
                        .inspect_container(
                            &container,
                            None::<bollard::query_parameters::InspectContainerOptions>,
                        )
                        .await
                    {
                        let state = c.state.as_ref();
                        let running = state.and_then(|s| s.running).unwrap_or(false);
                        let health = state
                            .and_then(|s| s.health.as_ref())
                            .and_then(|h| h.status)
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "none".into());
                        last = format!("running={running}, health={health}");
                        if running && (health == "healthy" || health == "none" || health.is_empty())
                        {
                            return VerifyDone {
                                incident,
                                healed: true,
                                detail: last,
                            };
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                VerifyDone {
                    incident,
                    healed: false,
                    detail: format!("still {last} after {window:?}"),
                }
            });
        }
    }

    fn on_verdict(&mut self, id: i64, healed: bool, detail: &str) {
        let Some(inc) = self.incidents.get(&id).cloned() else {
            return;
        };
        if !matches!(inc.phase, Phase::Verifying { .. }) {
            return;
        }
        let action = inc.ladder.get(inc.rung).map_or("none", ActionSpec::name);
        let entry = self
            .success
            .entry((inc.symptom_name, action))
            .or_insert((0, 0));
        entry.1 += 1;
        if healed {
            entry.0 += 1;
        }
        self.record(
            &inc,
            Step {
                action,
                outcome: if healed { "healed" } else { "not_healed" },
                reason: detail.to_string(),
                attempt: 0,
                duration: None,
                detail: json!({"rung": inc.rung}),
            },
        );
        if healed {
            self.close(id);
        } else {
            self.escalate(id);
        }
    }

    fn escalate(&mut self, id: i64) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.rung += 1;
        }
        self.try_rung(id);
    }

    fn give_up(&mut self, id: i64, why: String) {
        let Some(inc) = self.incidents.get(&id).cloned() else {
            return;
        };
        self.record(
            &inc,
            Step {
                action: "none",
                outcome: "gave_up",
                reason: why.clone(),
                attempt: 0,
                duration: None,
                detail: json!({"rung": inc.rung}),
            },
        );
        if let Some(hook) = self.config.alert_webhook.clone() {
            self.alert(&inc, hook, why);
        }
        self.close(id);
    }

    fn alert(&mut self, inc: &Incident, hook: Webhook, why: String) {
        let now_ms = self.clock.wall_ms();
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(
            "alertname".to_string(),
            "AegisHealingNeedsAPerson".to_string(),
        );
        labels.insert("severity".to_string(), "critical".to_string());
        labels.insert("target".to_string(), inc.target.clone());
        labels.insert("symptom".to_string(), inc.symptom_name.to_string());
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(
            "summary".to_string(),
            format!("{} on {} was not healed", inc.symptom_name, inc.target),
        );
        annotations.insert("description".to_string(), why.clone());
        let alert = Alert {
            labels,
            annotations,
            starts_at: exec::webhook::rfc3339(now_ms),
            ends_at: None,
            generator_url: String::new(),
        };
        if self.guard.dry_run() {
            self.record(
                inc,
                Step {
                    action: "webhook",
                    outcome: "dry_run",
                    reason: format!("would alert {}: {why}", hook.url),
                    attempt: 0,
                    duration: None,
                    detail: json!({}),
                },
            );
            return;
        }
        let records = self.records.clone();
        let base = ActionRecord {
            id: 0,
            at_ms: now_ms,
            incident: inc.id,
            anomaly_id: inc.anomaly_id,
            target: hook.url.clone(),
            action: "webhook".into(),
            outcome: String::new(),
            reason: String::new(),
            attempt: 1,
            duration_ms: None,
            detail: json!({"about": inc.target}),
        };
        let timeout = self.config.attempt_timeout;
        // Delivery never blocks the engine.
        tokio::spawn(async move {
            let r = exec::webhook::post(&hook, &[alert], timeout).await;
            let mut rec = base;
            match r {
                Ok(m) => {
                    rec.outcome = "alerted".into();
                    rec.reason = m;
                }
                Err(e) => {
                    rec.outcome = "failed".into();
                    rec.reason = e.to_string();
                }
            }
            let _ = records.send(rec).await;
        });
    }

    fn publish(&mut self) {
        let now = self.clock.monotonic();
        let targets = self.guard.snapshot(now);
        let mut outcomes: Vec<(String, String, u64)> = self
            .outcomes
            .iter()
            .map(|((a, o), n)| (a.clone(), o.clone(), *n))
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
        let now = self.clock.monotonic();
        let mut retry = Vec::new();
        let mut expired = Vec::new();
        for inc in self.incidents.values() {
            match inc.phase {
                Phase::Waiting { until, .. } if now >= until => retry.push(inc.id),
                // Anomaly verifications end at their deadline; container
                // ones are decided by their polling task.
                Phase::Verifying { deadline } if now >= deadline && inc.container_id.is_none() => {
                    expired.push(inc.id)
                }
                _ => {}
            }
        }
        for id in retry {
            self.try_rung(id);
        }
        for id in expired {
            self.on_verdict(
                id,
                false,
                "the anomaly did not close within the verify window",
            );
        }
    }
}

/// Runs one action (no guard, no retry: the caller does both).
async fn execute(
    config: &EngineConfig,
    docker: &mut Option<Docker>,
    spec: &ActionSpec,
    container: &str,
) -> Result<String, ExecError> {
    let t = config.attempt_timeout;
    match spec {
        ActionSpec::Container(c) => {
            if docker.is_none() {
                *docker = Some(
                    aegis_collect::docker::connect()
                        .await
                        .map_err(ExecError::Unavailable)?,
                );
            }
            let Some(d) = docker.as_ref() else {
                return Err(ExecError::Unavailable("no Docker engine".into()));
            };
            let name = if c.container.is_empty() {
                container
            } else {
                c.container.as_str()
            };
            exec::container::run(d, c, name, t).await
        }
        ActionSpec::RedisFlush(r) => exec::redis::run(r, t).await,
        ActionSpec::MemcachedFlush(m) => exec::memcached::run(m, t).await,
        ActionSpec::Signal(s) if s.pid == 0 => signal_watched(config, s, container),
        ActionSpec::Signal(s) => exec::signal::run(s, &config.proc_root, &config.deny_processes),
        ActionSpec::ServiceRestart(s) => exec::service::run(s, &config.root, t).await,
        ActionSpec::Command(c) => exec::process::run_command(c, t).await,
        ActionSpec::Webhook(w) => exec::webhook::post(w, &[], t).await,
    }
}

/// Signals the watched process(es) named `target`: found now, each signalled
/// by its PID and the start time just read, so a PID recycled in between is
/// refused by the signal executor itself.
fn signal_watched(
    config: &EngineConfig,
    s: &aegis_core::action::SignalProcess,
    target: &str,
) -> Result<String, ExecError> {
    let Some(watched) = config.processes.iter().find(|p| p.name == target) else {
        return Err(ExecError::Refused(format!(
            "pid 0 means the watched process of the incident, and no [[processes]] entry is named {target:?}"
        )));
    };
    let found = aegis_collect::process::find(&config.proc_root, watched);
    if found.is_empty() {
        return Err(ExecError::Refused(format!("no process of {target:?} runs")));
    }
    let mut done = Vec::new();
    for p in found {
        let exact = aegis_core::action::SignalProcess {
            pid: p.pid,
            start_time: p.start_time,
            signal: s.signal,
        };
        done.push(exec::signal::run(
            &exact,
            &config.proc_root,
            &config.deny_processes,
        )?);
    }
    Ok(done.join("; "))
}
