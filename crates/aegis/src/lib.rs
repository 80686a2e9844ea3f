//! The `aegis` binary's library: command line, wiring, pipeline and the
//! client side of `aegis status`. `main.rs` only calls [`cli::main`].

pub mod agent;
pub mod cli;
pub mod client;
pub mod detection;
pub mod logging;
pub mod notify;
pub mod offline;
pub mod output;
pub mod pipeline;
