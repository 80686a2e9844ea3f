//! `aegis run`: wires sources, pipeline, store and API together, and stops
//! them in order.
//!
//! Shutdown: the cancellation token tells every task; the sources stop, the
//! pipeline drains what is already in the channel, the API finishes its
//! requests; all under the configured deadline. The store is flushed and
//! closed last, so nothing accepted before the signal is lost.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aegis_collect::{run_polled, sink, HostSource, SourceHealth};
use aegis_core::config::Config;
use aegis_core::ring::RingBounds;
use aegis_core::{Clock, SystemClock};
use aegis_store::StoreOptions;
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use aegis_core::status::ActionRecord;
use aegis_heal::engine::{Engine, EngineConfig, EngineHandle, Trigger};
use aegis_heal::guard::{GuardConfig, MaintenanceWindow};
use aegis_heal::policy::Policy;

use crate::detection::Detection;
use crate::pipeline::{Pipeline, PipelineConfig};
use aegis_detect::forest::ForestDetectorConfig;

/// Where the agent keeps its files when the config does not say.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("aegis");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/aegis");
    }
    PathBuf::from("aegis-state")
}

/// The state directory and database path the config resolves to.
pub fn resolve_paths(config: &Config) -> (PathBuf, PathBuf) {
    let state_dir = config
        .agent
        .state_dir
        .clone()
        .unwrap_or_else(default_state_dir);
    let db = config
        .store
        .path
        .clone()
        .unwrap_or_else(|| state_dir.join("aegis.db"));
    (state_dir, db)
}

/// What a started agent tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    /// The address the API really listens on (port 0 resolved).
    pub api: SocketAddr,
}

