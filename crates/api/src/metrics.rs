//! `/metrics`: everything is derived at scrape time from the snapshots the
//! pipeline publishes (status and newest values), so there is no second set
//! of counters to keep in step. Label values are bounded: source names,
//! drop reasons and the instances of host series (CPUs, mounts, devices,
//! interfaces), never free text.

use std::sync::Arc;

use aegis_core::status::{Latest, SourceState, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::sync::watch;

use crate::serve::ConnectionStats;
use std::sync::atomic::Ordering;

/// Prefix of every exported series.
pub const PREFIX: &str = "aegis_";

/// Encodes the agent's own health and the newest host values.
#[derive(Debug)]
pub struct AgentCollector {
    status: watch::Receiver<Status>,
    latest: watch::Receiver<Arc<Latest>>,
    connections: Arc<ConnectionStats>,
}

impl AgentCollector {
    /// A collector reading the two snapshots and the listener's figures.
    pub fn new(
        status: watch::Receiver<Status>,
        latest: watch::Receiver<Arc<Latest>>,
        connections: Arc<ConnectionStats>,
    ) -> Self {
        Self {
            status,
            latest,
            connections,
        }
    }
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

/// A family with one label, one sample per (label value, value).
fn labelled<'a, V: Copy + 'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, V)>,
    mut write: impl FnMut(
        prometheus_client::encoding::MetricEncoder<'_>,
        V,
    ) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (value, v) in samples {
        let labels = [(label, value)];
        write(m.encode_family(&labels)?, v)?;
    }
    Ok(())
}

