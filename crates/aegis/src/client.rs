//! `aegis status`: reads a running agent's API and prints a summary people
//! can read at a glance (or the raw JSON for scripts).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aegis_core::config::Config;
use aegis_core::status::{SeriesSummary, Status};
use anyhow::Context;

/// A single-threaded runtime: every command of this binary, the agent
/// included, needs no parallel CPU. Says why on stderr when it cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            crate::output::err(&format!("error: starting the runtime: {e}"));
            ExitCode::FAILURE
        })
}

/// Runs a client command on a small runtime: prints what it returns, or
/// the error, and gives the exit code.
pub fn run_printing(f: impl std::future::Future<Output = anyhow::Result<String>>) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(f) {
        Ok(text) => {
            if crate::output::out(text.trim_end()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            crate::output::err(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `aegis status`: the summary, or the raw JSON.
pub async fn status(endpoint: Endpoint, json: bool) -> anyhow::Result<String> {
    let body = endpoint.get_text("/api/v1/status").await?;
    if json {
        return Ok(body);
    }
    let status: Status = serde_json::from_str(&body)
        .context("the agent's status is not what this version expects")?;
    let series: Vec<SeriesSummary> = endpoint.get("/api/v1/series").await.unwrap_or_default();
    Ok(render(&endpoint.base, &status, &series))
}

fn last(series: &[SeriesSummary], name: &str) -> Option<f64> {
    series
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.last)
        .and_then(|p| p.value)
}

fn family<'a>(
    series: &'a [SeriesSummary],
    family: &'a str,
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    series
        .iter()
        .filter(move |s| s.family == family)
        .filter_map(|s| Some((s.instance.as_deref()?, s.last?.value?)))
}

/// Bytes in binary units.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn ago(now_ms: i64, then_ms: Option<i64>) -> String {
    match then_ms {
        None => "never".to_string(),
        Some(t) => format!("{:.1}s ago", (now_ms - t).max(0) as f64 / 1000.0),
    }
}

/// The readable summary.
pub fn render(base: &str, s: &Status, series: &[SeriesSummary]) -> String {
    let mut o = String::new();
    let up = Duration::from_secs(s.uptime_seconds as u64);
    let _ = writeln!(
        o,
        "Aegis Sentinel {}: up {}, collecting every {}s, API {base}",
        s.version,
        humantime::format_duration(up),
        s.interval_seconds
    );
    let _ = writeln!(o, "\nSources");
    for src in &s.sources {
        let _ = writeln!(
            o,
            "  {:<8} {:<11} last {} ({:.1} ms, {} observations), {} errors in {} collections{}",
            src.name,
            format!("{:?}", src.state).to_lowercase(),
            ago(s.updated_ms, src.last_collection_ms),
            src.last_duration_ms.unwrap_or(0.0),
            src.last_observations,
            src.errors,
            src.collections,
            src.last_error
                .as_deref()
                .map(|e| format!("; last: {e}"))
                .unwrap_or_default(),
        );
    }
    let _ = writeln!(o, "\nHost");
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let _ = writeln!(
        o,
        "  cpu {}   memory {} ({} available)   swap {}   load {} {} {}",
        pct(last(series, "host_cpu_usage_ratio")),
        pct(last(series, "host_memory_used_ratio")),
        last(series, "host_memory_available_bytes").map_or("-".to_string(), human_bytes),
        pct(last(series, "host_swap_used_ratio")),
        last(series, "host_load1").map_or("-".to_string(), |v| format!("{v:.2}")),
        last(series, "host_load5").map_or("-".to_string(), |v| format!("{v:.2}")),
        last(series, "host_load15").map_or("-".to_string(), |v| format!("{v:.2}")),
    );
    for (mount, used) in family(series, "host_filesystem_used_ratio") {
        let _ = writeln!(o, "  filesystem {mount:<24} {:>6} used", pct(Some(used)));
    }
    for (dev, read) in family(series, "host_disk_read_bytes_per_second") {
        let write = last(series, &format!("host_disk_write_bytes_per_second/{dev}")).unwrap_or(0.0);
        let _ = writeln!(
            o,
            "  disk {dev:<10} read {}/s  write {}/s",
            human_bytes(read),
            human_bytes(write)
        );
    }
    for (iface, rx) in family(series, "host_net_rx_bytes_per_second") {
        let tx = last(series, &format!("host_net_tx_bytes_per_second/{iface}")).unwrap_or(0.0);
        let _ = writeln!(
            o,
            "  net  {iface:<10} rx {}/s  tx {}/s",
            human_bytes(rx),
            human_bytes(tx)
        );
    }
    let _ = writeln!(o, "\nPipeline");
    let _ = writeln!(
        o,
        "  channel {}/{} ({} dropped)   {} observations received",
        s.channel.len, s.channel.capacity, s.channel.dropped, s.observations_total
    );
    let _ = writeln!(
        o,
        "  history {} series (bound {}, {} refused), {} points (bound {} per series, {}s)",
        s.history.series.len,
        s.history.series.capacity,
        s.history.series.dropped,
        s.history.points.len,
        s.history.max_points_per_series,
        s.history.max_age_seconds
    );
    let _ = writeln!(o, "\nStore");
    let _ = writeln!(
        o,
        "  {}  {}, last commit {}, {} write errors, {} dropped",
        s.store.path,
        human_bytes(s.store.size_bytes as f64),
        ago(s.updated_ms, s.store.last_flush_ms),
        s.store.write_errors,
        s.store.queue.dropped
    );
    o
}

/// Where the agent's API is and how to authenticate, from the flags.
pub struct Endpoint {
    base: String,
    token: Option<String>,
}

impl Endpoint {
    /// From `--url`, `--config` and `--token` (in that order of precedence).
    pub fn resolve(
        url: Option<String>,
        config: Option<PathBuf>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let file = match crate::agent::paths::config_file(config.as_deref()) {
            Some(path) => Some(Config::from_file(&path)?),
            None => None,
        };
        let base = match (url, &file) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(c)) => format!("http://{}", c.api.listen),
            (None, None) => format!("http://{}", aegis_core::config::DEFAULT_LISTEN),
        };
        let token = token.or_else(|| file.and_then(|c| c.api.token));
        Ok(Self { base, token })
    }

    /// GETs `path` and parses the JSON answer.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.get_text(path).await?;
        serde_json::from_str(&body)
            .with_context(|| format!("{}{path}: unexpected answer", self.base))
    }

    /// GETs `path`; the body of a successful answer.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let mut req = client.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = req.send().await.with_context(|| {
            format!(
                "cannot reach the agent at {} (is `aegis run` running?)",
                self.base
            )
        })?;
        let code = response.status();
        let body = response.text().await.context("reading the answer")?;
        if !code.is_success() {
            anyhow::bail!("{}{path} answered {code}: {body}", self.base);
        }
        Ok(body)
    }
}

