//! The engine end to end without a container engine: manual actions
//! through the guard, records of every step, a rate-limited target that
//! stops being acted on and is reported to a real webhook receiver on
//! loopback, how container events around an operator's stop are read, and
//! an executor that panics mid-attempt without stalling healing.

use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::{ActionSpec, RunCommand, Webhook};
use aegis_core::container::{ContainerEvent, ContainerHealth, EventKind};
use aegis_core::status::{ActionRecord, RecordOutcome};
use aegis_core::SystemClock;
use aegis_heal::engine::{Engine, EngineConfig, EngineEnv, EngineHandle, Trigger};
use aegis_heal::exec::dispatch::BoxFuture;
use aegis_heal::exec::{ExecContext, ExecError, Executor};
use aegis_heal::guard::GuardConfig;
use aegis_heal::policy::Policy;
use aegis_notify::NotifierConfig;
use aegis_testkit::{HttpStub, Reply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn config(webhook: Option<&str>) -> EngineConfig {
    EngineConfig {
        enabled: true,
        guard: GuardConfig {
            cooldown: Duration::ZERO,
            rate_max: 2,
            rate_window: Duration::from_secs(600),
            ..GuardConfig::default()
        },
        attempt_timeout: Duration::from_secs(5),
        retries: 0,
        retry_backoff: Duration::from_millis(10),
        verify_window: Duration::from_millis(300),
        alert_webhook: webhook.map(|url| Webhook {
            url: url.parse().expect("url"),
            token: None,
        }),
        operator_grace: Duration::from_secs(15),
        ..EngineConfig::default()
    }
}

/// An engine running on its own task, its records on `rx`.
struct Running {
    handle: EngineHandle,
    rx: mpsc::UnboundedReceiver<ActionRecord>,
    all: Vec<ActionRecord>,
    cancel: CancellationToken,
}

fn start(config: EngineConfig, executor: Option<Arc<dyn Executor>>) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let notifier = aegis_notify::start(
        NotifierConfig {
            retry: aegis_core::backoff::BackoffPolicy::doubling(
                Duration::from_millis(10),
                Duration::from_millis(50),
            ),
            ..NotifierConfig::default()
        },
        cancel.child_token(),
        &tasks,
    );
    let mut env = EngineEnv::new(
        Arc::new(SystemClock::new()),
        Arc::new(tx),
        config.attempt_timeout,
    );
    env.notifier = Some(notifier);
    if let Some(e) = executor {
        env.executor = e;
    }
    let (engine, handle) = Engine::new(config, Policy::new(Vec::new(), "aegis.autoheal"), env);
    tokio::spawn(engine.run(cancel.clone()));
    Running {
        handle,
        rx,
        all: Vec::new(),
        cancel,
    }
}

impl Running {
    /// Collects records until `until` holds (10 s at most); all so far.
    async fn until(&mut self, until: impl Fn(&[ActionRecord]) -> bool) -> Vec<ActionRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !until(&self.all) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => self.all.push(r),
                _ => break,
            }
        }
        self.all.clone()
    }

    fn of(&self, incident: i64) -> Vec<String> {
        self.all
            .iter()
            .filter(|r| r.incident == incident)
            .map(|r| format!("{}:{}", r.action, r.outcome))
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn command(argv: &[&str]) -> ActionSpec {
    ActionSpec::Command(RunCommand {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_target_stops_being_acted_on_and_a_person_is_told() {
    let receiver = HttpStub::start();
    let mut engine = start(config(Some(&receiver.url("/api/v2/alerts"))), None);
    let spec = command(&["true"]);
    for i in 1..=3 {
        let incident = engine
            .handle
            .manual("cache".into(), spec.clone())
            .await
            .expect("engine answers");
        assert_eq!(incident, i);
        // A manual action is its own verdict: it worked, so it healed.
        // The third is over the limit (2 in ten minutes): skipped, given up.
        engine
            .until(|r| {
                r.iter().any(|r| {
                    r.incident == i
                        && matches!(r.outcome, RecordOutcome::Healed | RecordOutcome::GaveUp)
                })
            })
            .await;
        if i <= 2 {
            assert_eq!(
                engine.of(i),
                vec!["none:decided", "command:succeeded", "command:healed"],
                "incident {i}"
            );
        } else {
            assert_eq!(
                engine.of(i),
                vec!["none:decided", "command:skipped", "none:gave_up"],
                "incident {i}"
            );
            let skipped = engine
                .all
                .iter()
                .find(|r| r.outcome == RecordOutcome::Skipped)
                .expect("skip");
            assert_eq!(skipped.reason, "rate_limited");
            assert_eq!(skipped.detail["skip"]["reason"], "rate_limited");
        }
    }
    // The give-up was posted to the receiver, in Alertmanager's format, and
    // its delivery recorded.
    engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Alerted))
        .await;
    let posts = receiver.requests_to("/api/v2/alerts");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let alert = posts[0].json();
    assert_eq!(alert[0]["labels"]["alertname"], "AegisHealingNeedsAPerson");
    assert_eq!(alert[0]["labels"]["target"], "cache");
    assert_eq!(alert[0]["labels"]["severity"], "critical");
    assert!(alert[0]["annotations"]["description"]
        .as_str()
        .unwrap_or("")
        .contains("rate_limited"));
    assert!(alert[0]["startsAt"].as_str().unwrap_or("").ends_with('Z'));

    let status = engine.handle.status().await.expect("status");
    let target = status
        .targets
        .iter()
        .find(|t| t.target == "command:true")
        .expect("target");
    assert_eq!(target.recent_actions, 2);
    assert_eq!(status.counters.skipped.get("rate_limited"), Some(&1));
}

/// Regression (defect 9 of the hardening issue): a manual command that
/// exits 0 was judged "not healed: the anomaly did not close" and its
/// incident given up. A manual action has no symptom to watch.
#[tokio::test]
async fn a_manual_command_that_works_is_healed_not_given_up() {
    let mut engine = start(config(None), None);
    let id = engine
        .handle
        .manual("logs".into(), command(&["true"]))
        .await
        .expect("engine");
    engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Healed))
        .await;
    assert_eq!(
        engine.of(id),
        vec!["none:decided", "command:succeeded", "command:healed"]
    );
    assert!(!engine
        .all
        .iter()
        .any(|r| r.outcome == RecordOutcome::GaveUp));
}

