//! `[detect]`: the streaming detectors and the isolation forest.

use serde::{Deserialize, Serialize};

use super::Problems;

/// `[detect]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Whether series are scored at all.
    pub enabled: bool,
    /// Observations per series before anything is judged.
    pub warmup: u32,
    /// Further observations before the spike, shift and variance components
    /// judge (their calibration needs to see the series' normal excursions).
    pub settle: u32,
    /// An anomaly opens when a series' tail probability falls to this.
    pub alert_p: f64,
    /// An anomaly closes after this many observations in a row with p above 1e-3.
    pub close_after: u32,
    /// Whether the isolation forest scores the host's combined figures.
    pub forest: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            warmup: 60,
            settle: 300,
            alert_p: 1e-5,
            close_after: 10,
            forest: true,
        }
    }
}

impl DetectConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.range("detect.warmup", self.warmup, 10, 100_000);
        p.check(self.settle <= 1_000_000, "detect.settle", || {
            format!("must be at most 1000000, got {}", self.settle)
        });
        p.check(
            self.alert_p > 0.0 && self.alert_p <= 0.01,
            "detect.alert_p",
            || format!("must be above 0 and at most 0.01, got {}", self.alert_p),
        );
        p.range("detect.close_after", self.close_after, 1, 10_000);
    }
}
