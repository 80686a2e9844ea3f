//! `aegis run`: the agent is built (every task, channel and bound named and
//! wired, nothing running yet), then run, then shut down in three steps.
//!
//! - [`Agent::build`] opens the store (after taking the state directory's
//!   lock), binds the API, and makes every part: sources, pipeline,
//!   healing engine, notifier, API. Anything that cannot be built is an
//!   error here, before a task starts.
//! - [`Agent::run`] spawns the parts as named, supervised [`tasks`] and
//!   waits for the shutdown signal (or a critical task's death).
//! - Shutdown ([`shutdown`]): tell every task (one cancellation token),
//!   wait for them under `agent.shutdown_timeout` without blocking the
//!   runtime, and close the store last, so nothing accepted before the
//!   signal is lost.

mod checks;
mod heal;
pub mod limits;
pub mod lock;
pub mod paths;
pub mod reload;
mod shutdown;
pub mod systemd;
pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aegis_collect::{run_polled, sink, HostSource, SourceHealth};
use aegis_core::backoff::BackoffPolicy;
use aegis_core::config::Config;
use aegis_core::ring::RingBounds;
use aegis_core::{Clock, SystemClock};
use aegis_detect::forest::ForestDetectorConfig;
use aegis_heal::engine::{Engine, EngineEnv, Trigger};
use aegis_heal::exec::container::Containers;
use aegis_heal::exec::{Dispatch, ExecContext};
use aegis_heal::policy::Policy;
use aegis_store::{StoreHandle, StoreOptions, StoreThread};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use heal::{engine_config, OPERATOR_GRACE};
pub use paths::{default_state_dir, resolve_paths, Paths};

use crate::detection::Detection;
use crate::pipeline::{Pipeline, PipelineConfig};
use tasks::{Role, Tasks};

/// Commands waiting for the store thread at most.
pub const STORE_QUEUE: usize = 1_024;
/// Anomalies and healing records waiting for a commit at most (a full disk
/// keeps them in memory until this many).
pub const STORE_EVENTS: usize = 100_000;
/// Container events waiting for the healing engine at most; the source
/// waits for room rather than drop one.
pub const CONTAINER_EVENTS: usize = 1_024;
/// Containers the Docker source watches at most.
pub const MAX_CONTAINERS: usize = 1_000;
/// First and longest wait between two tries to reach the container engine.
pub const DOCKER_RECONNECT: (Duration, Duration) =
    (Duration::from_millis(250), Duration::from_secs(30));
/// How soon the status and the newest values are published after
/// something new, at the latest (and how often, at most).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often the status is published when nothing new came (a quarter of
/// the systemd watchdog's timeout when that is shorter: the publication is
/// the heartbeat the watchdog pings from).
pub const QUIET_PUBLISH: Duration = Duration::from_secs(5);

/// What a started agent tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    /// The address the API really listens on (port 0 resolved).
    pub api: SocketAddr,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A built agent: every part made and wired, nothing running.
