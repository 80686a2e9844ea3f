//! Attempts: one rung's action on its own task, with a timeout and
//! jittered retries, tracked so that however it ends (returns, fails,
//! panics) its guard ticket comes back and the incident goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::ActionSpec;
use aegis_core::backoff::{entropy_seed, BackoffPolicy};
use aegis_core::status::RecordOutcome;
use serde_json::json;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument;

use super::record::Step;
use super::Engine;
use crate::exec::ExecError;
use crate::guard::{Outcome, Ticket};

/// What an attempt's task returns.
pub(super) struct AttemptDone {
    result: Result<String, ExecError>,
    attempts: u32,
    duration: Duration,
    call_ns: i64,
}

/// What the engine keeps of an attempt while its task runs: enough to
/// finish it whatever happens to the task.
struct Running {
    incident: i64,
    ticket: Ticket,
    started_ms: i64,
}

/// The attempts in flight.
#[derive(Default)]
pub(super) struct Attempts {
    tasks: JoinSet<AttemptDone>,
    running: HashMap<Id, Running>,
}

/// How a joined attempt ended.
pub(super) type Joined = Result<(Id, AttemptDone), JoinError>;

impl Attempts {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub async fn join_next(&mut self) -> Option<Joined> {
        self.tasks.join_next_with_id().await
    }
}

/// Wall-clock nanoseconds, to compare with the engine's event times (which
/// are wall-clock too).
pub(super) fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The text of a panic's payload.
fn panic_text(e: JoinError) -> String {
    if e.is_cancelled() {
        return "the attempt was cancelled".into();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Engine {
    pub(super) fn start_attempt(
        &mut self,
        inc: &super::incident::Incident,
        spec: ActionSpec,
        ticket: Ticket,
    ) {
        if let Some(i) = self.incidents.get_mut(inc.id) {
            i.phase = super::incident::Phase::Acting;
        }
        self.check_heal_started(inc);
        let executor = Arc::clone(&self.env.executor);
        let ctx = Arc::clone(&self.env.exec);
        let clock = Arc::clone(&self.env.clock);
        let target = inc.default_target(&spec);
        let retries = self.config.retries;
        let backoff = BackoffPolicy::doubling(
            self.config.retry_backoff,
            self.config.retry_backoff.saturating_mul(64),
        )
        .with_jitter(0.5);
        let span = tracing::info_span!("attempt", incident = inc.id, action = spec.name(), target = %target);
        let handle = self.attempts.tasks.spawn(
            async move {
                let started = clock.monotonic();
                let call_ns = wall_ns();
                let mut attempts = 0;
                let mut delays = backoff.start(entropy_seed());
                let result = loop {
                    attempts += 1;
                    let r = executor.execute(&ctx, &spec, &target).await;
                    match &r {
                        Err(e) if e.is_target_failure() && attempts <= retries => {
                            tokio::time::sleep(delays.next_delay()).await;
                        }
                        _ => break r,
                    }
                };
                AttemptDone {
                    result,
                    attempts,
                    duration: clock.monotonic().saturating_sub(started),
                    call_ns,
                }
            }
            .instrument(span),
        );
        self.attempts.running.insert(
            handle.id(),
            Running {
                incident: inc.id,
                ticket,
                started_ms: self.env.clock.wall_ms(),
            },
        );
    }

    pub(super) fn on_attempt_joined(&mut self, joined: Joined) {
        let (id, done) = match joined {
            Ok((id, done)) => (id, done),
            Err(e) => {
                let id = e.id();
                let text = panic_text(e);
                tracing::error!(error = %text, "a healing attempt panicked");
                (
                    id,
                    AttemptDone {
                        result: Err(ExecError::Failed(format!("the attempt panicked: {text}"))),
                        attempts: 1,
                        duration: Duration::ZERO,
                        call_ns: wall_ns(),
                    },
                )
            }
        };
        let Some(running) = self.attempts.running.remove(&id) else {
            tracing::error!("an attempt ended that the engine did not start");
            return;
        };
        self.on_attempt(running, done);
        // A slot is free: the oldest queued incident gets it now, not at
        // the next tick.
        self.retry_queued();
    }

    fn on_attempt(&mut self, running: Running, done: AttemptDone) {
        let now = self.env.clock.monotonic();
        let outcome = match &done.result {
            Ok(_) => Outcome::Succeeded,
            Err(e) if e.is_target_failure() => Outcome::Failed,
            Err(_) => Outcome::NotAttempted,
        };
        let target = running.ticket.target().to_string();
        self.guard.finish(running.ticket, outcome, now);
        let Some(inc) = self.incidents.get(running.incident).cloned() else {
            return;
        };
        let action = inc.action();
        // The guard's name for the target (a Redis address, a unit...), so
        // that a later run of the agent can remember this attempt.
        let mut detail = json!({
            "rung": inc.rung,
            "retries": done.attempts.saturating_sub(1),
            "started_ms": running.started_ms,
            "guard_target": target,
        });
        if let Some(ev) = inc.event_ns {
            detail["event_to_call_ms"] = json!((done.call_ns - ev) as f64 / 1e6);
        }
        let step = |outcome, reason| Step {
            action,
            outcome,
            reason,
            attempt: done.attempts,
            duration: Some(done.duration),
            detail: detail.clone(),
        };
        match done.result {
            Ok(message) => {
                self.record(&inc, step(RecordOutcome::Succeeded, message));
                self.verify(&inc);
            }
            Err(e) => {
                let outcome = if e.is_target_failure() {
                    RecordOutcome::Failed
                } else {
                    RecordOutcome::NotAttempted
                };
                self.record(&inc, step(outcome, format!("{target}: {e}")));
                self.escalate(inc.id);
            }
        }
    }
}
