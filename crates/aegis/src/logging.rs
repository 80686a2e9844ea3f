//! Logs: JSON lines when stderr is not a terminal, text when it is, or as
//! chosen. The level comes from `--log-level`, else `RUST_LOG`, else the
//! config.
//!
//! Logging never stops the agent: a line that cannot be written (stderr
//! closed, a pipe whose reader went away, a full disk behind a redirect) is
//! dropped and counted (`aegis_log_lines_dropped_total`), never retried,
//! never a panic. The agent keeps healing with nobody reading its log.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use aegis_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Log lines that could not be written since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines that could not be written since start.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Standard error that swallows its own failures: each event is written
/// in one `write_all`, and a failure drops that line and counts it.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QuietStderr {
    type Writer = QuietStderr;
    fn make_writer(&'a self) -> Self::Writer {
        QuietStderr
    }
}

/// Installs the global subscriber. Returns an error for a bad filter.
pub fn init(format: LogFormat, level: &str, cli_level: Option<&str>) -> anyhow::Result<()> {
    let (filter, from) = match (
        cli_level,
        std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()),
    ) {
        (Some(l), _) => (EnvFilter::try_new(l), "--log-level"),
        (None, Some(env)) => (EnvFilter::try_new(env), "RUST_LOG"),
        (None, None) => (EnvFilter::try_new(level), "log.level"),
    };
    let filter = filter.map_err(|e| anyhow::anyhow!("{from}: invalid log filter: {e}"))?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QuietStderr)
        // The formatter's own fallback on a failed write is `eprintln!`,
        // which panics on a closed stderr.
        .log_internal_errors(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// Logs panics (with where) and counts them, then lets the default
/// handling go on: a panicking task ends, the agent does not.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        crate::agent::tasks::count_panic();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, panic = %payload, "a task panicked");
        // The default hook writes to stderr with eprintln-like code that
        // tolerates failure; run it only where a person may read it.
        if std::io::stderr().is_terminal() {
            previous(info);
        }
    }));
}
