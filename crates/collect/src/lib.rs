//! Sources: the tasks that read the world and emit [`Observation`]s into one
//! bounded channel.
//!
//! - [`host`]: CPU, memory, swap, load, filesystems, disk IO and network,
//!   read from procfs (and `statvfs`), with the root configurable so tests use
//!   a fake tree.
//! - [`docker`]: containers, their resource use and Docker's event stream,
//!   with reconnection when the engine goes away.
//! - [`check`]: checks of every kind (http, tcp, tls, process, program,
//!   filesystem, series, container), each on its schedule under one
//!   concurrency limit, and the one owner of their state.
//! - [`process`]: finding watched processes and the series they feed.
//! - [`sink`]: the sending end of the observation channel, which sheds the
//!   newest observation when the channel is full and counts it.
//! - [`runner`]: runs a source on its schedule, records its health, stops on
//!   cancellation.
//! - [`statfs`]: `statvfs` on a helper thread with a timeout, so a hung
//!   mount is reported and skipped instead of stopping the agent.
//!
//! [`Observation`]: aegis_core::Observation

pub mod check;
pub mod docker;
pub mod health_runs;
pub mod host;
pub mod process;
pub mod runner;
pub mod sink;
pub mod statfs;

pub use host::HostSource;
pub use runner::{run_polled, PolledSource, SourceHealth};
pub use sink::ObservationSink;