/// Runs the agent until `shutdown` fires. `on_started` is called once the
/// API listens.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_started: impl FnOnce(Started),
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (state_dir, db_path) = resolve_paths(&config);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;

    let (store, store_thread) = aegis_store::open(
        &db_path,
        StoreOptions {
            flush_interval: config.store.flush_interval.0,
            retention_max_age: config.store.retention_max_age.0,
            retention_max_size: config.store.retention_max_size.0,
            retention_interval: config.store.retention_interval.0,
            queue_capacity: 1024,
        },
        Arc::clone(&clock),
    )
    .with_context(|| format!("opening the store {}", db_path.display()))?;

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("listening on {} (api.listen)", config.api.listen))?;
    let api_addr = listener.local_addr().context("reading the API address")?;

    let (sink, rx) = sink::channel(config.history.channel_capacity);
    let host_health = SourceHealth::new("host");
    let docker_health = SourceHealth::new("docker");
    let process_health = SourceHealth::new("processes");
    let mut sources = vec![host_health.clone()];
    if config.docker.enabled {
        sources.push(docker_health.clone());
    }
    if !config.processes.is_empty() {
        sources.push(process_health.clone());
    }
    // Anomalies a previous run left open are closed: nobody watched them
    // end. Ids continue from the last one.
    let now_ms = clock.wall_ms();
    let next_id = store
        .query(move |c| {
            let stale = aegis_store::anomalies::close_stale(c, now_ms)?;
            aegis_store::anomalies::next_id(c).map(|id| (id, stale))
        })
        .await
        .context("reading the store")?
        .context("reading the anomalies table")?;
    if next_id.1 > 0 {
        tracing::info!(
            closed = next_id.1,
            "closed anomalies left open by the previous run"
        );
    }
    let detection = Detection::new(next_id.0, &config.detect, ForestDetectorConfig::default());

    let (pipeline, ends) = Pipeline::new(
        rx,
        sink.clone(),
        store.clone(),
        sources,
        Arc::clone(&clock),
        PipelineConfig {
            bounds: RingBounds {
                max_points: config.history.max_points_per_series,
                max_age_ms: i64::try_from(config.history.max_age.0.as_millis()).unwrap_or(i64::MAX),
            },
            max_series: config.history.max_series,
            interval: config.collect.interval.0,
            publish_every: Duration::from_secs(1).min(config.collect.interval.0),
        },
        detection,
    );

    // Healing: the engine, its records to the store, its triggers from
    // Docker and from the pipeline's anomalies.
    let next_incident = store
        .query(|c| aegis_store::actions::next_incident(c))
        .await
        .context("reading the store")?
        .context("reading the actions table")?;
    let (records_tx, mut records_rx) = tokio::sync::mpsc::channel::<ActionRecord>(1024);
    let (mut engine, heal) = Engine::new(
        engine_config(&config),
        Policy::new(config.heal.rules.clone(), &config.docker.autoheal_label),
        Arc::clone(&clock),
        records_tx,
        next_incident,
    );
    // What earlier runs did still counts: cooldowns, rate limits, the
    // budget and the breakers survive a restart (or a crash loop) of the
    // agent.
    let horizon = i64::try_from(engine.memory_horizon().as_millis()).unwrap_or(i64::MAX);
    let since_ms = now_ms.saturating_sub(horizon);
    let past = store
        .query(move |c| aegis_store::actions::attempts_since(c, since_ms))
        .await
        .context("reading the store")?
        .context("reading the actions table")?;
    let remembered = engine.remember(&past);
    if remembered > 0 {
        tracing::info!(
            attempts = remembered,
            "remembered the healing attempts of earlier runs"
        );
    }
    let pipeline = pipeline.with_heal(heal.clone());

    let tasks = TaskTracker::new();
    if !config.processes.is_empty() {
        tasks.spawn(run_polled(
            aegis_collect::process::ProcessSource::new(
                &config.collect.proc_root,
                config.processes.clone(),
            ),
            config.collect.interval.0,
            Arc::clone(&clock),
            sink.clone(),
            process_health,
            shutdown.child_token(),
        ));
    }
    let pipeline = match crate::notify::start(&config.notify, shutdown.child_token(), &tasks) {
        Some(n) => pipeline.with_notifier(n),
        None => pipeline,
    };
    let pipeline = if config.probes.is_empty() {
        pipeline
    } else {
        let view = aegis_collect::probe::spawn_probes(
            config.probes.clone(),
            config.probe.clone(),
            Arc::clone(&clock),
            sink.clone(),
            shutdown.child_token(),
            &tasks,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        pipeline.with_endpoints(view)
    };
    tasks.spawn(engine.run(shutdown.child_token()));
    {
        let store = store.clone();
        tasks.spawn(async move {
            while let Some(record) = records_rx.recv().await {
                let _ = store.write("healing record", move |c| {
                    aegis_store::actions::insert(c, &record).map(|_| ())
                });
            }
        });
    }
    if config.docker.enabled {
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(1024);
        let (view_tx, _view) = tokio::sync::watch::channel(Arc::new(Vec::new()));
        tasks.spawn(aegis_collect::docker::run_docker(
            aegis_collect::docker::DockerConfig {
                interval: config.docker.interval.0,
                max_backoff: Duration::from_secs(30),
                max_containers: 1_000,
            },
            Arc::clone(&clock),
            sink.clone(),
            events_tx,
            view_tx,
            docker_health,
            shutdown.child_token(),
        ));
        let heal = heal.clone();
        let stop = shutdown.child_token();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    e = events_rx.recv() => match e {
                        Some(e) => {
                            if !heal.trigger(Trigger::Container(e)) {
                                tracing::warn!("healing engine busy; a container event was dropped");
                            }
                        }
                        None => break,
                    },
                }
            }
        });
    }
    let sources_stop = shutdown.child_token();
    let host = HostSource::new(&config.collect.proc_root).excluding(
        config.collect.exclude_interfaces.clone(),
        config.collect.exclude_mountpoints.clone(),
    );
    tasks.spawn(run_polled(
        host,
        config.collect.interval.0,
        Arc::clone(&clock),
        sink,
        host_health,
        sources_stop,
    ));
    tasks.spawn(pipeline.run(shutdown.child_token()));

    let registry = Arc::new(aegis_api::registry(
        ends.status.clone(),
        ends.latest.clone(),
    ));
    let state = aegis_api::AppState {
        status: ends.status,
        history: Arc::new(ends.history),
        registry,
        token: config.api.token.as_deref().map(Arc::from),
        read_requires_token: config.api.read_requires_token,
        heal: Some(Arc::new(HealApi(heal))),
    };
    let api_stop = shutdown.child_token();
    tasks.spawn(async move {
        let served =
            aegis_api::serve(listener, state, async move { api_stop.cancelled().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "API server failed");
        }
    });
    tasks.close();

    tracing::info!(
        api = %api_addr,
        state_dir = %state_dir.display(),
        db = %db_path.display(),
        interval = %config.collect.interval,
        "aegis running"
    );
    on_started(Started { api: api_addr });

    shutdown.cancelled().await;
    let deadline = config.agent.shutdown_timeout.0;
    tracing::info!(deadline = ?deadline, "shutting down");
    let started = clock.monotonic();
    let finished = tokio::time::timeout(deadline, tasks.wait()).await.is_ok();
    if !finished {
        tracing::warn!("tasks did not stop within the deadline; closing the store anyway");
    }
    // The store goes last: everything the pipeline drained is committed.
    store.shutdown();
    let left = deadline.saturating_sub(clock.monotonic().saturating_sub(started));
    let closed = tokio::task::spawn_blocking(move || {
        store_thread.join_within(left.max(Duration::from_millis(500)))
    })
    .await
    .unwrap_or(false);
    if !finished || !closed {
        anyhow::bail!(
            "shutdown exceeded its deadline of {}",
            config.agent.shutdown_timeout
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// The engine's settings from the configuration.
pub fn engine_config(config: &Config) -> EngineConfig {
    let h = &config.heal;
    let maintenance = h
        .maintenance
        .iter()
        .filter_map(|w| {
            let days = if w.days.is_empty() {
                0b111_1111
            } else {
                w.days
                    .iter()
                    .filter_map(|d| aegis_core::config::parse_day(d))
                    .fold(0u8, |acc, d| acc | (1 << d))
            };
            Some(MaintenanceWindow {
                days,
                start_minute: aegis_core::config::parse_hhmm(&w.start)?,
                end_minute: aegis_core::config::parse_hhmm(&w.end)?,
            })
        })
        .collect();
    EngineConfig {
        enabled: h.enabled,
        guard: GuardConfig {
            cooldown: h.cooldown.0,
            rate_max: h.rate_max,
            rate_window: h.rate_window.0,
            budget_max: h.budget_max,
            budget_window: h.budget_window.0,
            max_concurrent: h.max_concurrent,
            breaker: aegis_heal::breaker::BreakerConfig {
                failure_threshold: h.breaker_failures,
                base_cooldown: h.breaker_cooldown.0,
                multiplier: 2,
                max_cooldown: h.breaker_max_cooldown.0,
                probe_timeout: h
                    .attempt_timeout
                    .0
                    .saturating_mul(2)
                    .max(Duration::from_secs(60)),
            },
            dry_run: h.dry_run,
            maintenance,
            max_targets: 10_000,
        },
        attempt_timeout: h.attempt_timeout.0,
        retries: h.retries,
        retry_backoff: h.retry_backoff.0,
        verify_window: h.verify_window.0,
        proc_root: config.collect.proc_root.clone(),
        deny_processes: h.deny_processes.clone(),
        alert_webhook: h.alert_webhook.clone(),
        operator_grace: Duration::from_secs(15),
        root: PathBuf::from("/"),
        processes: config.processes.clone(),
    }
}

/// The engine as the API sees it.
struct HealApi(EngineHandle);

impl aegis_api::HealControl for HealApi {
    fn status(&self) -> aegis_api::BoxFuture<'_, Option<serde_json::Value>> {
        Box::pin(async move {
            let status = self.0.status().await?;
            serde_json::to_value(status).ok()
        })
    }

    fn set_paused(&self, paused: bool) -> aegis_api::BoxFuture<'_, bool> {
        Box::pin(self.0.set_paused(paused))
    }

    fn manual(
        &self,
        target: String,
        spec: aegis_core::action::ActionSpec,
    ) -> aegis_api::BoxFuture<'_, Option<i64>> {
        Box::pin(self.0.manual(target, spec))
    }
}
