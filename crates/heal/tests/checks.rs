//! Checks as the first trigger of healing, driven by a manual clock: a
//! failing check is healed and verified by the check passing again; its
//! target's heals back off 10, 20, 40... s up to 5 minutes and the wait
//! resets after 10 minutes passing; and a check that keeps failing is never
//! given up for good.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::{ActionSpec, ContainerAction};
use aegis_core::check::CheckSubject;
use aegis_core::config::{RuleConfig, RuleTrigger};
use aegis_core::status::{ActionRecord, RecordOutcome};
use aegis_core::{Clock, ManualClock, Severity};
use aegis_heal::engine::{CheckFailing, Engine, EngineConfig, EngineEnv, EngineHandle, Trigger};
use aegis_heal::exec::dispatch::BoxFuture;
use aegis_heal::exec::{ExecContext, ExecError, Executor};
use aegis_heal::guard::GuardConfig;
use aegis_heal::policy::Policy;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Succeeds, or fails while `broken` is set.
struct Stub(Arc<AtomicBool>);

impl Executor for Stub {
    fn execute<'a>(
        &'a self,
        _ctx: &'a ExecContext,
        _spec: &'a ActionSpec,
        target: &'a str,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        let broken = self.0.load(Ordering::SeqCst);
        let target = target.to_string();
        Box::pin(async move {
            if broken {
                Err(ExecError::Failed("still broken".into()))
            } else {
                Ok(format!("healed {target}"))
            }
        })
    }
}

struct Rig {
    clock: ManualClock,
    handle: EngineHandle,
    rx: mpsc::UnboundedReceiver<ActionRecord>,
    all: Vec<ActionRecord>,
    broken: Arc<AtomicBool>,
    _cancel: tokio_util::sync::DropGuard,
}

