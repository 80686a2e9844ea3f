//! Running containers' own health checks when the engine does not.
//!
//! Podman runs health checks from systemd timers; without systemd (a
//! container host, a minimal VM) no timer is made, and a container's
//! health stays `starting` for ever: nothing ever turns unhealthy, so
//! nothing is ever healed. When the engine is Podman and an opted-in
//! container's health log has had no entry for three of its intervals
//! since its start period ended, the agent runs that container's check
//! itself through Podman's API, on the container's own interval. Podman
//! records each result as its own (status, failing streak, log, event),
//! so everything else (events, polls, healing's verification) reads the
//! health as if the engine ran it.
//!
//! Once taken over, a container's checks stay with the agent while it
//! exists: the log then holds the agent's own runs, and telling them from
//! the engine's would need more than the log says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::container::ContainerInfo;
use aegis_core::Clock;
use aegis_docker::Engine;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::runner::SourceHealth;

/// Containers whose checks are run at most.
const MAX_DRIVEN: usize = 500;
/// Longest wait between two looks at the containers.
const LOOK: Duration = Duration::from_millis(500);
/// Time allowed to the API beyond the check's own timeout.
const SLACK: Duration = Duration::from_secs(5);

/// One container whose checks the agent runs.
#[derive(Debug)]
struct Driven {
    name: String,
    interval: Duration,
    timeout: Duration,
    next: Instant,
    running: bool,
    in_flight: bool,
    last_error: Option<String>,
}

/// Whether the engine has stopped running `c`'s health check (or never
/// began): its start period is over, three intervals have passed since,
/// and its log has no entry newer than three intervals.
pub fn engine_neglects(c: &ContainerInfo, now_ms: i64) -> bool {
    let (Some(hc), Some(started)) = (c.healthcheck, c.started_at_ms) else {
        return false;
    };
    if !c.running() {
        return false;
    }
    let interval = ms(hc.interval());
    let quiet = 3 * interval + 2_000;
    let grace = ms(hc.start_period()) + quiet;
    now_ms - started >= grace && c.health_checked_ms.is_none_or(|t| now_ms - t >= quiet)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs the checks the engine neglects, for the opted-in containers (those
/// with `label=true`), until the task is aborted. `describe` opens the
/// source's status detail, which then names the containers taken over.
pub async fn run(
    engine: Engine,
    label: String,
    mut view: watch::Receiver<Arc<Vec<ContainerInfo>>>,
    clock: Arc<dyn Clock>,
    health: SourceHealth,
) {
    let mut driven: HashMap<String, Driven> = HashMap::new();
    let mut runs: JoinSet<(String, Result<(), String>)> = JoinSet::new();
    let mut shown: Option<String> = None;
    loop {
        let containers = Arc::clone(&view.borrow_and_update());
        let now_ms = clock.wall_ms();
        let now = Instant::now();
        for c in containers.iter() {
            if let Some(d) = driven.get_mut(&c.id) {
                d.name.clone_from(&c.name);
                d.running = c.running();
                continue;
            }
            let opted = c.labels.get(&label).map(|v| v.trim()) == Some("true");
            if !opted || driven.len() >= MAX_DRIVEN || !engine_neglects(c, now_ms) {
                continue;
            }
            let Some(hc) = c.healthcheck else { continue };
            tracing::warn!(
                container = %c.name,
                engine = %engine.describe(),
                interval = ?hc.interval(),
                "the engine does not run this container's health check (no systemd timers?): the agent runs it"
            );
            driven.insert(
                c.id.clone(),
                Driven {
                    name: c.name.clone(),
                    interval: hc.interval(),
                    timeout: hc.timeout(),
                    next: now,
                    running: true,
                    in_flight: false,
                    last_error: None,
                },
            );
        }
        driven.retain(|id, _| containers.iter().any(|c| &c.id == id));

        for (id, d) in driven.iter_mut() {
            if d.in_flight || !d.running || d.next > now {
                continue;
            }
            d.in_flight = true;
            d.next = now + d.interval;
            let (engine, id, timeout) = (engine.clone(), id.clone(), d.timeout + SLACK);
            runs.spawn(async move {
                let done = aegis_docker::run_health_check(&engine, &id, timeout).await;
                (id, done)
            });
        }

        let detail = describe(&engine, &driven);
        if shown.as_ref() != Some(&detail) {
            health.set_detail(Some(detail.clone()));
            shown = Some(detail);
        }

        let wake = driven
            .values()
            .filter(|d| !d.in_flight && d.running)
            .map(|d| d.next)
            .min()
            .map_or(now + LOOK, |next| next.min(now + LOOK));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(joined) = runs.join_next(), if !runs.is_empty() => {
                if let Ok((id, done)) = joined {
                    if let Some(d) = driven.get_mut(&id) {
                        d.in_flight = false;
                        match done {
                            Ok(()) => d.last_error = None,
                            Err(e) => {
                                if d.last_error.as_ref() != Some(&e) {
                                    tracing::debug!(container = %d.name, error = %e, "running its health check failed");
                                }
                                d.last_error = Some(e);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The source's status detail: the engine, and the containers whose
/// checks the agent runs.
fn describe(engine: &Engine, driven: &HashMap<String, Driven>) -> String {
    if driven.is_empty() {
        return engine.describe();
    }
    let names: BTreeMap<&str, &Driven> = driven.values().map(|d| (d.name.as_str(), d)).collect();
    let list: Vec<String> = names
        .iter()
        .take(20)
        .map(|(name, d)| match &d.last_error {
            Some(e) => format!("{name} (every {:?}; last run failed: {e})", d.interval),
            None => format!("{name} (every {:?})", d.interval),
        })
        .collect();
    let more = names.len().saturating_sub(list.len());
    format!(
        "{}; the engine does not run these containers' health checks (no systemd timers), so the agent runs them: {}{}",
        engine.describe(),
        list.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::container::HealthcheckSpec;

    fn container(started: i64, checked: Option<i64>) -> ContainerInfo {
        let mut c = ContainerInfo::named("id", "web");
        c.healthcheck = Some(HealthcheckSpec {
            interval_ms: Some(1_000),
            timeout_ms: None,
            start_period_ms: Some(10_000),
            retries: Some(2),
        });
        c.started_at_ms = Some(started);
        c.health_checked_ms = checked;
        c
    }

    #[test]
    fn a_check_nobody_runs_is_noticed_after_its_start_period_and_three_intervals() {
        // Start period 10 s, then 3 intervals and 2 s: 15 s.
        assert!(!engine_neglects(&container(0, None), 14_999));
        assert!(engine_neglects(&container(0, None), 15_000));
        // The engine ran it a second ago: it is being run.
        assert!(!engine_neglects(&container(0, Some(59_000)), 60_000));
        // Its last run is old: no longer.
        assert!(engine_neglects(&container(0, Some(40_000)), 60_000));
        let mut stopped = container(0, None);
        stopped.state = "exited".into();
        assert!(!engine_neglects(&stopped, 60_000));
        let mut none = container(0, None);
        none.healthcheck = None;
        assert!(!engine_neglects(&none, 60_000));
    }
}
