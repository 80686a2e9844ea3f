//! The Docker source: containers (state, health, restarts, labels), their
//! resource use, and the event stream.
//!
//! Docker's own verdicts (`health_status`, `die`, `oom`, `start`, `stop`,
//! `kill`) arrive on its event stream and are forwarded at once as
//! [`ContainerEvent`]s, so healing reacts within milliseconds; polling every
//! interval is the fallback, and a change the stream missed is synthesised
//! from it. When the engine is absent or goes away, the source says so in
//! its health (unavailable, with the reason), keeps retrying with backoff,
//! and resumes when it returns; nothing else stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::backoff::{entropy_seed, BackoffPolicy};
use aegis_core::counter::{CounterTracker, Step};
use aegis_core::status::SourceState;
use aegis_core::{Clock, Family, Observation, Reading, SeriesKey};
use aegis_docker::{Engine, Flavour};
use bollard::query_parameters::{EventsOptions, StatsOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::runner::SourceHealth;
use crate::sink::ObservationSink;

/// 1 when the container runs.
pub static CONTAINER_UP: Family = Family {
    name: "container_up",
    help: "1 when the container is running, else 0.",
    label: Some("container"),
};
/// 1 healthy, 0 unhealthy (containers with a health check only).
pub static CONTAINER_HEALTHY: Family = Family {
    name: "container_healthy",
    help: "1 when the container's health check passes, 0 when unhealthy (containers with a health check).",
    label: Some("container"),
};
/// Docker's restart count.
pub static CONTAINER_RESTARTS: Family = Family {
    name: "container_restarts",
    help: "Times Docker restarted the container (its restart count).",
    label: Some("container"),
};
/// CPU use in cores.
pub static CONTAINER_CPU: Family = Family {
    name: "container_cpu_cores",
    help: "CPU used by the container, in cores.",
    label: Some("container"),
};
/// Memory in use.
pub static CONTAINER_MEMORY: Family = Family {
    name: "container_memory_bytes",
    help: "Memory used by the container, in bytes.",
    label: Some("container"),
};
/// Bytes received per second.
pub static CONTAINER_RX: Family = Family {
    name: "container_net_rx_bytes_per_second",
    help: "Bytes the container received per second.",
    label: Some("container"),
};
/// Bytes sent per second.
pub static CONTAINER_TX: Family = Family {
    name: "container_net_tx_bytes_per_second",
    help: "Bytes the container sent per second.",
    label: Some("container"),
};

/// Every family the Docker source may emit.
pub static DOCKER_FAMILIES: &[&Family] = &[
    &CONTAINER_UP,
    &CONTAINER_HEALTHY,
    &CONTAINER_RESTARTS,
    &CONTAINER_CPU,
    &CONTAINER_MEMORY,
    &CONTAINER_RX,
    &CONTAINER_TX,
];

pub use aegis_core::container::{ContainerEvent, ContainerHealth, ContainerInfo, EventKind};

/// Settings of the Docker source.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Poll interval (the fallback; events come at once).
    pub interval: Duration,
    /// Reconnection backoff (doubling up to its cap).
    pub reconnect: BackoffPolicy,
    /// Containers watched at most.
    pub max_containers: usize,
    /// The engine's address (`docker.host`); none: looked for where
    /// Docker's and Podman's sockets usually are.
    pub host: Option<String>,
    /// The label that opts a container in to healing: the containers
    /// whose own health checks the agent runs when the engine does not.
    pub autoheal_label: String,
}

/// Stats requests in flight at once during one poll.
const STATS_CONCURRENCY: usize = 8;
/// Time allowed to one container's stats.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// Turns one message of the engine's event stream into a container event
/// (`None` for the actions healing does not care about).
pub fn parse_event(msg: &bollard::models::EventMessage) -> Option<ContainerEvent> {
    let action = msg.action.as_deref()?;
    let actor = msg.actor.as_ref()?;
    let attributes = actor.attributes.clone().unwrap_or_default();
    let kind = if let Some(status) = action.strip_prefix("health_status:") {
        EventKind::Health {
            status: ContainerHealth::parse(status)?,
        }
    } else {
        match action {
            "die" => EventKind::Die {
                exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
            },
            "oom" => EventKind::Oom,
            "start" => EventKind::Start,
            "stop" => EventKind::Stop,
            "kill" => EventKind::Kill,
            "destroy" => EventKind::Destroy,
            _ => return None,
        }
    };
    Some(ContainerEvent {
        id: actor.id.clone().unwrap_or_default(),
        name: attributes.get("name").cloned().unwrap_or_default(),
        labels: aegis_docker::labels_of_event(&attributes),
        kind,
        engine_time_ns: event_time_ns(msg),
        from_stream: true,
        inspected: None,
    })
}

