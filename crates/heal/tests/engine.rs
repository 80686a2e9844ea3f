//! The engine end to end without Docker: manual actions through the guard,
//! records of every step, a rate-limited target that stops being acted on
//! and is reported to a real webhook receiver on loopback, and how container
//! events around an operator's stop are read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_collect::docker::{ContainerEvent, EventKind};
use aegis_core::action::{ActionSpec, RunCommand, Webhook};
use aegis_core::status::ActionRecord;
use aegis_core::SystemClock;
use aegis_heal::engine::{Engine, EngineConfig, Trigger};
use aegis_heal::guard::GuardConfig;
use aegis_heal::policy::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A webhook receiver: answers 200 and keeps every body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            kept.lock().expect("lock").push(body.to_string());
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/api/v2/alerts"), bodies)
}

fn config(webhook: &str) -> EngineConfig {
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
        proc_root: "/proc".into(),
        deny_processes: Vec::new(),
        alert_webhook: Some(Webhook {
            url: webhook.to_string(),
            token: None,
        }),
        operator_grace: Duration::from_secs(15),
        root: "/".into(),
        processes: Vec::new(),
    }
}

async fn collect(
    rx: &mut mpsc::Receiver<ActionRecord>,
    all: &mut Vec<ActionRecord>,
    until: impl Fn(&[ActionRecord]) -> bool,
) -> Vec<ActionRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !until(all) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => all.push(r),
            _ => break,
        }
    }
    all.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_target_stops_being_acted_on_and_a_person_is_told() {
    let (url, bodies) = receiver().await;
    let (tx, mut rx) = mpsc::channel(256);
    let (engine, handle) = Engine::new(
        config(&url),
        Policy::new(Vec::new(), "aegis.autoheal"),
        Arc::new(SystemClock::new()),
        tx,
        1,
    );
    let cancel = CancellationToken::new();
    tokio::spawn(engine.run(cancel.clone()));
    let spec = ActionSpec::Command(RunCommand {
        argv: vec!["true".into()],
    });
    let mut all = Vec::new();
    for i in 1..=3 {
        let incident = handle
            .manual("cache".into(), spec.clone())
            .await
            .expect("engine answers");
        assert_eq!(incident, i);
        // Each manual incident runs, is not verifiable (no anomaly closes
        // it) and gives up; wait for its end before the next.
        let records = collect(&mut rx, &mut all, |r| {
            r.iter().any(|r| r.incident == i && r.outcome == "gave_up")
        })
        .await;
        let outcomes: Vec<String> = records
            .iter()
            .filter(|r| r.incident == i)
            .map(|r| format!("{}:{}", r.action, r.outcome))
            .collect();
        if i <= 2 {
            assert_eq!(
                outcomes,
                vec![
                    "none:decided",
                    "command:succeeded",
                    "command:not_healed",
                    "none:gave_up"
                ],
                "incident {i}"
            );
        } else {
            // The limit (2 in ten minutes) is reached: skipped, given up.
            assert_eq!(
                outcomes,
                vec!["none:decided", "command:skipped", "none:gave_up"],
                "incident {i}"
            );
            let skipped = records
                .iter()
                .find(|r| r.outcome == "skipped")
                .expect("skip");
            assert_eq!(skipped.reason, "rate_limited");
            assert_eq!(skipped.detail["skip"]["reason"], "rate_limited");
        }
    }
    // Every give-up was posted to the receiver, in Alertmanager's format.
    let alerted = collect(&mut rx, &mut all, |r| {
        r.iter().filter(|r| r.outcome == "alerted").count() >= 3
    })
    .await;
    assert_eq!(
        alerted.iter().filter(|r| r.outcome == "alerted").count(),
        3,
        "{alerted:?}"
    );
    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 3);
    // Deliveries run on their own tasks: they may arrive in any order.
    let alerts: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).expect("json"))
        .collect();
    let alert = alerts
        .iter()
        .find(|a| {
            a[0]["annotations"]["description"]
                .as_str()
                .unwrap_or("")
                .contains("rate_limited")
        })
        .expect("the rate-limited give-up was posted");
    assert_eq!(alert[0]["labels"]["alertname"], "AegisHealingNeedsAPerson");
    assert_eq!(alert[0]["labels"]["target"], "cache");
    assert!(alert[0]["annotations"]["description"]
        .as_str()
        .unwrap_or("")
        .contains("rate_limited"));
    assert!(alert[0]["startsAt"].as_str().unwrap_or("").ends_with('Z'));

    let status = handle.status().await.expect("status");
    let target = status
        .targets
        .iter()
        .find(|t| t.target == "command:true")
        .expect("target");
    assert_eq!(target.recent_actions, 2);
    assert_eq!(status.counters.skipped.get("rate_limited"), Some(&1));
    cancel.cancel();
}