#[tokio::test]
async fn paused_and_dry_run_engines_do_nothing_but_record_why() {
    let marker = tempfile::tempdir().expect("tempdir");
    let file = marker.path().join("should-not-exist");
    let spec = command(&["touch", file.to_str().expect("utf8")]);

    let mut engine = start(config(None), None);
    assert!(engine.handle.set_paused(true).await);
    engine
        .handle
        .manual("t".into(), spec.clone())
        .await
        .expect("engine");
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Skipped))
        .await;
    assert!(
        records
            .iter()
            .any(|r| r.outcome == RecordOutcome::Skipped && r.reason == "paused"),
        "{records:?}"
    );
    assert!(!file.exists());

    let mut c = config(None);
    c.guard.dry_run = true;
    let mut engine = start(c, None);
    engine
        .handle
        .manual("t".into(), spec)
        .await
        .expect("engine");
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::DryRun))
        .await;
    assert!(
        records
            .iter()
            .any(|r| r.outcome == RecordOutcome::DryRun && r.action == "command"),
        "{records:?}"
    );
    assert!(!file.exists());
}

/// A container event of the opted-in container `web`.
fn event(kind: EventKind) -> Trigger {
    Trigger::Container(ContainerEvent {
        id: "c0ffee".into(),
        name: "web".into(),
        labels: [("aegis.autoheal".to_string(), "true".to_string())].into(),
        kind,
        engine_time_ns: 0,
        from_stream: true,
        inspected: None,
    })
}

fn unhealthy() -> Trigger {
    event(EventKind::Health {
        status: ContainerHealth::Unhealthy,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_failing_during_a_stop_is_the_stop_but_after_a_start_it_is_a_sickness() {
    let mut engine = start(config(None), None);
    // Being stopped, its last check fails: not a sickness.
    assert!(engine.handle.trigger(event(EventKind::Kill)));
    assert!(engine.handle.trigger(unhealthy()));
    assert!(engine.handle.trigger(event(EventKind::Die {
        exit_code: Some(143)
    })));
    assert!(engine.handle.trigger(event(EventKind::Stop)));
    let quiet = tokio::time::timeout(Duration::from_millis(500), engine.rx.recv()).await;
    assert!(quiet.is_err(), "acted on a stop: {quiet:?}");

    // Started again (by a person, or by the engine coming back), it turns
    // unhealthy well within the grace that covered the stop: healed.
    assert!(engine.handle.trigger(event(EventKind::Start)));
    assert!(engine.handle.trigger(unhealthy()));
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Decided))
        .await;
    let decided = records
        .iter()
        .find(|r| r.outcome == RecordOutcome::Decided)
        .unwrap_or_else(|| panic!("not acted on: {records:?}"));
    assert_eq!(decided.target, "web");
    assert!(decided.reason.contains("unhealthy"), "{}", decided.reason);
}

/// Runs `true` for every action, except that the first call panics.
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl Executor for PanicsOnce {
    fn execute<'a>(
        &'a self,
        _ctx: &'a ExecContext,
        _spec: &'a ActionSpec,
        _target: &'a str,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        Box::pin(async move {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("the executor broke");
            }
            Ok("done".to_string())
        })
    }
}

