//! The command line: raw flags parsed by clap, then turned into a validated
//! [`Config`] before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use aegis_core::config::{Config, ConfigError, Interval, LogFormat, Problem};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// Exit code for a configuration that cannot be used (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Aegis Sentinel: a self-healing host agent.
#[derive(Debug, Parser)]
#[command(name = "aegis", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (no config file needed).
    Run(RunArgs),
    /// Show what a running agent sees.
    Status(StatusArgs),
    /// Incidents (anomalies with the healing they caused), newest first.
    Incidents(HistoryArgs),
    /// Healing records (decisions, skips, attempts, verdicts), newest first.
    Actions(HistoryArgs),
    /// Every check: state, since when, results in a row, the last result.
    Checks(StatusArgs),
    /// Check a configuration file and point at every problem.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print a fully commented default configuration.
    Init,
    /// Notifications: `aegis notify test` sends a test message to each
    /// receiver and prints each reply or why it failed.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Run the detectors offline over a CSV (`timestamp` plus value columns).
    Detect(DetectArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send a test message to every receiver (or one) and print each reply
    /// or the reason it failed; exits non-zero when any failed.
    Test {
        /// Configuration file (TOML), as `aegis run` reads it.
        #[arg(long, short, env = "AEGIS_CONFIG")]
        config: Option<PathBuf>,
        /// Only the receiver of this name (`webhook-N` for notify.webhooks).
        #[arg(long)]
        receiver: Option<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Configuration file (TOML). Without it, the defaults apply.
    #[arg(long, short, env = "AEGIS_CONFIG")]
    config: Option<PathBuf>,
    /// Address for the API and dashboard (overrides api.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// State directory (overrides agent.state_dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Collection interval, like 5s (overrides collect.interval).
    #[arg(long)]
    interval: Option<Interval>,
    /// Log format (overrides log.format).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log level or filter, like debug (overrides RUST_LOG and log.level).
    #[arg(long)]
    log_level: Option<String>,
    /// The API token (overrides api.token), from the environment only, so
    /// that it stays out of the process list and of a shared configuration
    /// file (a Kubernetes Secret, a systemd credential).
    #[arg(skip = env_token())]
    token: Option<String>,
}

#[derive(Debug, clap::Args)]
struct HistoryArgs {
    /// Only since this long ago (`24h`, `30m`) or this Unix ms time.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Only this target (a container, a series, an address...).
    #[arg(long)]
    target: Option<String>,
    /// Most rows.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    agent: AgentAddress,
}

/// Where the running agent is, for the commands that read it.
#[derive(Debug, clap::Args)]
struct AgentAddress {
    /// The agent's API, e.g. http://127.0.0.1:9477. Default: from --config,
    /// else the default address.
    #[arg(long, env = "AEGIS_URL")]
    url: Option<String>,
    /// Configuration file to take the API address and token from.
    #[arg(long, short, env = "AEGIS_CONFIG")]
    config: Option<PathBuf>,
    /// Bearer token, when the API needs one for reads.
    #[arg(long, env = "AEGIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl AgentAddress {
    fn endpoint(self) -> anyhow::Result<crate::client::Endpoint> {
        crate::client::Endpoint::resolve(self.url, self.config, self.token)
    }
}

#[derive(Debug, clap::Args)]
struct DetectArgs {
    /// The CSV to score: a `timestamp` column (Unix seconds or ms, or a
    /// date-time) and one or more value columns.
    file: PathBuf,
    /// Write the scored CSV here instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Score only this column (default: every column but `timestamp` and `label`).
    #[arg(long)]
    column: Option<String>,
    /// Skip malformed rows and report how many, instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Auto,
    Json,
    Text,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    agent: AgentAddress,
    /// Print the raw status as JSON.
    #[arg(long)]
    json: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Status(args) => crate::client::run_printing(async move {
            crate::client::status(args.agent.endpoint()?, args.json).await
        }),
        // As `run` would read it: AEGIS_API_TOKEN stands for api.token.
        Command::CheckConfig { file } => match Config::from_file_with(&file, |c| {
            if let Some(token) = env_token() {
                c.api.token = Some(token);
            }
        }) {
            Ok(_) => {
                crate::output::out(&format!("{}: ok", file.display()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                crate::output::err(&e.to_string());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Detect(args) => detect(args),
        Command::Notify {
            command: NotifyCommand::Test { config, receiver },
        } => notify_test(config, receiver),
        Command::Checks(args) => crate::client::run_printing(async move {
            let endpoint = args.agent.endpoint()?;
            let body = endpoint.get_text("/api/v1/checks").await?;
            if args.json {
                return Ok(body);
            }
            let checks: Vec<aegis_core::check::CheckStatus> = serde_json::from_str(&body)?;
            Ok(crate::client::render_checks(&checks))
        }),
        Command::Incidents(args) => history(args, true),
        Command::Actions(args) => history(args, false),
        Command::Init => {
            crate::output::out(aegis_core::config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::Version => {
            crate::output::out(&format!("aegis {}", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
    }
}

fn notify_test(config: Option<PathBuf>, receiver: Option<String>) -> ExitCode {
    let config = match crate::agent::paths::config_file(config.as_deref()) {
        Some(path) => match Config::from_file(&path) {
            Ok(c) => c,
            Err(e) => {
                crate::output::err(&e.to_string());
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => Config::default(),
    };
    let runtime = match crate::client::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(crate::notify::test(&config, receiver.as_deref())) {
        Ok(report) => {
            crate::output::out(&report.render());
            if report.all_delivered() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            crate::output::err(&format!("error: {e:#}"));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn history(args: HistoryArgs, incidents: bool) -> ExitCode {
    crate::client::run_printing(async move {
        let endpoint = args.agent.endpoint()?;
        let mut query = format!("since={}&limit={}", urlencode(&args.since), args.limit);
        if let Some(t) = &args.target {
            query.push_str(&format!("&target={}", urlencode(t)));
        }
        if incidents {
            let rows: Vec<aegis_core::status::Incident> =
                endpoint.get(&format!("/api/v1/incidents?{query}")).await?;
            Ok(if args.json {
                serde_json::to_string_pretty(&rows)?
            } else {
                crate::client::render_incidents(&rows)
            })
        } else {
            let rows: Vec<aegis_core::status::ActionRecord> =
                endpoint.get(&format!("/api/v1/actions?{query}")).await?;
            Ok(if args.json {
                serde_json::to_string_pretty(&rows)?
            } else {
                crate::client::render_actions(&rows)
            })
        }
    })
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Exit code for input data that cannot be used (EX_DATAERR).
pub const EXIT_DATA: u8 = 65;

/// Exit code for an input file that cannot be opened (EX_NOINPUT).
pub const EXIT_NO_INPUT: u8 = 66;

fn detect(args: DetectArgs) -> ExitCode {
    let options = crate::offline::DetectOptions {
        input: args.file,
        output: args.out,
        column: args.column,
        skip_bad_rows: args.skip_bad_rows,
    };
    match crate::offline::run(&options) {
        Ok(summary) => {
            crate::output::err(&format!(
                "{}: {} rows scored, {} alerts{}{}",
                options.input.display(),
                summary.rows,
                summary.alerts,
                if summary.missing > 0 {
                    format!(", {} rows without a value", summary.missing)
                } else {
                    String::new()
                },
                if summary.skipped > 0 {
                    format!(", {} malformed rows skipped", summary.skipped)
                } else {
                    String::new()
                }
            ));
            for example in &summary.examples {
                crate::output::err(&format!("  skipped {example}"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::output::err(&format!("error: {e:#}"));
            match e.downcast_ref::<crate::offline::InputError>() {
                Some(crate::offline::InputError::Missing { .. }) => ExitCode::from(EXIT_NO_INPUT),
                Some(_) => ExitCode::from(EXIT_DATA),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Loads the file (if any), applies the flags, then validates the result:
/// flags can make a valid file invalid (a public --listen without a token)
/// and an incomplete one valid (the token from the environment).
fn config_for_run(args: &RunArgs) -> Result<Config, ConfigError> {
    let adjust = |config: &mut Config| {
        if let Some(listen) = args.listen {
            config.api.listen = listen;
        }
        if let Some(dir) = &args.state_dir {
            config.agent.state_dir = Some(dir.clone());
        }
        if let Some(interval) = args.interval {
            config.collect.interval = interval;
        }
        if let Some(token) = &args.token {
            config.api.token = Some(token.clone());
        }
        if let Some(format) = args.log_format {
            config.log.format = match format {
                LogFormatArg::Auto => LogFormat::Auto,
                LogFormatArg::Json => LogFormat::Json,
                LogFormatArg::Text => LogFormat::Text,
            };
        }
    };
    match crate::agent::paths::config_file(args.config.as_deref()) {
        Some(path) => Config::from_file_with(&path, adjust),
        None => {
            let mut config = Config::default();
            adjust(&mut config);
            let problems = config.validate();
            if problems.is_empty() {
                return Ok(config);
            }
            Err(ConfigError {
                file: None,
                problems: problems
                    .into_vec()
                    .into_iter()
                    .map(|(field, message)| Problem {
                        line: None,
                        column: None,
                        field,
                        message,
                    })
                    .collect(),
            })
        }
    }
}

/// The API token from the environment (`AEGIS_API_TOKEN`), if set.
fn env_token() -> Option<String> {
    std::env::var("AEGIS_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

fn run(args: RunArgs) -> ExitCode {
    let config = match config_for_run(&args) {
        Ok(c) => c,
        Err(e) => {
            crate::output::err(&format!(
                "error: the agent cannot start with this configuration\n{e}"
            ));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = crate::logging::init(
        config.log.format,
        config.log.level.as_str(),
        args.log_level.as_deref(),
    ) {
        crate::output::err(&format!("error: {e:#}"));
        return ExitCode::from(EXIT_CONFIG);
    }
    crate::logging::install_panic_hook();
    crate::agent::limits::raise_open_files();
    // One thread runs every task; SQLite has its own. A host agent should be
    // light, and nothing here needs parallel CPU.
    let runtime = match crate::client::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(RELOADS_WAITING);
        let hangups = tokio::spawn(reload_on_hangup(args, reload_tx));
        let result = crate::agent::run(config, shutdown.clone(), reloads, |_| {}).await;
        signals.abort();
        hangups.abort();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "aegis stopped with an error");
            crate::output::err(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Reloads waiting for the agent at most; a SIGHUP beyond is dropped (the
/// next one reads the file again anyway).
const RELOADS_WAITING: usize = 2;

/// On each SIGHUP, reads the configuration again with the same flags and
/// hands the result (or why it is refused) to the agent.
async fn reload_on_hangup(
    args: RunArgs,
    reloads: tokio::sync::mpsc::Sender<crate::agent::reload::Request>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reloading needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        if reloads.try_send(config_for_run(&args)).is_err() {
            tracing::warn!("a reload is already waiting; this SIGHUP is folded into it");
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = shutdown.cancelled() => return,
    };
    tracing::info!(signal = name, "signal received");
    shutdown.cancel();
}
