//! `container` checks: a container by name must run, not restart more than
//! `max_restarts` times within `restart_window` (a crash loop), and pass
//! its health check when it has one (unless `healthy = false`). A paused
//! container is an operator's choice: no data, never a failure.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, DEFAULT_RESTART_WINDOW};
use aegis_core::container::{ContainerHealth, ContainerInfo};
use tokio::sync::watch;

use super::Run;

/// A container check's probe.
pub struct ContainerProbe {
    container: String,
    max_restarts: Option<u32>,
    window: Duration,
    healthy: bool,
    /// (when, the engine's restart count) as seen.
    counts: VecDeque<(Duration, i64)>,
}

impl ContainerProbe {
    /// The probe of a validated `container` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            container: c
                .container
                .clone()
                .ok_or("a container check needs a container")?,
            max_restarts: c.max_restarts,
            window: c.restart_window.map_or(DEFAULT_RESTART_WINDOW, |w| w.0),
            healthy: c.healthy.unwrap_or(true),
            counts: VecDeque::new(),
        })
    }

    /// Judges the containers as last seen, at monotonic `now`.
    pub fn run(
        &mut self,
        containers: Option<&watch::Receiver<Arc<Vec<ContainerInfo>>>>,
        now: Duration,
    ) -> Run {
        let Some(view) = containers else {
            return Run::of(CheckOutcome::NoData {
                message: "no container engine is watched".into(),
            });
        };
        let all = Arc::clone(&view.borrow());
        let Some(c) = all.iter().find(|c| c.name == self.container) else {
            return Run::of(CheckOutcome::failed(
                FailureClass::NotRunning,
                format!("no container named {:?}", self.container),
            ));
        };
        self.counts.push_back((now, c.restart_count));
        while self
            .counts
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > self.window)
        {
            self.counts.pop_front();
        }
        let restarts = self
            .counts
            .front()
            .map_or(0, |(_, first)| c.restart_count.saturating_sub(*first));
        let outcome = if c.state == "paused" {
            CheckOutcome::NoData {
                message: format!("{} is paused", c.name),
            }
        } else if self.max_restarts.is_some_and(|m| restarts > i64::from(m)) {
            CheckOutcome::failed(
                FailureClass::Restarting,
                format!(
                    "{} restarted {restarts} times within {:?}",
                    c.name, self.window
                ),
            )
        } else if !c.running() {
            CheckOutcome::failed(
                FailureClass::NotRunning,
                format!("{} is {}", c.name, c.state),
            )
        } else if self.healthy && c.health == Some(ContainerHealth::Unhealthy) {
            CheckOutcome::failed(FailureClass::Unhealthy, format!("{} is unhealthy", c.name))
        } else {
            CheckOutcome::Passed
        };
        Run {
            outcome,
            latency: None,
            value: Some(restarts as f64),
            observations: Vec::new(),
        }
    }
}
