//! From scores to anomalies, with hysteresis: an anomaly opens when the
//! score crosses the open threshold and closes only after the score has
//! stayed below the close threshold for a number of observations, so one
//! incident is one anomaly, not a hundred.

use serde::Serialize;

/// Thresholds of an [`Alerter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertConfig {
    /// Open when the score reaches this (`1 - p`).
    pub open: f64,
    /// Count towards closing while the score is below this.
    pub close: f64,
    /// Close after this many observations in a row below `close`.
    pub close_after: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            // p <= 1e-5 per observation: if the scores are calibrated, about
            // one false alarm in 70 days per series at one-minute resolution.
            open: 0.99999,
            close: 0.999,
            close_after: 10,
        }
    }
}

/// A change of an alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// The anomaly starts with this observation.
    Opened,
    /// The anomaly ended with this observation.
    Closed,
}

/// Per-series alert state.
#[derive(Debug, Clone)]
pub struct Alerter {
    config: AlertConfig,
    open: bool,
    quiet: u32,
}

impl Alerter {
    /// A closed alerter.
    pub fn new(config: AlertConfig) -> Self {
        Self {
            config,
            open: false,
            quiet: 0,
        }
    }

    /// Whether an anomaly is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Feeds a score; returns a transition when the state changed.
    pub fn update(&mut self, score: f64) -> Option<Transition> {
        if !self.open {
            if score >= self.config.open {
                self.open = true;
                self.quiet = 0;
                return Some(Transition::Opened);
            }
            return None;
        }
        if score < self.config.close {
            self.quiet += 1;
            if self.quiet >= self.config.close_after {
                self.open = false;
                self.quiet = 0;
                return Some(Transition::Closed);
            }
        } else {
            self.quiet = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_incident_is_one_anomaly() {
        let mut a = Alerter::new(AlertConfig::default());
        let scores = [
            0.5, 0.999_995, 0.5, 0.999_995, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9,
        ];
        let transitions: Vec<(usize, Transition)> = scores
            .iter()
            .enumerate()
            .filter_map(|(i, s)| a.update(*s).map(|t| (i, t)))
            .collect();
        assert_eq!(
            transitions,
            vec![(1, Transition::Opened), (13, Transition::Closed)]
        );
    }

    #[test]
    fn a_score_between_the_thresholds_keeps_it_open() {
        let mut a = Alerter::new(AlertConfig::default());
        a.update(1.0);
        for _ in 0..100 {
            assert_eq!(a.update(0.9995), None);
        }
        assert!(a.is_open());
    }
}
