//! HTTP endpoint probes: each endpoint on its own schedule, all under one
//! concurrency limit, so a hanging endpoint delays nobody but itself.
//!
//! Every probe records latency, status, success and an error class
//! (timeout, refused, DNS, TLS, bad status, body mismatch). A breaker per
//! endpoint (the same one healing uses) stops probing a dead endpoint after
//! consecutive failures of any class, and probes it again after a cooldown
//! that grows; one success closes it. Latency and the rolling success rate
//! are series like any other, so the detectors watch them and an endpoint
//! anomaly can start a healing rule.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::breaker::{Admission, Breaker, BreakerConfig, BreakerState};
use aegis_core::config::{ProbeConfig, ProbeSettings};
use aegis_core::{Clock, Family, Observation, SeriesKey};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::sink::ObservationSink;

/// 1 when the last probe succeeded.
pub static ENDPOINT_UP: Family = Family {
    name: "endpoint_up",
    help: "1 when the endpoint's last probe succeeded, else 0.",
    label: Some("endpoint"),
};
/// Latency of the last answered probe.
pub static ENDPOINT_LATENCY: Family = Family {
    name: "endpoint_latency_seconds",
    help: "Time to the endpoint's full answer, in seconds.",
    label: Some("endpoint"),
};
/// Success over the last 20 probes.
pub static ENDPOINT_SUCCESS: Family = Family {
    name: "endpoint_success_ratio",
    help: "Share of the endpoint's last 20 probes that succeeded (0-1).",
    label: Some("endpoint"),
};

/// Every family the probes emit.
pub static PROBE_FAMILIES: &[&Family] = &[&ENDPOINT_UP, &ENDPOINT_LATENCY, &ENDPOINT_SUCCESS];

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No answer within the timeout.
    Timeout,
    /// Connection refused (nothing listens).
    Refused,
    /// The name did not resolve.
    Dns,
    /// The TLS handshake or certificate failed.
    Tls,
    /// The status code was not accepted.
    BadStatus,
    /// The body did not contain what was expected.
    BodyMismatch,
    /// Anything else (reset connection, invalid answer).
    Other,
}

/// The last state of one endpoint, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStatus {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Whether the last probe succeeded.
    pub up: Option<bool>,
    /// Status code of the last answer.
    pub status: Option<u16>,
    /// Latency of the last answer, ms.
    pub latency_ms: Option<f64>,
    /// Error class of the last failure.
    pub error_class: Option<ErrorClass>,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// Success over the last 20 probes.
    pub success_ratio: Option<f64>,
    /// The endpoint's breaker.
    pub breaker: BreakerState,
    /// Probes done.
    pub probes: u64,
    /// When the last probe ended, Unix ms.
    pub last_probe_ms: Option<i64>,
}

/// Shared view of every endpoint's state (each probe task updates its own
/// entry; the lock is held for a copy only).
#[derive(Debug, Clone, Default)]
pub struct EndpointView(Arc<Mutex<Vec<EndpointStatus>>>);

impl EndpointView {
    /// Every endpoint's status.
    pub fn snapshot(&self) -> Vec<EndpointStatus> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn update(&self, index: usize, status: EndpointStatus) {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(slot) = g.get_mut(index) {
            *slot = status;
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Accepted status and body.
    pub ok: bool,
    /// Status code, when an answer came.
    pub status: Option<u16>,
    /// Time to the full answer.
    pub latency: Option<Duration>,
    /// Why it failed.
    pub error: Option<(ErrorClass, String)>,
}

fn classify(e: &reqwest::Error) -> ErrorClass {
    if e.is_timeout() {
        return ErrorClass::Timeout;
    }
    // reqwest does not type these apart; its error chain names them.
    let lower = error_text(e).to_ascii_lowercase();
    if lower.contains("connection refused") {
        ErrorClass::Refused
    } else if lower.contains("dns")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        ErrorClass::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorClass::Tls
    } else {
        ErrorClass::Other
    }
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Probes once.
pub async fn probe_once(
    client: &reqwest::Client,
    p: &ProbeConfig,
    timeout: Duration,
) -> ProbeResult {
    let started = tokio::time::Instant::now();
    let method = match p.method {
        aegis_core::config::HttpMethod::Get => reqwest::Method::GET,
        aegis_core::config::HttpMethod::Head => reqwest::Method::HEAD,
        aegis_core::config::HttpMethod::Post => reqwest::Method::POST,
    };
    let request = client.request(method, p.url.as_str()).timeout(timeout);
    let fail = |class, text: String, status, latency| ProbeResult {
        ok: false,
        status,
        latency,
        error: Some((class, text)),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return fail(classify(&e), error_text(&e), None, None),
    };
    let status = response.status().as_u16();
    let needs_body = p.body_contains.is_some() || p.json_pointer.is_some();
    let body = match tokio::time::timeout(
        timeout.saturating_sub(started.elapsed()),
        response.text(),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return fail(classify(&e), error_text(&e), Some(status), None),
        Err(_) => {
            return fail(
                ErrorClass::Timeout,
                format!("no full answer within {timeout:?}"),
                Some(status),
                None,
            )
        }
    };
    let latency = Some(started.elapsed());
    if !p.expect_status.contains(status) {
        return fail(
            ErrorClass::BadStatus,
            format!("status {status}, expected {}", p.expect_status),
            Some(status),
            latency,
        );
    }
    if needs_body {
        if let Some(needle) = &p.body_contains {
            if !body.contains(needle.as_str()) {
                return fail(
                    ErrorClass::BodyMismatch,
                    format!("the body lacks {needle:?}"),
                    Some(status),
                    latency,
                );
            }
        }
        if let (Some(pointer), Some(expected)) = (&p.json_pointer, &p.json_equals) {
            let found = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer(pointer.as_str()).cloned());
            let text = match &found {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
                None => None,
            };
            if text.as_deref() != Some(expected.as_str()) {
                return fail(
                    ErrorClass::BodyMismatch,
                    format!(
                        "{pointer} is {}, expected {expected:?}",
                        text.map_or("absent".to_string(), |t| format!("{t:?}"))
                    ),
                    Some(status),
                    latency,
                );
            }
        }
    }
    ProbeResult {
        ok: true,
        status: Some(status),
        latency,
        error: None,
    }
}

/// Builds the two HTTP clients (verifying TLS, and not, for endpoints that
/// opt out).
fn clients() -> Result<(reqwest::Client, reqwest::Client), String> {
    let verify = reqwest::Client::builder()
        .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let insecure = reqwest::Client::builder()
        .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    Ok((verify, insecure))
}

/// Every probe, built and not yet running: run it with [`Probes::run`].
pub struct Probes {
    tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    cancel: CancellationToken,
}

impl Probes {
    /// Runs every probe until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let inner = self.cancel.clone();
        let mut set = tokio::task::JoinSet::new();
        for t in self.tasks {
            set.spawn(t);
        }
        cancel.cancelled().await;
        inner.cancel();
        while set.join_next().await.is_some() {}
    }
}