/// Regression (the house issue, and item 13 of the hardening issue): an
/// attempt whose executor panicked was dropped by the engine's join loop:
/// its guard ticket never came back, `in_flight` never fell and the
/// incident's key stayed taken, so healing of that target stalled for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_attempt_returns_its_ticket_is_recorded_failed_and_healing_goes_on() {
    let mut c = config(None);
    c.guard.max_concurrent = 1;
    let mut engine = start(c, Some(Arc::new(PanicsOnce(false.into()))));
    let first = engine
        .handle
        .manual("web".into(), command(&["true"]))
        .await
        .expect("engine");
    let records = engine
        .until(|r| {
            r.iter()
                .any(|r| r.incident == first && r.outcome == RecordOutcome::GaveUp)
        })
        .await;
    let failed = records
        .iter()
        .find(|r| r.incident == first && r.outcome == RecordOutcome::Failed)
        .unwrap_or_else(|| panic!("the panicked attempt was not recorded: {records:?}"));
    assert!(failed.reason.contains("panicked"), "{}", failed.reason);
    assert!(
        failed.reason.contains("the executor broke"),
        "{}",
        failed.reason
    );
    let status = engine.handle.status().await.expect("status");
    assert_eq!(status.in_flight, 0, "the ticket was not returned");
    assert_eq!(status.open_incidents, 0, "the incident is still open");

    // The same target again, with the only slot: handled.
    let second = engine
        .handle
        .manual("web".into(), command(&["true"]))
        .await
        .expect("engine");
    engine
        .until(|r| {
            r.iter()
                .any(|r| r.incident == second && r.outcome == RecordOutcome::Healed)
        })
        .await;
    assert_eq!(
        engine.of(second),
        vec!["none:decided", "command:succeeded", "command:healed"]
    );
}

/// Fails every action, half a second after it began: an incident stays
/// open long enough for more events to arrive.
struct Slow;

impl Executor for Slow {
    fn execute<'a>(
        &'a self,
        _ctx: &'a ExecContext,
        _spec: &'a ActionSpec,
        _target: &'a str,
    ) -> BoxFuture<'a, Result<String, ExecError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Err(ExecError::Failed("still broken".into()))
        })
    }
}

/// Regression (defect 2 of the hardening issue): events of a container
/// already being healed left no record at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unhealthy_episode_gets_a_decision_or_a_skip_and_duplicates_are_one() {
    let mut engine = start(config(None), Some(Arc::new(Slow)));
    // One episode reported twice (the stream, then the poller): one decision.
    assert!(engine.handle.trigger(unhealthy()));
    assert!(engine.handle.trigger(unhealthy()));
    // A second episode while the first incident still runs: a skip that
    // names the incident.
    assert!(engine.handle.trigger(event(EventKind::Health {
        status: ContainerHealth::Healthy
    })));
    assert!(engine.handle.trigger(unhealthy()));
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Skipped))
        .await;
    let decided = records
        .iter()
        .filter(|r| r.outcome == RecordOutcome::Decided)
        .count();
    assert_eq!(decided, 1, "{records:?}");
    let skip = records
        .iter()
        .find(|r| r.outcome == RecordOutcome::Skipped)
        .expect("a skip");
    assert!(
        skip.reason.contains("already handling web"),
        "{}",
        skip.reason
    );
    let _ = Reply::ok("");
}

/// Regression (a CI run of the 30-container test): the agent's own restart
/// stops the container, a health check failing during that stop fell in
/// the stop's grace and left no record, though an incident handled the
/// container. Now it is answered with a skip naming the incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_failing_during_the_incidents_own_restart_is_answered() {
    let mut engine = start(config(None), Some(Arc::new(Slow)));
    assert!(engine.handle.trigger(unhealthy()));
    engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Decided))
        .await;
    // The restart stops it; healthy, then failing its last check.
    assert!(engine.handle.trigger(event(EventKind::Kill)));
    assert!(engine.handle.trigger(event(EventKind::Health {
        status: ContainerHealth::Healthy
    })));
    assert!(engine.handle.trigger(unhealthy()));
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Skipped))
        .await;
    let skip = records
        .iter()
        .find(|r| r.outcome == RecordOutcome::Skipped)
        .unwrap_or_else(|| panic!("the event was not answered: {records:?}"));
    assert!(
        skip.reason.contains("already handling web"),
        "{}",
        skip.reason
    );
}

