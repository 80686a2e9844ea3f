//! Logs: JSON lines when stderr is not a terminal, text when it is, or as
//! chosen. The level comes from `--log-level`, else `RUST_LOG`, else the
//! config.

use std::io::IsTerminal;

use aegis_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Returns an error for a bad filter.
pub fn init(format: LogFormat, level: &str, cli_level: Option<&str>) -> anyhow::Result<()> {
    let filter = match (
        cli_level,
        std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()),
    ) {
        (Some(l), _) => EnvFilter::try_new(l),
        (None, Some(env)) => EnvFilter::try_new(env),
        (None, None) => EnvFilter::try_new(level),
    }
    .map_err(|e| anyhow::anyhow!("invalid log level: {e}"))?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}
