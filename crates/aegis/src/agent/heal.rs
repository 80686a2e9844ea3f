//! Healing's place in the agent: its settings from the configuration, its
//! records to the store, the watched processes it may signal, and the
//! engine as the API sees it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::config::{Config, ProcessConfig};
use aegis_core::status::ActionRecord;
use aegis_heal::engine::{EngineConfig, EngineHandle, Recorder, Settings};
use aegis_heal::exec::{ProcessFinder, WatchedProcess};
use aegis_heal::guard::{GuardConfig, MaintenanceWindow};
use aegis_store::{StoreEvent, StoreHandle};

/// A `die` within this long of a `kill`/`stop` is an operator's stop (or
/// the agent's own restart), not a crash.
pub const OPERATOR_GRACE: Duration = Duration::from_secs(15);
/// Targets the guard remembers at most (the idlest are forgotten first).
pub const MAX_GUARD_TARGETS: usize = 10_000;
/// Breakers grow their cooldown by this factor per consecutive trip.
pub const BREAKER_GROWTH: u32 = 2;
/// A half-open breaker's probe that never reported back expires after
/// twice the attempt timeout, and never sooner than this.
pub const MIN_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a reload can change of healing while it runs: the engine's
/// settings and the executors' timeout and deny-list.
pub fn settings(config: &Config) -> Settings {
    Settings {
        engine: engine_config(config),
        attempt_timeout: config.heal.attempt_timeout.0,
        deny_processes: config.heal.deny_processes.clone(),
    }
}

/// The engine's settings from the configuration. Every value is typed
/// already: nothing here parses text or falls back.
pub fn engine_config(config: &Config) -> EngineConfig {
    let h = &config.heal;
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
                multiplier: BREAKER_GROWTH,
                max_cooldown: h.breaker_max_cooldown.0,
                probe_timeout: h.attempt_timeout.0.saturating_mul(2).max(MIN_PROBE_TIMEOUT),
            },
            dry_run: h.dry_run,
            maintenance: h
                .maintenance
                .iter()
                .map(|w| MaintenanceWindow {
                    days: w.day_bits(),
                    start_minute: w.start.minutes(),
                    end_minute: w.end.minutes(),
                })
                .collect(),
            max_targets: MAX_GUARD_TARGETS,
        },
        attempt_timeout: h.attempt_timeout.0,
        retries: h.retries,
        retry_backoff: h.retry_backoff.0,
        verify_window: h.verify_window.0,
        alert_webhook: h.alert_webhook.clone(),
        operator_grace: OPERATOR_GRACE,
        check_backoff: aegis_core::check::HealBackoffPolicy::default(),
    }
}

/// Healing records go to the store's event queue: kept in order until
/// committed, never shed for room.
pub struct StoreRecorder(pub StoreHandle);

impl Recorder for StoreRecorder {
    fn record(&self, record: ActionRecord) {
        self.0.append(StoreEvent::Action(record));
    }
}

/// The watched processes, found under the configured procfs.
pub struct WatchedProcesses {
    /// Where procfs is.
    pub proc_root: PathBuf,
    /// The watched processes by name.
    pub watched: Vec<ProcessConfig>,
}

impl ProcessFinder for WatchedProcesses {
    fn find(&self, name: &str) -> Option<Vec<WatchedProcess>> {
        let w = self.watched.iter().find(|p| p.name.as_str() == name)?;
        Some(
            aegis_collect::process::find(&self.proc_root, w)
                .into_iter()
                .map(|p| WatchedProcess {
                    pid: p.pid,
                    start_time: p.start_time,
                })
                .collect(),
        )
    }
}

/// The engine as the API sees it.
pub struct HealApi(pub EngineHandle);

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

/// The processes healing may signal (`pid = 0`): the process checks (and
/// the `[[processes]]` entries, which are process checks).
pub fn process_finder(config: &Config) -> Arc<dyn ProcessFinder> {
    Arc::new(WatchedProcesses {
        proc_root: config.collect.proc_root.clone(),
        watched: config
            .effective_checks()
            .iter()
            .filter(|c| c.kind == aegis_core::config::CheckKind::Process)
            .map(|c| c.process_selector())
            .collect(),
    })
}
