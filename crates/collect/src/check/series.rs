//! `series` checks: any series the agent holds (a name, or a `*` pattern
//! over names) above or below a value for at least `for`, as a Prometheus
//! alerting rule's `for` holds an alert pending. A pattern that matches
//! nothing yet is no data (a warning in the status), not a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, Glob};
use aegis_core::status::Latest;
use tokio::sync::watch;

use super::Run;

/// A series check's probe.
pub struct SeriesProbe {
    pattern: Glob,
    above: Option<f64>,
    below: Option<f64>,
    sustain: Duration,
    /// Since when each series breaches (monotonic).
    breaching: HashMap<String, Duration>,
}

impl SeriesProbe {
    /// The probe of a validated `series` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            pattern: c.series.clone().ok_or("a series check needs a series")?,
            above: c.above,
            below: c.below,
            sustain: c.for_.map_or(Duration::ZERO, |f| f.0),
            breaching: HashMap::new(),
        })
    }

    fn breaches(&self, v: f64) -> bool {
        self.above.is_some_and(|a| v > a) || self.below.is_some_and(|b| v < b)
    }

    /// Judges the newest values at monotonic `now`.
    pub fn run(&mut self, latest: Option<&watch::Receiver<Arc<Latest>>>, now: Duration) -> Run {
        let Some(latest) = latest else {
            return Run::of(CheckOutcome::NoData {
                message: "no series are available to this check".into(),
            });
        };
        let latest = Arc::clone(&latest.borrow());
        let matching: Vec<(String, f64)> = latest
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .filter(|(name, _)| self.pattern.matches(name))
            .collect();
        if matching.is_empty() {
            self.breaching.clear();
            return Run::of(CheckOutcome::NoData {
                message: format!("no series matches {:?} yet", self.pattern.as_str()),
            });
        }
        let mut worst: Option<(String, f64, Duration)> = None;
        let mut value = None::<f64>;
        for (name, v) in &matching {
            value = Some(match (value, self.above.is_some()) {
                (Some(w), true) => w.max(*v),
                (Some(w), false) => w.min(*v),
                (None, _) => *v,
            });
            if self.breaches(*v) {
                let since = *self.breaching.entry(name.clone()).or_insert(now);
                let held = now.saturating_sub(since);
                if held >= self.sustain && worst.as_ref().is_none_or(|(_, _, h)| held > *h) {
                    worst = Some((name.clone(), *v, held));
                }
            } else {
                self.breaching.remove(name);
            }
        }
        self.breaching
            .retain(|name, _| matching.iter().any(|(n, _)| n == name));
        let outcome = match worst {
            Some((name, v, held)) => CheckOutcome::failed(
                FailureClass::Threshold,
                format!(
                    "{name} is {v} ({} for {held:?})",
                    match (self.above, self.below) {
                        (Some(a), _) if v > a => format!("above {a}"),
                        (_, Some(b)) => format!("below {b}"),
                        _ => "out of bounds".into(),
                    }
                ),
            ),
            None => CheckOutcome::Passed,
        };
        Run {
            outcome,
            latency: None,
            value,
            observations: Vec::new(),
        }
    }
}
