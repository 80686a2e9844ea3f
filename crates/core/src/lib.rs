//! Domain types shared by every part of Aegis Sentinel: observations and the
//! series they belong to, bounded history, counter-to-rate conversion, the
//! clock, the agent's status snapshot and its configuration.
//!
//! Nothing here performs I/O or knows about tokio, SQLite, HTTP or Docker;
//! the other crates build on these types.

pub mod action;
pub mod breaker;
pub mod clock;
pub mod config;
pub mod counter;
pub mod observation;
pub mod ring;
pub mod status;

pub use clock::{Clock, ManualClock, SystemClock};
pub use observation::{Family, Observation, Reading, SeriesKey};
