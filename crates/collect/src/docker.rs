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

use aegis_core::counter::{CounterTracker, Step};
use aegis_core::status::SourceState;
use aegis_core::{Clock, Family, Observation, Reading, SeriesKey};
use bollard::query_parameters::{
    EventsOptions, InspectContainerOptions, ListContainersOptions, StatsOptions,
};
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

/// What a container is, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// `running`, `exited`, `restarting`...
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or none without a health check.
    pub health: Option<String>,
    /// Docker's restart count.
    pub restart_count: i64,
    /// Exit code of the last run.
    pub exit_code: Option<i64>,
    /// Image.
    pub image: String,
    /// Labels.
    pub labels: HashMap<String, String>,
}

/// What happened to a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Its health check changed verdict.
    Health {
        /// `healthy` or `unhealthy`.
        status: String,
    },
    /// Its main process exited.
    Die {
        /// Exit code, when Docker gave one.
        exit_code: Option<i64>,
    },
    /// The kernel killed it for memory.
    Oom,
    /// It started.
    Start,
    /// Someone (an operator, `docker stop`) stopped it.
    Stop,
    /// Someone sent it a signal (`docker stop`/`kill` do before `die`).
    Kill,
    /// It was removed.
    Destroy,
}

/// One container event, as Docker reported it (or as polling inferred it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerEvent {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// What happened.
    pub kind: EventKind,
    /// When Docker says it happened, Unix ns.
    pub docker_time_ns: i64,
    /// Whether it came from the event stream (false: inferred by polling).
    pub from_stream: bool,
}

/// Settings of the Docker source.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Poll interval (the fallback; events come at once).
    pub interval: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Containers watched at most.
    pub max_containers: usize,
}

/// Connects to the engine named by `DOCKER_HOST`, or the local socket, and
/// agrees on an API version.
pub async fn connect() -> Result<Docker, String> {
    let docker =
        Docker::connect_with_local_defaults().map_err(|e| format!("no Docker client: {e}"))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| format!("Docker engine unreachable: {e}"))?;
    docker
        .ping()
        .await
        .map_err(|e| format!("Docker engine unreachable: {e}"))?;
    Ok(docker)
}

/// Where the engine is expected, for messages.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