/// The healing engine's figures. Label values are bounded: action kinds,
/// outcomes, skip reasons and breaker states.
fn encode_heal(
    e: &mut DescriptorEncoder<'_>,
    h: &aegis_core::status::HealSummary,
) -> Result<(), std::fmt::Error> {
    gauge(
        e,
        "aegis_heal_paused",
        "1 while healing is paused.",
        f64::from(u8::from(h.paused)),
    )?;
    gauge(
        e,
        "aegis_heal_dry_run",
        "1 when healing runs in dry-run.",
        f64::from(u8::from(h.dry_run)),
    )?;
    gauge(
        e,
        "aegis_heal_in_flight",
        "Healing attempts running.",
        f64::from(h.in_flight),
    )?;
    gauge(
        e,
        "aegis_heal_open_incidents",
        "Incidents being handled.",
        h.open_incidents as f64,
    )?;
    labelled(
        e,
        "aegis_heal_breakers",
        "Circuit breakers by state (closed ones are not counted).",
        MetricType::Gauge,
        "state",
        [
            ("open", h.breakers_open),
            ("half_open", h.breakers_half_open),
        ],
        |m, v| ConstGauge::new(v as i64).encode(m),
    )?;
    {
        let mut m = e.encode_descriptor(
            "aegis_heal_records",
            "Healing records by action and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (action, outcome, n) in &h.outcomes {
            let labels = [("action", action.as_str()), ("outcome", outcome.as_str())];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
    }
    labelled(
        e,
        "aegis_heal_skipped",
        "Actions the guard held back, by reason.",
        MetricType::Counter,
        "reason",
        h.skipped.iter().map(|(r, n)| (r.as_str(), *n)),
        |m, v| ConstCounter::new(v).encode(m),
    )
}

/// The checks. Label values are bounded: check names come from the
/// configuration, kinds and failure classes are fixed sets.
fn encode_checks(
    e: &mut DescriptorEncoder<'_>,
    checks: &[aegis_core::check::CheckStatus],
) -> Result<(), std::fmt::Error> {
    use aegis_core::check::CheckState;
    {
        let mut m = e.encode_descriptor(
            "aegis_check_up",
            "1 while the check passes, 0 while it fails (blocked and unknown checks have no sample).",
            None,
            MetricType::Gauge,
        )?;
        for c in checks {
            let v = match c.state {
                CheckState::Passing => 1,
                CheckState::Failing => 0,
                CheckState::Blocked | CheckState::Unknown => continue,
            };
            let labels = [("check", c.name.as_str()), ("kind", c.kind.as_str())];
            ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    labelled(
        e,
        "aegis_check_blocked",
        "1 while the check is blocked by a failing dependency.",
        MetricType::Gauge,
        "check",
        checks
            .iter()
            .map(|c| (c.name.as_str(), i64::from(c.state == CheckState::Blocked))),
        |m, v| ConstGauge::new(v).encode(m),
    )?;
    labelled(
        e,
        "aegis_check_duration_seconds",
        "How long the check's last run took.",
        MetricType::Gauge,
        "check",
        checks.iter().filter_map(|c| {
            c.last
                .as_ref()
                .and_then(|r| r.latency_ms)
                .map(|l| (c.name.as_str(), l / 1000.0))
        }),
        |m, v| ConstGauge::new(v).encode(m),
    )?;
    let mut m = e.encode_descriptor(
        "aegis_check_failures",
        "Failed runs of each check, by failure class.",
        None,
        MetricType::Counter,
    )?;
    for c in checks {
        for (class, n) in &c.failures {
            let labels = [("check", c.name.as_str()), ("class", class.as_str())];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.status.borrow().clone();
        let latest = Arc::clone(&self.latest.borrow());
        let e = &mut enc;

        {
            let m = e.encode_descriptor(
                "aegis_build_info",
                "Version of the running agent.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("version", s.version.as_str())];
            let mut fam = m;
            ConstGauge::new(1i64).encode(fam.encode_family(&labels)?)?;
        }
        gauge(
            e,
            "aegis_uptime_seconds",
            "Seconds since the agent started.",
            s.uptime_seconds,
        )?;

        let sources: Vec<(&str, &aegis_core::status::SourceStatus)> =
            s.sources.iter().map(|x| (x.name.as_str(), x)).collect();
        labelled(
            e,
            "aegis_source_up",
            "1 when the source's last collection worked (fully or in part).",
            MetricType::Gauge,
            "source",
            sources.iter().map(|(n, x)| {
                (
                    *n,
                    u8::from(matches!(x.state, SourceState::Ok | SourceState::Degraded)),
                )
            }),
            |m, v| ConstGauge::new(i64::from(v)).encode(m),
        )?;
        labelled(
            e,
            "aegis_source_collections",
            "Collections run per source.",
            MetricType::Counter,
            "source",
            sources.iter().map(|(n, x)| (*n, x.collections)),
            |m, v| ConstCounter::new(v).encode(m),
        )?;
        labelled(
            e,
            "aegis_source_errors",
            "Collections with an error per source.",
            MetricType::Counter,
            "source",
            sources.iter().map(|(n, x)| (*n, x.errors)),
            |m, v| ConstCounter::new(v).encode(m),
        )?;
        labelled(
            e,
            "aegis_source_last_duration_seconds",
            "Duration of the source's last collection.",
            MetricType::Gauge,
            "source",
            sources
                .iter()
                .map(|(n, x)| (*n, x.last_duration_ms.unwrap_or(0.0) / 1000.0)),
            |m, v| ConstGauge::new(v).encode(m),
        )?;
        labelled(
            e,
            "aegis_source_last_collection_timestamp_seconds",
            "When the source last collected (Unix seconds).",
            MetricType::Gauge,
            "source",
            sources
                .iter()
                .map(|(n, x)| (*n, x.last_collection_ms.unwrap_or(0) as f64 / 1000.0)),
            |m, v| ConstGauge::new(v).encode(m),
        )?;

        counter(
            e,
            "aegis_observations",
            "Observations received by the pipeline.",
            s.observations_total,
        )?;
        labelled(
            e,
            "aegis_observations_dropped",
            "Observations dropped by a bound, by reason.",
            MetricType::Counter,
            "reason",
            [
                ("channel_full", s.channel.dropped),
                ("series_limit", s.history.series.dropped),
                ("store_queue_full", s.store.queue.dropped),
            ],
            |m, v| ConstCounter::new(v).encode(m),
        )?;
        labelled(
            e,
            "aegis_history_evicted",
            "Points evicted from in-memory history, by reason.",
            MetricType::Counter,
            "reason",
            [
                ("ring_full", s.history.evicted_full),
                ("age", s.history.evicted_age),
            ],
            |m, v| ConstCounter::new(v).encode(m),
        )?;
        gauge(
            e,
            "aegis_channel_length",
            "Observations waiting in the channel.",
            s.channel.len as f64,
        )?;
        gauge(
            e,
            "aegis_channel_capacity",
            "Bound of the observation channel.",
            s.channel.capacity as f64,
        )?;
        gauge(
            e,
            "aegis_history_series",
            "Series held in memory.",
            s.history.series.len as f64,
        )?;
        gauge(
            e,
            "aegis_history_series_limit",
            "Bound on series held in memory.",
            s.history.series.capacity as f64,
        )?;
        gauge(
            e,
            "aegis_history_points",
            "Points held in memory.",
            s.history.points.len as f64,
        )?;
        gauge(
            e,
            "aegis_history_points_limit",
            "Bound on points held in memory.",
            s.history.points.capacity as f64,
        )?;
        gauge(
            e,
            "aegis_store_size_bytes",
            "Size of the SQLite file and its WAL.",
            s.store.size_bytes as f64,
        )?;
        gauge(
            e,
            "aegis_store_queue_length",
            "Commands waiting for the store thread.",
            s.store.queue.len as f64,
        )?;
        counter(
            e,
            "aegis_store_write_errors",
            "Failed store commits.",
            s.store.write_errors,
        )?;
        counter(
            e,
            "aegis_store_retention_deleted_rows",
            "Rows deleted by retention.",
            s.store.retention_deleted_rows,
        )?;
        gauge(
            e,
            "aegis_store_last_flush_timestamp_seconds",
            "Last successful store commit (Unix seconds).",
            s.store.last_flush_ms.unwrap_or(0) as f64 / 1000.0,
        )?;

        gauge(
            e,
            "aegis_store_disk_full",
            "1 while the store's disk is full (what it must write waits in memory).",
            f64::from(u8::from(s.store.disk_full)),
        )?;
        gauge(
            e,
            "aegis_store_events_pending",
            "Anomalies and healing records waiting for a commit.",
            s.store.events.len as f64,
        )?;
        counter(
            e,
            "aegis_store_events_lost",
            "Events lost because their bound was reached while the disk was full.",
            s.store.events.dropped,
        )?;
        counter(
            e,
            "aegis_store_records_lost",
            "Healing records lost (among the lost events).",
            s.store.lost_records,
        )?;
        counter(
            e,
            "aegis_panics",
            "Panics caught in the agent's tasks.",
            s.panics,
        )?;
        counter(
            e,
            "aegis_log_lines_dropped",
            "Log lines that could not be written (stderr closed or full).",
            s.log_lines_dropped,
        )?;
        let c = &self.connections;
        gauge(
            e,
            "aegis_api_connections_open",
            "Connections to the API being served.",
            c.open.load(Ordering::Relaxed) as f64,
        )?;
        labelled(
            e,
            "aegis_api_connections",
            "Connections to the API, by what became of them.",
            MetricType::Counter,
            "result",
            [
                ("accepted", c.accepted.load(Ordering::Relaxed)),
                ("refused", c.refused.load(Ordering::Relaxed)),
                ("accept_error", c.accept_errors.load(Ordering::Relaxed)),
            ],
            |m, v| ConstCounter::new(v).encode(m),
        )?;

        if let Some(h) = &s.heal {
            encode_heal(e, h)?;
        }
        encode_checks(e, &s.checks)?;
        if let Some(n) = &s.notify {
            labelled(
                e,
                "aegis_notify_posts",
                "Alert posts to webhooks, by result.",
                MetricType::Counter,
                "result",
                [
                    ("delivered", n.delivered),
                    ("failed", n.failed),
                    ("dropped", n.dropped),
                ],
                |m, v| ConstCounter::new(v).encode(m),
            )?;
            let mut m = e.encode_descriptor(
                "aegis_notify_receiver_posts",
                "Posts to each receiver, by result.",
                None,
                MetricType::Counter,
            )?;
            for r in &n.receivers {
                for (result, v) in [("delivered", r.delivered), ("failed", r.failed)] {
                    let labels = [
                        ("receiver", r.name.as_str()),
                        ("kind", r.kind.as_str()),
                        ("result", result),
                    ];
                    ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        gauge(
            e,
            "aegis_anomalies_open",
            "Anomalies open now.",
            latest.open_anomalies as f64,
        )?;
        // The label value is a series name, bounded by the series bound.
        labelled(
            e,
            "aegis_anomaly_score",
            "Newest calibrated anomaly score per series (1 - p; 0 while warming up).",
            MetricType::Gauge,
            "series",
            latest
                .scores
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, v)| (k.as_str(), *v)),
            |m, v| ConstGauge::new(v).encode(m),
        )?;

        // Newest value of every series, grouped by family.
        let values = &latest.values;
        let mut i = 0;
        while i < values.len() {
            let family = values[i].0.family();
            let end = values[i..]
                .iter()
                .position(|(k, _)| k.family().name != family.name)
                .map_or(values.len(), |p| i + p);
            let name = format!("{PREFIX}{}", family.name);
            let mut m = e.encode_descriptor(&name, family.help, None, MetricType::Gauge)?;
            match family.label {
                // An unlabelled family has exactly one series.
                None => ConstGauge::new(values[i].1).encode(m)?,
                Some(label) => {
                    for (key, v) in &values[i..end] {
                        let labels = [(label, key.instance_name().unwrap_or(""))];
                        ConstGauge::new(*v).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
            i = end;
        }
        Ok(())
    }
}