/// When the engine says an event happened, Unix ns.
fn event_time_ns(msg: &bollard::models::EventMessage) -> i64 {
    msg.time_nano
        .unwrap_or_else(|| msg.time.unwrap_or(0).saturating_mul(1_000_000_000))
}

/// The running Docker source's shared view of containers.
pub type ContainerView = watch::Receiver<Arc<Vec<ContainerInfo>>>;

struct Poller {
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    events: mpsc::Sender<ContainerEvent>,
    view: watch::Sender<Arc<Vec<ContainerInfo>>>,
    health: SourceHealth,
    counters: CounterTracker<(&'static str, String)>,
    last_health: HashMap<String, Option<ContainerHealth>>,
    /// True until the first poll of a connection has run: only then can a
    /// health change have escaped the event stream (it was not yet, or no
    /// longer, being read). While the stream runs it delivers every change
    /// itself, and a second, later report of the same change would be
    /// mistaken for a new episode.
    catch_up: bool,
    config: DockerConfig,
}

impl Poller {
    async fn poll(&mut self, docker: &Docker) -> Result<(), String> {
        let started = self.clock.monotonic();
        // What the list says is as old as the request: an event the stream
        // delivered after this moment is newer than the poll's word.
        let asked_ms = self.clock.wall_ms();
        let previous = Arc::clone(&self.view.borrow());
        let containers = aegis_docker::list(docker, self.config.max_containers, &previous).await?;
        drop(previous);
        let at_ms = self.clock.wall_ms();
        let now = self.clock.monotonic();
        let mut out = Vec::new();
        for c in &containers {
            let key = |f: &'static Family| SeriesKey::instance(f, c.name.as_str());
            out.push(Observation::value(
                key(&CONTAINER_UP),
                at_ms,
                f64::from(u8::from(c.running())),
            ));
            out.push(Observation::value(
                key(&CONTAINER_RESTARTS),
                at_ms,
                c.restart_count as f64,
            ));
            match c.health.filter(|_| c.running()) {
                Some(ContainerHealth::Healthy) => {
                    out.push(Observation::value(key(&CONTAINER_HEALTHY), at_ms, 1.0))
                }
                Some(ContainerHealth::Unhealthy) => {
                    out.push(Observation::value(key(&CONTAINER_HEALTHY), at_ms, 0.0))
                }
                _ => {}
            }
            // A health change the event stream did not deliver (it was
            // down while the engine was away), or a container already
            // unhealthy when first seen (the agent started after it
            // turned): synthesise the event on the first poll of a
            // connection, so healing never depends on the stream alone.
            // Only for running containers: a stopped container's health is
            // not news, and its check stops on its own.
            let previous = self.last_health.insert(c.id.clone(), c.health);
            if !c.running() || !self.catch_up {
                continue;
            }
            let news = match (previous, c.health) {
                (Some(Some(before)), Some(now)) => {
                    before != now && now != ContainerHealth::Starting
                }
                (None, Some(now)) => now == ContainerHealth::Unhealthy,
                _ => false,
            };
            if let (true, Some(status)) = (news, c.health) {
                let event = ContainerEvent {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    labels: c.labels.clone(),
                    kind: EventKind::Health { status },
                    engine_time_ns: asked_ms.saturating_mul(1_000_000),
                    from_stream: false,
                    inspected: None,
                };
                if self.events.send(event).await.is_err() {
                    return Err("the container event channel closed".into());
                }
            }
        }
        self.last_health
            .retain(|id, _| containers.iter().any(|c| &c.id == id));
        // The view and the containers' states go out before their stats:
        // healing and the checks read the view, and the source is up once
        // it is known. Stats can take a few seconds more on a busy engine.
        let containers = Arc::new(containers);
        let count = out.len();
        self.sink.send_all(out.drain(..));
        self.view.send_replace(Arc::clone(&containers));
        let took = self.clock.monotonic().saturating_sub(started);
        self.health
            .record(SourceState::Ok, self.clock.wall_ms(), took, count, None);
        // Stats of the running containers, a few at once, each one-shot
        // (one sample, not the two a streaming call waits for).
        let running: Vec<&ContainerInfo> = containers.iter().filter(|c| c.running()).collect();
        let wanted: Vec<(usize, String, Docker)> = running
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.id.clone(), docker.clone()))
            .collect();
        let stats: Vec<(usize, Option<bollard::models::ContainerStatsResponse>)> =
            futures_util::stream::iter(wanted)
                .map(|(i, id, docker)| async move {
                    let options = StatsOptions {
                        stream: false,
                        one_shot: true,
                    };
                    let mut stream = docker.stats(&id, Some(options));
                    let one = tokio::time::timeout(STATS_TIMEOUT, stream.next()).await;
                    let stats = match one {
                        Ok(Some(Ok(s))) => Some(s),
                        _ => None,
                    };
                    (i, stats)
                })
                .buffer_unordered(STATS_CONCURRENCY)
                .collect()
                .await;
        for (i, s) in stats {
            if let (Some(c), Some(s)) = (running.get(i), s) {
                self.stats(c, &s, now, at_ms, &mut out);
            }
        }
        self.counters.end_cycle();
        self.health.counted(out.len());
        self.sink.send_all(out);
        Ok(())
    }

    fn stats(
        &mut self,
        c: &ContainerInfo,
        stats: &bollard::models::ContainerStatsResponse,
        now: Duration,
        at_ms: i64,
        out: &mut Vec<Observation>,
    ) {
        let key = |f: &'static Family| SeriesKey::instance(f, c.name.as_str());
        let mut rate = |family: &'static Family,
                        value: u64,
                        scale: f64,
                        out: &mut Vec<Observation>| {
            match self
                .counters
                .observe(&(family.name, c.id.clone()), value, now)
            {
                Step::Rate(r) => out.push(Observation::value(key(family), at_ms, r * scale)),
                Step::Reset => out.push(Observation {
                    series: key(family),
                    at_ms,
                    reading: Reading::CounterReset,
                }),
                Step::First | Step::Stale => {}
            }
        };
        if let Some(total) = stats
            .cpu_stats
            .as_ref()
            .and_then(|s| s.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
        {
            // Nanoseconds of CPU per second: cores.
            rate(&CONTAINER_CPU, total, 1e-9, out);
        }
        if let Some(mem) = stats.memory_stats.as_ref().and_then(|m| m.usage) {
            out.push(Observation::value(
                key(&CONTAINER_MEMORY),
                at_ms,
                mem as f64,
            ));
        }
        if let Some(nets) = &stats.networks {
            let rx: u64 = nets.values().filter_map(|n| n.rx_bytes).sum();
            let tx: u64 = nets.values().filter_map(|n| n.tx_bytes).sum();
            rate(&CONTAINER_RX, rx, 1.0, out);
            rate(&CONTAINER_TX, tx, 1.0, out);
        }
    }
}