fn parse_event(msg: &bollard::models::EventMessage) -> Option<ContainerEvent> {
    let action = msg.action.as_deref()?;
    let actor = msg.actor.as_ref()?;
    let attributes = actor.attributes.clone().unwrap_or_default();
    let kind = if let Some(status) = action.strip_prefix("health_status:") {
        EventKind::Health {
            status: status.trim().to_string(),
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
    let name = attributes.get("name").cloned().unwrap_or_default();
    let mut labels = attributes;
    labels.remove("name");
    labels.remove("image");
    labels.remove("exitCode");
    labels.remove("signal");
    Some(ContainerEvent {
        id: actor.id.clone().unwrap_or_default(),
        name,
        labels,
        kind,
        docker_time_ns: msg
            .time_nano
            .unwrap_or_else(|| msg.time.unwrap_or(0).saturating_mul(1_000_000_000)),
        from_stream: true,
    })
}

async fn inspect_all(docker: &Docker, max: usize) -> Result<Vec<ContainerInfo>, String> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let mut out = Vec::with_capacity(list.len().min(max));
    for summary in list.into_iter().take(max) {
        let Some(id) = summary.id else { continue };
        // A container removed between the list and the inspect is simply gone.
        let Ok(c) = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        else {
            continue;
        };
        let state = c.state.as_ref();
        out.push(ContainerInfo {
            id: id.clone(),
            name: c
                .name
                .as_deref()
                .unwrap_or(&id)
                .trim_start_matches('/')
                .to_string(),
            state: state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".to_string()),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .filter(|h| !h.is_empty() && h != "none"),
            restart_count: c.restart_count.unwrap_or(0),
            exit_code: state.and_then(|s| s.exit_code),
            image: c
                .config
                .as_ref()
                .and_then(|cfg| cfg.image.clone())
                .unwrap_or_default(),
            labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
        });
    }
    Ok(out)
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
    last_health: HashMap<String, Option<String>>,
    config: DockerConfig,
}

impl Poller {
    async fn poll(&mut self, docker: &Docker) -> Result<(), String> {
        let started = self.clock.monotonic();
        let containers = inspect_all(docker, self.config.max_containers).await?;
        let at_ms = self.clock.wall_ms();
        let now = self.clock.monotonic();
        let mut out = Vec::new();
        for c in &containers {
            let key = |f: &'static Family| SeriesKey::instance(f, c.name.as_str());
            out.push(Observation::value(
                key(&CONTAINER_UP),
                at_ms,
                f64::from(u8::from(c.state == "running")),
            ));
            out.push(Observation::value(
                key(&CONTAINER_RESTARTS),
                at_ms,
                c.restart_count as f64,
            ));
            match c.health.as_deref().filter(|_| c.state == "running") {
                Some("healthy") => {
                    out.push(Observation::value(key(&CONTAINER_HEALTHY), at_ms, 1.0))
                }
                Some("unhealthy") => {
                    out.push(Observation::value(key(&CONTAINER_HEALTHY), at_ms, 0.0))
                }
                _ => {}
            }
            // A health change the event stream did not deliver (it was
            // down, or lagged), or a container already unhealthy when first
            // seen (the agent started after it turned): synthesise the
            // event, so healing never depends on the stream alone.
            // Only for running containers: a stopped container's health is
            // not news, and its check stops on its own.
            let previous = self.last_health.insert(c.id.clone(), c.health.clone());
            if c.state != "running" {
                continue;
            }
            let news = match (&previous, c.health.as_deref()) {
                (Some(Some(before)), Some(now)) => {
                    before != now && (now == "healthy" || now == "unhealthy")
                }
                (None, Some(now)) => now == "unhealthy",
                _ => false,
            };
            if let (true, Some(now_health)) = (news, &c.health) {
                let _ = self.events.try_send(ContainerEvent {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    labels: c.labels.clone(),
                    kind: EventKind::Health {
                        status: now_health.clone(),
                    },
                    docker_time_ns: at_ms.saturating_mul(1_000_000),
                    from_stream: false,
                });
            }
            // Running, as checked above.
            if let Ok(Some(Ok(stats))) = tokio::time::timeout(
                Duration::from_secs(2),
                docker
                    .stats(
                        &c.id,
                        Some(StatsOptions {
                            stream: false,
                            one_shot: true,
                        }),
                    )
                    .next(),
            )
            .await
            {
                self.stats(c, &stats, now, at_ms, &mut out);
            }
        }
        self.last_health
            .retain(|id, _| containers.iter().any(|c| &c.id == id));
        self.counters.end_cycle();
        self.sink.send_all(out.iter().cloned());
        let count = out.len();
        self.view.send_replace(Arc::new(containers));
        let took = self.clock.monotonic().saturating_sub(started);
        self.health
            .record(SourceState::Ok, self.clock.wall_ms(), took, count, None);
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
/// interval, and reconnects when the engine goes away.
pub async fn run_docker(
    config: DockerConfig,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    events: mpsc::Sender<ContainerEvent>,
    view: watch::Sender<Arc<Vec<ContainerInfo>>>,
    health: SourceHealth,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    let mut poller = Poller {
        clock,
        sink,
        events,
        view,
        health,
        counters: CounterTracker::new(),
        last_health: HashMap::new(),
        config,
    };
    loop {
        let docker = tokio::select! {
            _ = cancel.cancelled() => return,
            d = connect() => d,
        };
        let docker = match docker {
            Ok(d) => {
                tracing::info!(engine = %engine_address(), "connected to the Docker engine");
                backoff = Duration::from_millis(250);
                d
            }
            Err(why) => {
                let why = format!("{why} ({})", engine_address());
                poller.unavailable(&why);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(poller.config.max_backoff);
                continue;
            }
        };
        let why = poller.connected(&docker, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
        poller.unavailable(&why);
    }
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
    async fn connected(&mut self, docker: &Docker, cancel: &CancellationToken) -> String {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let mut stream = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return "cancelled".into(),
                msg = stream.next() => match msg {
                    Some(Ok(msg)) => {
                        if let Some(event) = parse_event(&msg) {
                            tracing::debug!(container = %event.name, kind = ?event.kind, "container event");
                            if self.events.try_send(event).is_err() {
                                tracing::warn!("container event channel full; the next poll will catch up");
                            }
                        }
                    }
                    Some(Err(e)) => return format!("Docker event stream failed: {e}"),
                    None => return "Docker event stream ended".into(),
                },
                _ = ticker.tick() => {
                    if let Err(e) = self.poll(docker).await {
                        return e;
                    }
                }
            }
        }
    }
}