/// Runs every probe until `cancel`. Returns the view the API reads.
pub fn spawn_probes(
    probes: Vec<ProbeConfig>,
    settings: ProbeSettings,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    cancel: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<EndpointView, String> {
    let (view, probes) = build_probes(probes, settings, clock, sink)?;
    tasks.spawn(probes.run(cancel));
    Ok(view)
}

/// Builds every probe; returns the view the API reads and the probes to run.
pub fn build_probes(
    probes: Vec<ProbeConfig>,
    settings: ProbeSettings,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
) -> Result<(EndpointView, Probes), String> {
    let cancel = CancellationToken::new();
    let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
        Vec::new();
    let (verify, insecure) = clients()?;
    let breaker = BreakerConfig {
        failure_threshold: settings.breaker_failures,
        base_cooldown: settings.breaker_cooldown.0,
        multiplier: 2,
        max_cooldown: settings.breaker_cooldown.0.saturating_mul(16),
        probe_timeout: Duration::from_secs(600),
    };
    let view = EndpointView(Arc::new(Mutex::new(
        probes
            .iter()
            .map(|p| EndpointStatus {
                name: p.name.to_string(),
                url: p.url.to_string(),
                up: None,
                status: None,
                latency_ms: None,
                error_class: None,
                error: None,
                success_ratio: None,
                breaker: BreakerState::Closed { failures: 0 },
                probes: 0,
                last_probe_ms: None,
            })
            .collect(),
    )));
    let limit = Arc::new(Semaphore::new(settings.max_concurrent.max(1) as usize));
    for (index, p) in probes.into_iter().enumerate() {
        let client = if p.tls_verify {
            verify.clone()
        } else {
            insecure.clone()
        };
        let interval = p.interval.unwrap_or(settings.interval).0;
        let timeout = p.timeout.unwrap_or(settings.timeout).0;
        let (clock, sink, cancel, view, limit) = (
            Arc::clone(&clock),
            sink.clone(),
            cancel.clone(),
            view.clone(),
            Arc::clone(&limit),
        );
        tasks.push(Box::pin(async move {
            let mut b = Breaker::new(breaker);
            let mut recent: VecDeque<bool> = VecDeque::with_capacity(20);
            let mut probes = 0u64;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let key = |f: &'static Family| SeriesKey::instance(f, p.name.as_str());
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let now = clock.monotonic();
                if let Admission::Rejected { .. } = b.admit(now) {
                    // Resting: a dead endpoint is not hammered.
                    let mut s = view.snapshot().get(index).cloned();
                    if let Some(s) = s.as_mut() {
                        s.breaker = b.state(now);
                        view.update(index, s.clone());
                    }
                    continue;
                }
                let result = {
                    let Ok(_permit) = limit.acquire().await else {
                        break;
                    };
                    probe_once(&client, &p, timeout).await
                };
                probes += 1;
                let at_ms = clock.wall_ms();
                b.record(result.ok, clock.monotonic());
                if recent.len() == 20 {
                    recent.pop_front();
                }
                recent.push_back(result.ok);
                let ratio = recent.iter().filter(|ok| **ok).count() as f64 / recent.len() as f64;
                let mut out = vec![
                    Observation::value(key(&ENDPOINT_UP), at_ms, f64::from(u8::from(result.ok))),
                    Observation::value(key(&ENDPOINT_SUCCESS), at_ms, ratio),
                ];
                if let Some(l) = result.latency {
                    out.push(Observation::value(
                        key(&ENDPOINT_LATENCY),
                        at_ms,
                        l.as_secs_f64(),
                    ));
                }
                sink.send_all(out);
                if let Some((class, text)) = &result.error {
                    tracing::debug!(endpoint = %p.name, ?class, error = %text, "probe failed");
                }
                view.update(
                    index,
                    EndpointStatus {
                        name: p.name.to_string(),
                        url: p.url.to_string(),
                        up: Some(result.ok),
                        status: result.status,
                        latency_ms: result.latency.map(|l| l.as_secs_f64() * 1000.0),
                        error_class: result.error.as_ref().map(|e| e.0),
                        error: result.error.map(|e| e.1),
                        success_ratio: Some(ratio),
                        breaker: b.state(clock.monotonic()),
                        probes,
                        last_probe_ms: Some(at_ms),
                    },
                );
            }
        }));
    }
    Ok((view, Probes { tasks, cancel }))
}