/// A poll that asked before the stream's last event reports an older state:
/// it neither opens an episode nor hides the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_older_than_the_stream_is_ignored_and_a_newer_one_is_heard() {
    let mut engine = start(config(None), None);
    let at = |kind: EventKind, ns: i64, from_stream: bool| {
        let Trigger::Container(mut e) = event(kind) else {
            unreachable!()
        };
        e.engine_time_ns = ns;
        e.from_stream = from_stream;
        Trigger::Container(e)
    };
    let sick = || EventKind::Health {
        status: ContainerHealth::Unhealthy,
    };
    assert!(engine.handle.trigger(at(
        EventKind::Health {
            status: ContainerHealth::Healthy
        },
        10,
        true
    )));
    // Asked at 5, before the stream said healthy at 10: stale.
    assert!(engine.handle.trigger(at(sick(), 5, false)));
    let quiet = tokio::time::timeout(Duration::from_millis(500), engine.rx.recv()).await;
    assert!(quiet.is_err(), "acted on a stale poll: {quiet:?}");
    // The stream's own unhealthy is a new episode, decided.
    assert!(engine.handle.trigger(at(sick(), 20, true)));
    let records = engine
        .until(|r| r.iter().any(|r| r.outcome == RecordOutcome::Decided))
        .await;
    assert!(
        records.iter().any(|r| r.outcome == RecordOutcome::Decided),
        "{records:?}"
    );
}

/// Regression (found by the 30-container benchmark): with every slot busy
/// an incident was retried 20 times, 500 ms apart, a skip recorded each
/// time, then given up "no free slot after 20 tries", and its container was
/// never restarted: 12 of 30 containers turning unhealthy at once. Now it
/// waits its turn, in order, recorded once; a freed slot goes to the
/// oldest waiting incident at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_waiting_for_a_slot_are_served_in_order_and_never_given_up() {
    /// Takes a second per action and says when each began.
    struct OneSecond(std::sync::Mutex<Vec<String>>);
    impl Executor for OneSecond {
        fn execute<'a>(
            &'a self,
            _ctx: &'a ExecContext,
            _spec: &'a ActionSpec,
            target: &'a str,
        ) -> BoxFuture<'a, Result<String, ExecError>> {
            Box::pin(async move {
                self.0.lock().expect("lock").push(target.to_string());
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok("restarted".to_string())
            })
        }
    }
    let mut c = config(None);
    c.guard.max_concurrent = 1;
    c.guard.rate_max = 100;
    c.guard.budget_max = 100;
    let executor = Arc::new(OneSecond(std::sync::Mutex::new(Vec::new())));
    let mut engine = start(c, Some(executor.clone()));
    // Thirteen containers unhealthy at once, one slot: the last waits 12 s,
    // longer than the old 20 tries of 500 ms.
    let names: Vec<String> = (0..13).map(|i| format!("web-{i:02}")).collect();
    for n in &names {
        assert!(engine.handle.trigger(Trigger::Container(ContainerEvent {
            id: format!("id-{n}"),
            name: n.clone(),
            labels: [("aegis.autoheal".to_string(), "true".to_string())].into(),
            kind: EventKind::Health {
                status: ContainerHealth::Unhealthy,
            },
            engine_time_ns: 0,
            from_stream: true,
            inspected: None,
        })));
    }
    let started = |r: &[ActionRecord], n: &str| {
        r.iter()
            .any(|r| r.target == n && r.outcome == RecordOutcome::Succeeded)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !names.iter().all(|n| started(&engine.all, n)) {
        match tokio::time::timeout_at(deadline, engine.rx.recv()).await {
            Ok(Some(r)) => engine.all.push(r),
            _ => break,
        }
    }
    let records = engine.all.clone();
    for n in &names {
        assert!(
            started(&records, n),
            "{n} was never restarted: {records:#?}"
        );
        let waits = records
            .iter()
            .filter(|r| r.target == *n && r.outcome == RecordOutcome::Skipped)
            .count();
        assert!(waits <= 1, "{n}: its wait recorded {waits} times");
    }
    // None given up before its attempt (after it, the verdict is the
    // engine's: no container engine here, so not healed).
    for n in &names {
        let of: Vec<RecordOutcome> = records
            .iter()
            .filter(|r| r.target == *n)
            .map(|r| r.outcome)
            .collect();
        let gave_up = of.iter().position(|o| *o == RecordOutcome::GaveUp);
        let attempt = of.iter().position(|o| *o == RecordOutcome::Succeeded);
        assert!(gave_up.is_none_or(|g| Some(g) > attempt), "{n}: {of:?}");
    }
    // Served in the order they came.
    let order = executor.0.lock().expect("lock").clone();
    let first_of_each: Vec<&String> = order
        .iter()
        .enumerate()
        .filter(|(i, t)| !order[..*i].contains(t))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(first_of_each, names.iter().collect::<Vec<_>>());
}
