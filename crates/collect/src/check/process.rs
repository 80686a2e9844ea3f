//! `process` checks: processes found by exact name, command line or
//! pidfile. Fewer than `min_count` (default 1) or more than `max_count`
//! fail, so do more than `max_restarts` restarts within `restart_window`
//! (a crash loop), and CPU or memory above their bounds for longer than
//! `for`. Each run feeds the `process_*` series.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, DEFAULT_RESTART_WINDOW};

use super::Run;
use crate::process::{list, ProcessWatch};

/// A process check's probe.
pub struct ProcessProbe {
    root: PathBuf,
    watch: ProcessWatch,
    min_count: usize,
    max_count: Option<usize>,
    max_restarts: Option<u32>,
    restart_window: Duration,
    restarts: VecDeque<Duration>,
    max_cpu_cores: Option<f64>,
    max_rss: Option<f64>,
    sustain: Duration,
    over_since: Option<Duration>,
}

impl ProcessProbe {
    /// The probe of a validated `process` check.
    pub fn new(c: &CheckConfig, root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            watch: ProcessWatch::new(c.process_selector()),
            min_count: c.min_count.unwrap_or(1) as usize,
            max_count: c.max_count.map(|n| n as usize),
            max_restarts: c.max_restarts,
            restart_window: c.restart_window.map_or(DEFAULT_RESTART_WINDOW, |w| w.0),
            restarts: VecDeque::new(),
            max_cpu_cores: c.max_cpu_cores,
            max_rss: c.max_rss.map(|b| b.0 as f64),
            sustain: c.for_.map_or(Duration::ZERO, |f| f.0),
            over_since: None,
        }
    }

    /// Reads `/proc` once, at monotonic `now`.
    pub fn run(&mut self, now: Duration, at_ms: i64) -> Run {
        let procs = list(&self.root, self.watch.needs_cmdline());
        let mut observations = Vec::new();
        let mut errors = Vec::new();
        let s = self.watch.collect(
            &self.root,
            &procs,
            now,
            at_ms,
            &mut observations,
            &mut errors,
        );
        for _ in 0..s.restarts {
            self.restarts.push_back(now);
        }
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.restart_window)
        {
            self.restarts.pop_front();
        }
        let name = self.watch.watched().name.to_string();
        let over = self
            .max_cpu_cores
            .is_some_and(|m| s.cpu_cores.is_some_and(|c| c > m))
            || self.max_rss.is_some_and(|m| s.count > 0 && s.rss_bytes > m);
        if over {
            self.over_since.get_or_insert(now);
        } else {
            self.over_since = None;
        }
        let outcome = if s.count < self.min_count {
            let why = errors.first().cloned().unwrap_or_default();
            CheckOutcome::failed(
                FailureClass::Missing,
                format!(
                    "{} matching process{} of {name} run{}, at least {} expected{}",
                    s.count,
                    if s.count == 1 { "" } else { "es" },
                    if s.count == 1 { "s" } else { "" },
                    self.min_count,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                ),
            )
        } else if self.max_count.is_some_and(|m| s.count > m) {
            CheckOutcome::failed(
                FailureClass::TooMany,
                format!(
                    "{} processes of {name} run, at most {} expected",
                    s.count,
                    self.max_count.unwrap_or(0)
                ),
            )
        } else if self
            .max_restarts
            .is_some_and(|m| self.restarts.len() > m as usize)
        {
            CheckOutcome::failed(
                FailureClass::Restarting,
                format!(
                    "{name} restarted {} times within {:?}",
                    self.restarts.len(),
                    self.restart_window
                ),
            )
        } else if self
            .over_since
            .is_some_and(|t| now.saturating_sub(t) >= self.sustain)
        {
            CheckOutcome::failed(
                FailureClass::Resources,
                format!(
                    "{name} uses {} cores and {:.0} MiB, over its bounds for {:?}",
                    s.cpu_cores.map_or("?".to_string(), |c| format!("{c:.2}")),
                    s.rss_bytes / f64::from(1 << 20),
                    now.saturating_sub(self.over_since.unwrap_or(now))
                ),
            )
        } else {
            CheckOutcome::Passed
        };
        Run {
            outcome,
            latency: None,
            value: Some(s.count as f64),
            observations,
        }
    }
}
