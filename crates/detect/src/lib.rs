//! Detection: streaming detectors that learn what normal looks like and
//! score how unusual each new observation is.
//!
//! Pure, synchronous code: no tokio, no I/O, time passed in as a number of
//! seconds. Every score is a number in `[0, 1]` with the same meaning on every
//! series: `1 - p`, where `p` is the estimated rate, per observation, of
//! excursions at least this extreme on this series (see [`calibrate`]).
//! Detectors say explicitly when they are still warming up and never invent
//! an anomaly meanwhile.
//!
//! - [`series`]: the univariate ensemble (robust baseline, spikes, CUSUM
//!   shifts, slow drift, variance bursts, daily seasonality, flat-lines, gaps),
//!   with an explanation of what moved.
//! - [`alert`]: turns scores into anomalies with hysteresis.
//! - [`forest`]: an isolation forest for multivariate host features, and
//!   [`model`], the slot that publishes trained versions atomically.
//! - [`eval`]: the labeled-series generator and the event-level scorer.

pub mod alert;
pub mod calibrate;
pub mod eval;
pub mod forest;
pub mod model;
pub mod series;

use serde::{Deserialize, Serialize};

/// Whether a detector has seen enough to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Still learning: `seen` of the `needed` observations so far.
    WarmingUp {
        /// Observations needed before judging.
        needed: u32,
        /// Observations seen.
        seen: u32,
    },
    /// Judging.
    Ready,
}

impl State {
    /// Whether the detector judges.
    pub fn is_ready(&self) -> bool {
        matches!(self, State::Ready)
    }
}

/// The result of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `1 - p`, in `[0, 1]`; 0 while warming up.
    pub value: f64,
    /// The detector's state after this observation.
    pub state: State,
}

impl Score {
    /// A score while warming up: always 0.
    pub fn warming(needed: u32, seen: u32) -> Self {
        Self {
            value: 0.0,
            state: State::WarmingUp { needed, seen },
        }
    }

    /// The tail probability behind the score.
    pub fn p(&self) -> f64 {
        1.0 - self.value
    }
}

/// A streaming detector over one value per observation.
pub trait Detector {
    /// Feeds one observation at `now` (seconds) and scores it.
    fn observe(&mut self, value: f64, now: f64) -> Score;
    /// The detector's state.
    fn state(&self) -> State;
}

/// How bad an anomaly is, from its tail probability: the agent's one
/// severity type.
pub use aegis_core::Severity;
