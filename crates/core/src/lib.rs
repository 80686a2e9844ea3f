//! Domain types shared by every part of Aegis Sentinel: observations and the
//! series they belong to, bounded history, counter-to-rate conversion, the
//! clock, severities, container events, the pure state machines (breaker,
//! backoff), the agent's status snapshot and its configuration.
//!
//! Nothing here performs I/O or knows about tokio, SQLite, HTTP or Docker;
//! the other crates build on these types.

pub mod action;
pub mod autoheal;
pub mod backoff;
pub mod breaker;
pub mod check;
pub mod clock;
pub mod config;
pub mod container;
pub mod counter;
pub mod event;
pub mod observation;
pub mod procfs;
pub mod ring;
pub mod severity;
pub mod status;
pub mod template;

pub use clock::{Clock, ManualClock, SystemClock};
pub use observation::{Family, Observation, Reading, SeriesKey};
pub use severity::Severity;