#[tokio::test]
async fn paused_and_dry_run_engines_do_nothing_but_record_why() {
    let (url, _bodies) = receiver().await;
    let (tx, mut rx) = mpsc::channel(256);
    let mut c = config(&url);
    c.alert_webhook = None;
    let (engine, handle) = Engine::new(
        c.clone(),
        Policy::new(Vec::new(), "x"),
        Arc::new(SystemClock::new()),
        tx,
        1,
    );
    let cancel = CancellationToken::new();
    tokio::spawn(engine.run(cancel.clone()));
    assert!(handle.set_paused(true).await);
    let spec = ActionSpec::Command(RunCommand {
        argv: vec!["touch".into(), "/tmp/aegis-should-not-exist".into()],
    });
    let _ = std::fs::remove_file("/tmp/aegis-should-not-exist");
    handle
        .manual("t".into(), spec.clone())
        .await
        .expect("engine");
    let records = collect(&mut rx, &mut Vec::new(), |r| {
        r.iter().any(|r| r.outcome == "skipped")
    })
    .await;
    assert!(
        records
            .iter()
            .any(|r| r.outcome == "skipped" && r.reason == "paused"),
        "{records:?}"
    );
    assert!(!std::path::Path::new("/tmp/aegis-should-not-exist").exists());
    cancel.cancel();

    let (tx, mut rx) = mpsc::channel(256);
    c.guard.dry_run = true;
    let (engine, handle) = Engine::new(
        c,
        Policy::new(Vec::new(), "x"),
        Arc::new(SystemClock::new()),
        tx,
        1,
    );
    let cancel = CancellationToken::new();
    tokio::spawn(engine.run(cancel.clone()));
    handle.manual("t".into(), spec).await.expect("engine");
    let records = collect(&mut rx, &mut Vec::new(), |r| {
        r.iter().any(|r| r.outcome == "dry_run")
    })
    .await;
    assert!(
        records
            .iter()
            .any(|r| r.outcome == "dry_run" && r.action == "command"),
        "{records:?}"
    );
    assert!(!std::path::Path::new("/tmp/aegis-should-not-exist").exists());
    cancel.cancel();
}

/// A container event of the opted-in container `web`.
fn event(kind: EventKind) -> Trigger {
    Trigger::Container(ContainerEvent {
        id: "c0ffee".into(),
        name: "web".into(),
        labels: [("aegis.autoheal".to_string(), "true".to_string())].into(),
        kind,
        docker_time_ns: 0,
        from_stream: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_failing_during_a_stop_is_the_stop_but_after_a_start_it_is_a_sickness() {
    let (tx, mut rx) = mpsc::channel(256);
    let mut c = config("http://127.0.0.1:9/unused");
    c.alert_webhook = None;
    let (engine, handle) = Engine::new(
        c,
        Policy::new(Vec::new(), "aegis.autoheal"),
        Arc::new(SystemClock::new()),
        tx,
        1,
    );
    let cancel = CancellationToken::new();
    tokio::spawn(engine.run(cancel.clone()));
    let unhealthy = || {
        event(EventKind::Health {
            status: "unhealthy".into(),
        })
    };

    // Being stopped, its last check fails: not a sickness.
    assert!(handle.trigger(event(EventKind::Kill)));
    assert!(handle.trigger(unhealthy()));
    assert!(handle.trigger(event(EventKind::Die {
        exit_code: Some(143)
    })));
    assert!(handle.trigger(event(EventKind::Stop)));
    let quiet = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(quiet.is_err(), "acted on a stop: {quiet:?}");

    // Started again (by a person, or by the engine coming back), it turns
    // unhealthy well within the grace that covered the stop: healed.
    assert!(handle.trigger(event(EventKind::Start)));
    assert!(handle.trigger(unhealthy()));
    let records = collect(&mut rx, &mut Vec::new(), |r| {
        r.iter().any(|r| r.outcome == "decided")
    })
    .await;
    let decided = records
        .iter()
        .find(|r| r.outcome == "decided")
        .unwrap_or_else(|| panic!("not acted on: {records:?}"));
    assert_eq!(decided.target, "web");
    assert!(decided.reason.contains("unhealthy"), "{}", decided.reason);
    cancel.cancel();
}
