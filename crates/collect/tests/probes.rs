//! Endpoint probes against real HTTP servers on loopback.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_collect::probe::{probe_once, spawn_probes, EndpointView, ErrorClass};
use aegis_collect::sink;
use aegis_core::breaker::BreakerState;
use aegis_core::config::{ProbeConfig, ProbeSettings};
use aegis_core::SystemClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A server answering every request with `status` and `body` after `delay`
/// (`None`: never answers). The status can be changed while it runs.
async fn server(status: Arc<AtomicU16>, body: &'static str, delay: Option<Duration>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let status = Arc::clone(&status);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let Some(delay) = delay else {
                    // Hang: keep the connection open, say nothing.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                tokio::time::sleep(delay).await;
                let code = status.load(Ordering::Relaxed);
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/health")
}

fn probe(name: &str, url: &str) -> ProbeConfig {
    ProbeConfig {
        name: name.parse().expect("name"),
        url: url.parse().expect("url"),
        method: Default::default(),
        expect_status: "200-299".parse().expect("range"),
        body_contains: None,
        json_pointer: None,
        json_equals: None,
        timeout: None,
        interval: None,
        tls_verify: true,
    }
}

fn ok_status() -> Arc<AtomicU16> {
    Arc::new(AtomicU16::new(200))
}

/// Probes running on their own tasks until the token is cancelled.
fn running(probes: Vec<ProbeConfig>, settings: ProbeSettings) -> (EndpointView, CancellationToken) {
    let (tx, _rx) = sink::channel(10_000);
    let cancel = CancellationToken::new();
    let view = spawn_probes(
        probes,
        settings,
        Arc::new(SystemClock::new()),
        tx,
        cancel.clone(),
        &tokio_util::task::TaskTracker::new(),
    )
    .expect("spawn");
    (view, cancel)
}

#[tokio::test]
async fn each_outcome_gets_its_class() {
    let client = reqwest::Client::new();
    let t = Duration::from_millis(500);

    let healthy = server(ok_status(), "all ok", Some(Duration::ZERO)).await;
    let mut p = probe("healthy", &healthy);
    p.body_contains = Some("ok".into());
    let r = probe_once(&client, &p, t).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.status, Some(200));
    assert!(r.latency.is_some_and(|l| l < t));

    let slow = server(ok_status(), "late", Some(Duration::from_secs(2))).await;
    let r = probe_once(&client, &probe("slow", &slow), t).await;
    assert_eq!(r.error.map(|e| e.0), Some(ErrorClass::Timeout));

    let failing = server(Arc::new(AtomicU16::new(503)), "down", Some(Duration::ZERO)).await;
    let r = probe_once(&client, &probe("failing", &failing), t).await;
    assert_eq!(
        (r.status, r.error.as_ref().map(|e| e.0)),
        (Some(503), Some(ErrorClass::BadStatus)),
        "{r:?}"
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}/")
    };
    let r = probe_once(&client, &probe("refused", &closed), t).await;
    assert_eq!(r.error.map(|e| e.0), Some(ErrorClass::Refused));

    let mut mismatch = probe("mismatch", &healthy);
    mismatch.body_contains = Some("READY".into());
    let r = probe_once(&client, &mismatch, t).await;
    let (class, text) = r.error.expect("mismatch");
    assert_eq!(class, ErrorClass::BodyMismatch);
    assert!(text.contains("READY"), "{text}");

    let json = server(
        ok_status(),
        r#"{"status": "up", "checks": {"db": true}}"#,
        Some(Duration::ZERO),
    )
    .await;
    let mut p = probe("json", &json);
    p.json_pointer = Some("/checks/db".parse().expect("pointer"));
    p.json_equals = Some("true".into());
    assert!(probe_once(&client, &p, t).await.ok);
    p.json_pointer = Some("/status".parse().expect("pointer"));
    p.json_equals = Some("down".into());
    let r = probe_once(&client, &p, t).await;
    assert_eq!(r.error.map(|e| e.0), Some(ErrorClass::BodyMismatch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_rests_a_dead_endpoint_and_it_recovers() {
    let status = Arc::new(AtomicU16::new(500));
    let url = server(Arc::clone(&status), "x", Some(Duration::ZERO)).await;
    let mut p = probe("flaky", &url);
    p.interval = Some(aegis_core::config::Interval(Duration::from_millis(50)));
    let settings = ProbeSettings {
        breaker_failures: 3,
        breaker_cooldown: aegis_core::config::Interval(Duration::from_millis(400)),
        ..ProbeSettings::default()
    };
    let (view, cancel) = running(vec![p], settings);

    // Three failures open the breaker; while it rests, no probe is sent.
    let mut opened = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = view.snapshot()[0].clone();
        if matches!(s.breaker, BreakerState::Open { .. }) {
            opened = Some(s.probes);
            break;
        }
    }
    let at_open = opened.expect("the breaker never opened");
    assert_eq!(at_open, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(view.snapshot()[0].probes, 3, "probed while resting");

    // The endpoint comes back: after the cooldown one probe succeeds and
    // the breaker closes.
    status.store(200, Ordering::Relaxed);
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = view.snapshot()[0].clone();
        if s.up == Some(true) && s.breaker == (BreakerState::Closed { failures: 0 }) {
            closed = true;
            break;
        }
    }
    assert!(closed, "{:?}", view.snapshot());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_delay_the_others() {
    let hanging = server(ok_status(), "", None).await;
    let healthy = server(ok_status(), "ok", Some(Duration::ZERO)).await;
    let mut h = probe("hanging", &hanging);
    h.timeout = Some(aegis_core::config::Interval(Duration::from_secs(5)));
    h.interval = Some(aegis_core::config::Interval(Duration::from_millis(100)));
    let mut ok = probe("healthy", &healthy);
    ok.interval = Some(aegis_core::config::Interval(Duration::from_millis(100)));
    let settings = ProbeSettings {
        max_concurrent: 4,
        ..ProbeSettings::default()
    };
    let (view, cancel) = running(vec![h, ok], settings);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let s = view.snapshot();
    assert_eq!(s[0].probes, 0, "the hanging probe cannot have finished");
    assert!(
        s[1].probes >= 12,
        "the healthy endpoint was probed only {} times in 1.5 s",
        s[1].probes
    );
    cancel.cancel();
}