fn rig() -> Rig {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let (tx, rx) = mpsc::unbounded_channel();
    let broken = Arc::new(AtomicBool::new(false));
    let mut env = EngineEnv::new(
        Arc::new(clock.clone()),
        Arc::new(tx),
        Duration::from_secs(5),
    );
    env.executor = Arc::new(Stub(Arc::clone(&broken)));
    let rule = RuleConfig {
        name: "restart web".into(),
        on: RuleTrigger::CheckFailed,
        container: None,
        label: None,
        series: None,
        component: None,
        min_severity: None,
        check: Some("web".parse().expect("glob")),
        actions: vec![ActionSpec::Container(ContainerAction::restart())],
    };
    let config = EngineConfig {
        guard: GuardConfig {
            cooldown: Duration::ZERO,
            rate_max: 1_000,
            budget_max: 1_000,
            ..GuardConfig::default()
        },
        retries: 0,
        verify_window: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    let (engine, handle) = Engine::new(config, Policy::new(vec![rule], "aegis.autoheal"), env);
    let cancel = CancellationToken::new();
    tokio::spawn(engine.run(cancel.clone()));
    Rig {
        clock,
        handle,
        rx,
        all: Vec::new(),
        broken,
        _cancel: cancel.drop_guard(),
    }
}

fn failing() -> Trigger {
    Trigger::CheckFailed(CheckFailing {
        check: "web".into(),
        kind: "http".into(),
        subject: CheckSubject {
            container: Some("web-1".into()),
            ..CheckSubject::default()
        },
        severity: Severity::Warning,
        reason: "status 503".into(),
    })
}

fn passing() -> Trigger {
    Trigger::CheckStopped {
        check: "web".into(),
        passing: true,
    }
}

impl Rig {
    /// Lets the engine run its timers (time is paused: sleeping advances it).
    async fn settle(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(r) = self.rx.try_recv() {
            self.all.push(r);
        }
    }

    fn count(&self, outcome: RecordOutcome) -> usize {
        self.all.iter().filter(|r| r.outcome == outcome).count()
    }

    /// Moves the manual clock one second at a time until `outcome` has
    /// been recorded `n` times; returns the clock's seconds then.
    async fn until(&mut self, outcome: RecordOutcome, n: usize, limit_s: u64) -> u64 {
        for _ in 0..=limit_s {
            self.settle().await;
            if self.count(outcome) >= n {
                return self.clock.monotonic().as_secs();
            }
            self.clock.advance(Duration::from_secs(1));
        }
        panic!(
            "{outcome} was not recorded {n} times within {limit_s} s: {:?}",
            self.all
                .iter()
                .map(|r| format!("{}:{}:{}", r.incident, r.action, r.outcome))
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn heals_back_off_doubling_to_the_cap_and_reset_after_ten_minutes_passing() {
    let mut rig = rig();
    let mut attempts_at = Vec::new();
    for n in 1..=8 {
        assert!(rig.handle.trigger(failing()));
        attempts_at.push(rig.until(RecordOutcome::Succeeded, n, 400).await);
        // Verified by the check passing again; then it fails at once.
        assert!(rig.handle.trigger(passing()));
        rig.settle().await;
        assert_eq!(rig.count(RecordOutcome::Healed), n, "heal {n} not verified");
    }
    let waits: Vec<u64> = attempts_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300]);
    assert!(rig.count(RecordOutcome::BackingOff) >= 7);
    // The heals' target was the check's container.
    let decided = rig
        .all
        .iter()
        .find(|r| r.outcome == RecordOutcome::Succeeded)
        .expect("an attempt");
    assert_eq!(decided.reason, "healed web-1");
    // Ten minutes passing reset the wait: the next heal comes at once.
    for _ in 0..601 {
        rig.clock.advance(Duration::from_secs(1));
    }
    assert!(rig.handle.trigger(passing()));
    rig.settle().await;
    let before = rig.clock.monotonic().as_secs();
    assert!(rig.handle.trigger(failing()));
    let at = rig.until(RecordOutcome::Succeeded, 9, 30).await;
    assert_eq!(at, before, "the back-off did not reset");
    assert!(rig.handle.trigger(passing()));
    rig.settle().await;
    assert!(rig.handle.trigger(failing()));
    let next = rig.until(RecordOutcome::Succeeded, 10, 30).await;
    assert_eq!(next - at, 10);
}

#[tokio::test(start_paused = true)]
async fn a_check_that_keeps_failing_is_never_given_up_for_good() {
    let mut rig = rig();
    rig.broken.store(true, Ordering::SeqCst);
    assert!(rig.handle.trigger(failing()));
    // Each incident's ladder fails and gives up (a person is told); the
    // check still fails, so after the back-off a new incident tries again.
    let mut gave_up_at = Vec::new();
    for n in 1..=5 {
        gave_up_at.push(rig.until(RecordOutcome::GaveUp, n, 400).await);
    }
    let waits: Vec<u64> = gave_up_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits, vec![10, 20, 40, 80]);
    // Once it passes, no more tries.
    assert!(rig.handle.trigger(passing()));
    rig.settle().await;
    let attempts = rig.count(RecordOutcome::Failed);
    for _ in 0..400 {
        rig.clock.advance(Duration::from_secs(1));
    }
    rig.settle().await;
    assert_eq!(rig.count(RecordOutcome::Failed), attempts);
}

/// One fault, one incident: an anomaly on the target of a check's incident
/// joins it as evidence instead of opening an incident of its own.
#[tokio::test(start_paused = true)]
async fn an_anomaly_on_a_failing_checks_target_joins_its_incident() {
    let mut rig = rig();
    rig.broken.store(true, Ordering::SeqCst);
    assert!(rig.handle.trigger(failing()));
    rig.until(RecordOutcome::Failed, 1, 5).await;
    assert!(rig
        .handle
        .trigger(Trigger::AnomalyOpened(aegis_heal::engine::AnomalyOpened {
            id: 42,
            series: "endpoint_up/web".into(),
            target: "web".into(),
            component: "shift".into(),
            severity: Severity::Warning,
            explanation: "endpoint_up fell to 0".into(),
        })));
    rig.settle().await;
    let joined = rig
        .all
        .iter()
        .find(|r| r.outcome == RecordOutcome::Joined)
        .expect("the anomaly joined the incident");
    let decided = rig
        .all
        .iter()
        .filter(|r| r.outcome == RecordOutcome::Decided)
        .collect::<Vec<_>>();
    assert_eq!(decided.len(), 1, "a second incident was opened");
    assert_eq!(joined.incident, decided[0].incident);
    assert_eq!(joined.anomaly_id, Some(42));
}