/// Local time is not known without a time zone database: times are UTC.
pub fn utc(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replace('T', " ").trim_end_matches('Z').to_string()
}

/// Renders incidents as a readable list: each with its records.
pub fn render_incidents(incidents: &[aegis_core::status::Incident]) -> String {
    let mut o = String::new();
    if incidents.is_empty() {
        o.push_str("no incidents\n");
        return o;
    }
    for i in incidents {
        let ended = i.ended_ms.map(utc).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "{}  {}  {:<9} {:<8} {}  (until {ended} UTC)",
            utc(i.started_ms),
            i.id,
            i.status,
            i.severity,
            i.target
        );
        let _ = writeln!(o, "    {}", i.summary);
        for e in &i.evidence {
            let _ = writeln!(
                o,
                "    {}  evidence  {} {} on {}: {}",
                utc(e.opened_ms).get(11..).unwrap_or(""),
                e.severity,
                e.kind,
                e.series,
                e.explanation
            );
        }
        for a in &i.actions {
            let _ = writeln!(
                o,
                "    {}  {:<20} {:<13} {}",
                utc(a.at_ms).get(11..).unwrap_or(""),
                a.action,
                a.outcome,
                a.reason
            );
        }
    }
    o
}

/// Renders healing records as a table.
pub fn render_actions(actions: &[aegis_core::status::ActionRecord]) -> String {
    let mut o = String::new();
    if actions.is_empty() {
        o.push_str("no actions\n");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<19}  {:>8}  {:<24} {:<20} {:<13} reason",
        "time (UTC)", "incident", "target", "action", "outcome"
    );
    for a in actions {
        let _ = writeln!(
            o,
            "{:<19}  {:>8}  {:<24} {:<20} {:<13} {}",
            utc(a.at_ms),
            a.incident,
            a.target.chars().take(24).collect::<String>(),
            a.action,
            a.outcome,
            a.reason
        );
    }
    o
}

/// Renders the checks as a table.
pub fn render_checks(checks: &[aegis_core::check::CheckStatus]) -> String {
    let mut o = String::new();
    if checks.is_empty() {
        o.push_str("no checks configured ([[checks]] in the configuration)\n");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<20} {:<10} {:<8} {:<19}  {:>5} {:>5}  last result",
        "check", "kind", "state", "since (UTC)", "fails", "oks"
    );
    for c in checks {
        let last = match &c.last {
            None => "-".to_string(),
            Some(r) => {
                let what = match &r.outcome {
                    aegis_core::check::CheckOutcome::Passed => "passed".to_string(),
                    aegis_core::check::CheckOutcome::Failed { class, message } => {
                        format!("{class}: {message}")
                    }
                    aegis_core::check::CheckOutcome::NoData { message } => {
                        format!("no data: {message}")
                    }
                };
                match r.latency_ms {
                    Some(ms) => format!("{what} ({ms:.0} ms)"),
                    None => what,
                }
            }
        };
        let state = if c.blocked_by.is_empty() {
            c.state.to_string()
        } else {
            format!("{} (by {})", c.state, c.blocked_by.join(", "))
        };
        let _ = writeln!(
            o,
            "{:<20} {:<10} {:<8} {:<19}  {:>5} {:>5}  {}",
            c.name,
            c.kind,
            state,
            utc(c.since_ms),
            c.failures_in_row,
            c.successes_in_row,
            last
        );
        if let Some(w) = &c.warning {
            let _ = writeln!(o, "{:<20} warning: {w}", "");
        }
    }
    o
}
