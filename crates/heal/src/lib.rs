//! Healing: what to do about a problem, and doing it without making things
//! worse.
//!
//! - [`breaker`]: the per-target circuit breaker that cannot stay open
//!   (it lives in `core`: endpoint checks use it too).
//! - [`guard`]: every check an action passes (pause, maintenance, breaker,
//!   cooldown, rate limit, budget, concurrency, dry-run).
//! - [`exec`]: the executors, argv only, each with a timeout, and the
//!   dispatch from an action to its executor.
//! - [`policy`]: which rule answers a trigger.
//! - [`engine`]: the task that climbs ladders, verifies and records.
//!
//! Healing knows nothing of the sources: container events arrive as
//! `aegis_core::container` values, watched processes through a
//! [`exec::ProcessFinder`], alerts leave through `aegis_notify`.

pub use aegis_core::breaker;
pub mod engine;
pub mod exec;
pub mod guard;
pub mod policy;

/// Every action name a record can carry (metric labels stay bounded).
pub const ACTION_NAMES: &[&str] = &[
    "none",
    "container_restart",
    "container_stop_start",
    "container_stop",
    "container_kill",
    "redis_flush",
    "memcached_flush",
    "signal",
    "service_restart",
    "command",
    "webhook",
];
