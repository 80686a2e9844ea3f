//! Healing: what to do about a problem, and doing it without making things
//! worse.
//!
//! - [`breaker`]: the per-target circuit breaker that cannot stay open.
//! - [`guard`]: every check an action passes (pause, maintenance, breaker,
//!   cooldown, rate limit, budget, concurrency, dry-run).
//! - [`exec`]: the executors, argv only, each with a timeout.
//! - [`policy`]: which rule answers a trigger.
//! - [`engine`]: the task that climbs ladders, verifies and records.

/// The circuit breaker lives in `core`: endpoint probes use it too.
pub use aegis_core::breaker;
pub mod engine;
pub mod exec;
pub mod guard;
pub mod policy;