/// Runs the Docker source until `cancel`: connects (retrying with backoff
/// while the engine is absent), forwards events as they come, polls every
/// interval, and reconnects when the engine goes away. The event stream is
/// read on a task of its own: a slow poll never delays an event.
pub async fn run_docker(
    config: DockerConfig,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    events: mpsc::Sender<ContainerEvent>,
    view: watch::Sender<Arc<Vec<ContainerInfo>>>,
    health: SourceHealth,
    cancel: CancellationToken,
) {
    let mut backoff = config.reconnect.start(entropy_seed());
    let mut poller = Poller {
        clock,
        sink,
        events,
        view,
        health,
        counters: CounterTracker::new(),
        last_health: HashMap::new(),
        catch_up: true,
        config,
    };
    loop {
        let engine = tokio::select! {
            _ = cancel.cancelled() => return,
            d = aegis_docker::connect(poller.config.host.as_deref()) => d,
        };
        let engine = match engine {
            Ok(e) => {
                tracing::info!(engine = %e.describe(), "connected to the container engine");
                backoff.reset();
                e
            }
            Err(why) => {
                poller.unavailable(&why.0);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        let why = poller.connected(&engine, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
        poller.unavailable(&why);
    }
}

/// Reads the engine's event stream and forwards container events, waiting
/// for room rather than dropping one; returns why the stream ended.
///
/// The stream starts at `since_ms` (Unix ms), replayed by the engine: the
/// subscription itself is sent only when the task first runs, and an event
/// between the connection and that moment would otherwise be lost if the
/// first poll missed it too.
async fn forward_events(
    docker: Docker,
    events: mpsc::Sender<ContainerEvent>,
    view: watch::Receiver<Arc<Vec<ContainerInfo>>>,
    since_ms: i64,
) -> String {
    let mut filters = HashMap::new();
    filters.insert("type".to_string(), vec!["container".to_string()]);
    let mut stream = docker.events(Some(EventsOptions {
        filters: Some(filters),
        since: Some(format!(
            "{}.{:09}",
            since_ms.div_euclid(1000),
            since_ms.rem_euclid(1000) * 1_000_000
        )),
        ..Default::default()
    }));
    loop {
        match stream.next().await {
            Some(Ok(msg)) => {
                let parsed = match parse_event(&msg) {
                    Some(e) => Some(e),
                    // Podman's `health_status` carries the status in a
                    // field of its own: read it from the container.
                    None if msg.action.as_deref() == Some("health_status") => {
                        health_from_inspection(&docker, &msg).await
                    }
                    None => None,
                };
                if let Some(mut event) = parsed {
                    // Its restart policy says whether the engine restarts
                    // it itself: read its state now, while it is news. Only
                    // for a container that has a policy (or is not known
                    // yet): the inspection holds up the events behind it,
                    // and a host restarting many containers must not wait.
                    let has_policy = || {
                        view.borrow()
                            .iter()
                            .find(|c| c.id == event.id)
                            .is_none_or(|c| c.restart_policy.is_some())
                    };
                    if matches!(event.kind, EventKind::Die { .. }) && has_policy() {
                        let look = aegis_docker::inspect(&docker, &event.id);
                        if let Ok(Ok(Some(info))) =
                            tokio::time::timeout(Duration::from_secs(2), look).await
                        {
                            event.inspected = Some(Box::new(info));
                        }
                    }
                    tracing::debug!(container = %event.name, kind = ?event.kind, "container event");
                    if events.send(event).await.is_err() {
                        return "the container event channel closed".into();
                    }
                }
            }
            Some(Err(e)) => return format!("Docker event stream failed: {e}"),
            None => return "Docker event stream ended".into(),
        }
    }
}

/// A health event for the container of `msg`, with the status its
/// inspection gives (`None` if it cannot be inspected or has no check).
async fn health_from_inspection(
    docker: &Docker,
    msg: &bollard::models::EventMessage,
) -> Option<ContainerEvent> {
    let id = msg.actor.as_ref()?.id.clone()?;
    let look = aegis_docker::inspect(docker, &id);
    let info = match tokio::time::timeout(Duration::from_secs(2), look).await {
        Ok(Ok(Some(info))) => info,
        _ => return None,
    };
    Some(ContainerEvent {
        id: info.id.clone(),
        name: info.name.clone(),
        kind: EventKind::Health {
            status: info.health?,
        },
        labels: info.labels,
        engine_time_ns: event_time_ns(msg),
        from_stream: true,
        inspected: None,
    })
}

impl Poller {
    fn unavailable(&mut self, why: &str) {
        tracing::warn!(reason = %why, "Docker unavailable; retrying");
        let at = self.clock.wall_ms();
        self.health.record(
            SourceState::Unavailable,
            at,
            Duration::ZERO,
            0,
            Some(why.to_string()),
        );
        // The view is kept: the last known containers, marked by the
        // source's state as stale.
    }

    /// Serves one connection until it breaks; returns why it broke.
    async fn connected(&mut self, engine: &Engine, cancel: &CancellationToken) -> String {
        let docker = &engine.client;
        let podman = engine.flavour == Flavour::Podman;
        self.health.set_detail(Some(engine.describe()));
        let since_ms = self.clock.wall_ms();
        let mut stream = tokio::spawn(forward_events(
            docker.clone(),
            self.events.clone(),
            self.view.subscribe(),
            since_ms,
        ));
        // Podman may not run health checks at all (no systemd timers):
        // the agent runs those of opted-in containers itself.
        let runs = podman.then(|| {
            tokio::spawn(crate::health_runs::run(
                engine.clone(),
                self.config.autoheal_label.clone(),
                self.view.subscribe(),
                Arc::clone(&self.clock),
                self.health.clone(),
            ))
        });
        self.catch_up = true;
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            tokio::select! {
                _ = cancel.cancelled() => break "cancelled".to_string(),
                ended = &mut stream => {
                    break ended.unwrap_or_else(|e| format!("the event stream task failed: {e}"));
                }
                _ = ticker.tick() => {
                    if let Err(e) = self.poll(docker).await {
                        break e;
                    }
                    // Podman's event stream reports a health status that
                    // can lag its own record: every poll may catch up.
                    self.catch_up = podman;
                }
            }
        };
        stream.abort();
        if let Some(runs) = runs {
            runs.abort();
        }
        self.health.set_detail(None);
        why
    }
}