pub struct Agent {
    config: Config,
    paths: Paths,
    api: SocketAddr,
    store: StoreHandle,
    store_thread: StoreThread,
    /// Tells every task to stop.
    stop: CancellationToken,
    /// The parts, by name, to spawn.
    parts: Vec<(&'static str, Role, Task)>,
    /// The pipeline's heartbeat (its loop's last publication, Unix ms).
    heartbeat: tokio::sync::watch::Receiver<i64>,
    clock: Arc<dyn Clock>,
    /// What a reload can change while the agent runs.
    live: reload::Live,
    _lock: lock::StateLock,
}

impl Agent {
    /// Builds the agent from a validated configuration.
    pub async fn build(config: Config) -> anyhow::Result<Agent> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let paths = Paths::of(&config);
        let state_lock = lock::lock(&paths.state_dir, &paths.lock)?;
        let (store, store_thread) = aegis_store::open(
            &paths.db,
            StoreOptions {
                flush_interval: config.store.flush_interval.0,
                retention_max_age: config.store.retention_max_age.0,
                retention_max_size: config.store.retention_max_size.0,
                retention_interval: config.store.retention_interval.0,
                queue_capacity: STORE_QUEUE,
                event_capacity: STORE_EVENTS,
            },
            Arc::clone(&clock),
        )
        .with_context(|| format!("opening the store {}", paths.db.display()))?;

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("listening on {} (api.listen)", config.api.listen))?;
        let api = listener.local_addr().context("reading the API address")?;
        let stop = CancellationToken::new();
        let mut parts: Vec<(&'static str, Role, Task)> = Vec::new();

        // Anomalies a previous run left open are closed: nobody watched
        // them end. Ids continue from the last ones.
        let stale = store
            .close_stale_anomalies(clock.wall_ms())
            .await
            .context("closing the anomalies the previous run left open")?;
        if stale > 0 {
            tracing::info!(
                closed = stale,
                "closed anomalies left open by the previous run"
            );
        }
        let (next_anomaly, next_incident) = store.next_ids().await.context("reading the store")?;

        // The notifier: every message that leaves the agent.
        let (notifier, notifier_task) =
            aegis_notify::new(crate::notify::notifier_config(&config).map_err(anyhow::Error::msg)?);
        parts.push((
            "notifier",
            Role::Optional,
            Box::pin(notifier_task.run(stop.child_token())),
        ));

        // Healing: the engine, its records to the store, what earlier
        // runs did (cooldowns, rate limits, the budget and the breakers
        // survive a restart, or a crash loop, of the agent).
        // The containers as last seen: the Docker source writes, container
        // checks and healing (labels, dependencies, restart policies) read.
        let (view_tx, containers) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        let engine_config = engine_config(&config);
        let env = EngineEnv {
            clock: Arc::clone(&clock),
            records: Arc::new(heal::StoreRecorder(store.clone())),
            executor: Arc::new(Dispatch),
            exec: Arc::new(ExecContext {
                attempt_timeout: engine_config.attempt_timeout,
                proc_root: config.collect.proc_root.clone(),
                deny_processes: config.heal.deny_processes.clone(),
                root: "/".into(),
                processes: heal::process_finder(&config),
                containers: Arc::new(Containers::at(config.docker.host.clone())),
            }),
            notifier: Some(notifier.clone()),
            next_incident,
            inventory: config.docker.enabled.then(|| containers.clone()),
        };
        let (mut engine, heal) = Engine::new(
            engine_config,
            Policy::new(config.heal.rules.clone(), &config.docker.autoheal_label),
            env,
        );
        let horizon = i64::try_from(engine.memory_horizon().as_millis()).unwrap_or(i64::MAX);
        let past = store
            .attempts_since(clock.wall_ms().saturating_sub(horizon))
            .await
            .context("reading the healing records of earlier runs")?;
        let remembered = engine.remember(&past);
        if remembered > 0 {
            tracing::info!(
                attempts = remembered,
                "remembered the healing attempts of earlier runs"
            );
        }
        parts.push((
            "heal",
            Role::Critical,
            Box::pin(engine.run(stop.child_token())),
        ));

        // Sources and the pipeline.
        let (sink, rx) = sink::channel(config.history.channel_capacity);
        let host_health = SourceHealth::new("host");
        let docker_health = SourceHealth::new("docker");
        let mut sources = vec![host_health.clone()];
        if config.docker.enabled {
            sources.push(docker_health.clone());
        }
        let detection = Detection::new(
            next_anomaly,
            &config.detect,
            ForestDetectorConfig::default(),
        );
        let (heartbeat_tx, heartbeat) = tokio::sync::watch::channel(clock.wall_ms());
        let (pipeline, ends) = Pipeline::new(
            rx,
            sink.clone(),
            store.clone(),
            sources,
            Arc::clone(&clock),
            PipelineConfig {
                bounds: RingBounds {
                    max_points: config.history.max_points_per_series,
                    max_age_ms: config.history.max_age.as_millis_i64(),
                },
                max_series: config.history.max_series,
                interval: config.collect.interval.0,
                publish_every: PUBLISH_EVERY.min(config.collect.interval.0),
                quiet_every: systemd::watchdog_timeout()
                    .map_or(QUIET_PUBLISH, |t| QUIET_PUBLISH.min(t / 4)),
            },
            detection,
        );
        let mut pipeline = pipeline
            .with_heal(heal.clone())
            .with_notifier(notifier.clone())
            .with_heartbeat(heartbeat_tx);
        let sink_for_checks = sink.clone();

        if config.docker.enabled {
            let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(CONTAINER_EVENTS);
            parts.push((
                "docker",
                Role::Optional,
                Box::pin(aegis_collect::docker::run_docker(
                    aegis_collect::docker::DockerConfig {
                        interval: config.docker.interval.0,
                        reconnect: BackoffPolicy::doubling(DOCKER_RECONNECT.0, DOCKER_RECONNECT.1)
                            .with_jitter(0.2),
                        max_containers: MAX_CONTAINERS,
                        host: config.docker.host.clone(),
                        autoheal_label: config.docker.autoheal_label.clone(),
                    },
                    Arc::clone(&clock),
                    sink.clone(),
                    events_tx,
                    view_tx,
                    docker_health,
                    stop.child_token(),
                )),
            ));
            // Container events to the engine, waiting for room: none is
            // dropped while the engine is busy.
            let (heal, stop) = (heal.clone(), stop.child_token());
            parts.push((
                "container-events",
                Role::Critical,
                Box::pin(async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            e = events_rx.recv() => match e {
                                Some(e) => {
                                    if !heal.trigger_wait(Trigger::Container(e)).await {
                                        break;
                                    }
                                }
                                None => break,
                            },
                        }
                    }
                }),
            ));
        }
        let host = HostSource::new(&config.collect.proc_root).excluding(
            config.collect.exclude_interfaces.clone(),
            config.collect.exclude_mountpoints.clone(),
        );
        parts.push((
            "host",
            Role::Optional,
            Box::pin(run_polled(
                host,
                config.collect.interval.0,
                Arc::clone(&clock),
                sink,
                host_health,
                stop.child_token(),
            )),
        ));
        // Checks: every [[checks]], [[probes]] and [[processes]] entry. The
        // owner runs even with none, so that a reload can add some.
        let effective = config.effective_checks();
        let (transitions_tx, transitions) = tokio::sync::mpsc::channel(checks::TRANSITION_QUEUE);
        let (owner, checks_handle) = aegis_collect::check::Checks::new(
            effective.clone(),
            config.probe.clone(),
            aegis_collect::check::CheckContext {
                clock: Arc::clone(&clock),
                proc_root: config.collect.proc_root.clone(),
                latest: Some(ends.latest.clone()),
                containers: config.docker.enabled.then(|| containers.clone()),
            },
            sink_for_checks.clone(),
            transitions_tx,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        pipeline = pipeline.with_checks(checks_handle.view());
        let (check_configs, check_configs_rx) = tokio::sync::watch::channel(Arc::new(effective));
        parts.push((
            "checks",
            Role::Optional,
            Box::pin(owner.run(stop.child_token())),
        ));
        parts.push((
            "check-events",
            Role::Critical,
            Box::pin(checks::fan_out(
                transitions,
                check_configs_rx,
                store.clone(),
                heal.clone(),
                notifier.clone(),
                stop.child_token(),
            )),
        ));
        let checks_api = Some(Arc::new(checks::ChecksApi {
            handle: checks_handle.clone(),
            store: store.clone(),
        }) as Arc<dyn aegis_api::ChecksReader>);
        let live = reload::Live {
            checks: checks_handle,
            check_configs,
            heal: heal.clone(),
            notifier: notifier.clone(),
        };
        parts.push((
            "pipeline",
            Role::Critical,
            Box::pin(pipeline.run(stop.child_token())),
        ));

        // The API.
        let connections = Arc::new(aegis_api::ConnectionStats::default());
        let registry = Arc::new(aegis_api::registry(
            ends.status.clone(),
            ends.latest.clone(),
            Arc::clone(&connections),
        ));
        let state = aegis_api::AppState {
            status: ends.status,
            history: Arc::new(ends.history),
            registry,
            token: config.api.token.as_deref().map(Arc::from),
            read_requires_token: config.api.read_requires_token,
            heal: Some(Arc::new(heal::HealApi(heal))),
            checks: checks_api,
        };
        let limits = aegis_api::Limits {
            max_connections: config.api.max_connections as usize,
            ..aegis_api::Limits::default()
        };
        let api_stop = stop.child_token();
        parts.push((
            "api",
            Role::Critical,
            Box::pin(async move {
                let served = aegis_api::serve(listener, state, limits, connections, async move {
                    api_stop.cancelled().await
                })
                .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "API server failed");
                }
            }),
        ));
        Ok(Agent {
            config,
            paths,
            api,
            store,
            store_thread,
            stop,
            parts,
            heartbeat,
            clock,
            live,
            _lock: state_lock,
        })
    }

    /// The address the API listens on.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// The pipeline's heartbeat: its loop's last publication (Unix ms).
    pub fn heartbeat(&self) -> tokio::sync::watch::Receiver<i64> {
        self.heartbeat.clone()
    }

    /// Runs every part until `shutdown` fires (or a critical part dies),
    /// then shuts down. `on_started` is called once everything runs; each
    /// configuration from `reloads` is applied where it can be
    /// ([`reload`]).
    pub async fn run(
        self,
        shutdown: CancellationToken,
        mut reloads: tokio::sync::mpsc::Receiver<reload::Request>,
        on_started: impl FnOnce(Started),
    ) -> anyhow::Result<()> {
        let tasks = Tasks::new();
        for (name, role, task) in self.parts {
            tasks.spawn(name, role, task);
        }
        tasks.close();
        tracing::info!(
            api = %self.api,
            state_dir = %self.paths.state_dir.display(),
            db = %self.paths.db.display(),
            interval = %self.config.collect.interval,
            "aegis running"
        );
        on_started(Started { api: self.api });
        let systemd = systemd::Systemd::from_env();
        systemd.ready();
        let watchdog = match systemd::watchdog_timeout().filter(|_| systemd.enabled()) {
            Some(timeout) => {
                tracing::info!(timeout = ?timeout, "pinging the systemd watchdog from the pipeline's heartbeat");
                Some(tokio::spawn(systemd::watchdog(
                    systemd.clone(),
                    timeout,
                    self.heartbeat.clone(),
                    Arc::clone(&self.clock),
                    self.stop.clone(),
                )))
            }
            None => None,
        };
        let mut running = self.config.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tasks.failed() => break,
                Some(request) = reloads.recv() => {
                    systemd.reloading();
                    match request {
                        Ok(new) => match reload::apply(&self.live, &mut running, new).await {
                            Ok(outcome) => reload::log(&outcome),
                            Err(e) => tracing::error!(
                                error = %e,
                                "the reloaded configuration cannot be applied; the agent keeps running on the previous one"
                            ),
                        },
                        Err(e) => tracing::error!(
                            problems = %e,
                            "the reloaded configuration is refused; the agent keeps running on the previous one"
                        ),
                    }
                    systemd.ready();
                }
            }
        }
        systemd.stopping();
        if let Some(w) = watchdog {
            w.abort();
        }
        let result = shutdown::stop(
            &tasks,
            self.stop,
            self.store,
            self.store_thread,
            self.config.agent.shutdown_timeout.0,
        )
        .await;
        match (tasks.failure(), result) {
            (Some(why), _) => anyhow::bail!("{why}; the agent stopped"),
            (None, r) => r,
        }
    }
}

/// Builds and runs the agent until `shutdown` fires, applying each
/// configuration from `reloads`. `on_started` is called once the API listens.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    reloads: tokio::sync::mpsc::Receiver<reload::Request>,
    on_started: impl FnOnce(Started),
) -> anyhow::Result<()> {
    Agent::build(config)
        .await?
        .run(shutdown, reloads, on_started)
        .await
}
