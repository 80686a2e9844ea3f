//! Detection inside the agent: one ensemble per series, the isolation
//! forest over the host's features, and the anomalies they open and close.
//!
//! Owned by the pipeline task, like the history: no lock anywhere. Forest
//! training is handed out as a job for a blocking thread; until its model is
//! published, the statistical detectors alone decide.

use std::collections::HashMap;

use aegis_core::config::DetectConfig;
use aegis_core::ring::Hasher;
use aegis_core::status::{AnomalyRecord, SeriesScore};
use aegis_core::{Family, Observation, Reading, SeriesKey};
use aegis_detect::alert::{AlertConfig, Alerter, Transition};
use aegis_detect::forest::{ForestDetector, ForestDetectorConfig, ForestVerdict, TrainingJob};
use aegis_detect::series::{fmt as series_fmt, Assessment, SeriesConfig, SeriesDetector};
use aegis_detect::{Severity, State};

use serde_json::json;

/// The isolation forest's score for the host as a whole, as a series.
pub static HOST_ANOMALY: Family = Family {
    name: "host_anomaly_score",
    help: "Isolation-forest anomaly score of the host's combined figures (0-1, calibrated).",
    label: None,
};

/// The host features the forest sees, in order: (family, summed over instances?).
const FEATURES: [(&str, bool); 8] = [
    ("host_cpu_usage_ratio", false),
    ("host_memory_used_ratio", false),
    ("host_swap_used_ratio", false),
    ("host_load1", false),
    ("host_net_rx_bytes_per_second", true),
    ("host_net_tx_bytes_per_second", true),
    ("host_disk_read_bytes_per_second", true),
    ("host_disk_write_bytes_per_second", true),
];

/// A change of an anomaly, to be written to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new anomaly.
    Opened(AnomalyRecord),
    /// An anomaly ended.
    Closed {
        /// Its id.
        id: i64,
        /// When, Unix ms.
        closed_ms: i64,
        /// Final details.
        detail: serde_json::Value,
    },
}

#[derive(Debug, Clone)]
struct Open {
    id: i64,
    detail: serde_json::Value,
    worst: f64,
}

#[derive(Debug)]
struct Tracked {
    detector: SeriesDetector,
    alerter: Alerter,
    last: Option<Assessment>,
    open: Option<Open>,
}

/// One host row being assembled from one collection.
#[derive(Debug, Default)]
struct HostRow {
    at_ms: i64,
    values: [Option<f64>; FEATURES.len()],
}

/// Detection state of the whole agent.
#[derive(Debug)]
pub struct Detection {
    series: HashMap<SeriesKey, Tracked, Hasher>,
    series_config: SeriesConfig,
    alert: AlertConfig,
    forest: ForestDetector,
    forest_alerter: Alerter,
    forest_last: Option<ForestVerdict>,
    forest_open: Option<Open>,
    row: HostRow,
    next_id: i64,
    enabled: bool,
    forest_enabled: bool,
}

impl Detection {
    /// Detection as configured; anomaly ids start at `next_id`.
    pub fn new(next_id: i64, config: &DetectConfig, forest: ForestDetectorConfig) -> Self {
        let mut series_config = SeriesConfig::default();
        series_config.warmup = config.warmup;
        series_config.settle = config.settle;
        let alert = AlertConfig {
            open: 1.0 - config.alert_p,
            close: AlertConfig::default().close.min(1.0 - config.alert_p),
            close_after: config.close_after,
        };
        Self {
            series: HashMap::default(),
            series_config,
            alert,
            forest: ForestDetector::new(forest),
            forest_alerter: Alerter::new(alert),
            forest_last: None,
            forest_open: None,
            row: HostRow::default(),
            next_id,
            enabled: config.enabled,
            forest_enabled: config.enabled && config.forest,
        }
    }

    /// Scores one observation of a series the history accepted. A finished
    /// host row is returned as a `host_anomaly_score` observation once the
    /// forest can judge it.
    pub fn observe(&mut self, obs: &Observation, changes: &mut Vec<Change>) -> Option<Observation> {
        if !self.enabled {
            return None;
        }
        let host_score = if self.forest_enabled {
            self.collect_host_feature(obs, changes)
        } else {
            None
        };
        let Reading::Value(value) = obs.reading else {
            return host_score;
        };
        if obs.series.family().name == HOST_ANOMALY.name {
            return host_score;
        }
        let (series_config, alert) = (&self.series_config, self.alert);
        let tracked = self
            .series
            .entry(obs.series.clone())
            .or_insert_with(|| Tracked {
                detector: SeriesDetector::new({
                    let mut c = series_config.clone();
                    c.min_scale = least_change(obs.series.family().name);
                    // Binary series and success ratios keep zero as news.
                    c.zero_is_rest = c.min_scale > 0.0;
                    c
                }),
                alerter: Alerter::new(alert),
                last: None,
                open: None,
            });
        let mut a = tracked.detector.assess(value, obs.at_ms as f64 / 1000.0);
        a.severity = told_severity(obs.series.family().name, &a);
        match tracked.alerter.update(1.0 - a.p) {
            Some(Transition::Opened) => {
                let id = self.next_id;
                self.next_id += 1;
                let top = a.top;
                let detail = json!({
                    "value": value,
                    "expected": top.map(|f| f.expected),
                    "scale": top.map(|f| f.scale),
                    "p": a.p,
                    "statistic": top.map(|f| f.statistic),
                    "direction": top.map(|f| f.direction),
                    "worst_score": a.score.value,
                });
                changes.push(Change::Opened(AnomalyRecord {
                    id,
                    opened_ms: obs.at_ms,
                    closed_ms: None,
                    series: obs.series.to_string(),
                    target: Some(obs.series.instance_name().unwrap_or("host").to_string()),
                    kind: top.map_or("unknown", |f| f.component.as_str()).to_string(),
                    severity: a.severity,
                    score: a.score.value,
                    explanation: top.map(|f| f.explain()).unwrap_or_default(),
                    detail: detail.clone(),
                    cause: None,
                }));
                tracked.open = Some(Open {
                    id,
                    detail,
                    worst: a.score.value,
                });
            }
            Some(Transition::Closed) => {
                if let Some(open) = tracked.open.take() {
                    changes.push(close(open, obs.at_ms));
                }
            }
            None => {
                if let Some(open) = tracked.open.as_mut() {
                    open.worst = open.worst.max(a.score.value);
                }
            }
        }
        tracked.last = Some(a);
        host_score
    }

    /// Adds an observation to the host row; finishes the previous row when a
    /// new collection starts.
    fn collect_host_feature(
        &mut self,
        obs: &Observation,
        changes: &mut Vec<Change>,
    ) -> Option<Observation> {
        let name = obs.series.family().name;
        let slot = FEATURES.iter().position(|(f, _)| *f == name)?;
        let mut finished = None;
        if obs.at_ms != self.row.at_ms {
            let row = std::mem::replace(
                &mut self.row,
                HostRow {
                    at_ms: obs.at_ms,
                    ..HostRow::default()
                },
            );
            finished = self.score_row(row, changes);
        }
        if let Reading::Value(v) = obs.reading {
            let summed = FEATURES[slot].1;
            let entry = &mut self.row.values[slot];
            *entry = Some(if summed { entry.unwrap_or(0.0) + v } else { v });
        }
        finished
    }

    fn score_row(&mut self, row: HostRow, changes: &mut Vec<Change>) -> Option<Observation> {
        // A row needs CPU and memory at least; absent counters (first
        // cycle, no network) count as zero.
        if row.values[0].is_none() || row.values[1].is_none() {
            return None;
        }
        let features: Vec<f64> = row
            .values
            .iter()
            .zip(FEATURES)
            .map(|(v, (_, summed))| {
                let v = v.unwrap_or(0.0);
                // Byte rates span orders of magnitude: compare them in logs.
                if summed {
                    v.max(0.0).ln_1p()
                } else {
                    v
                }
            })
            .collect();
        let verdict = self.forest.observe(&features);
        let ready = verdict.score.state.is_ready();
        let value = verdict.score.value;
        match self.forest_alerter.update(value) {
            Some(Transition::Opened) => {
                let id = self.next_id;
                self.next_id += 1;
                let moved: Vec<serde_json::Value> = verdict
                    .moved
                    .iter()
                    .map(|m| json!({"feature": FEATURES[m.feature].0, "value": m.value, "median": m.median, "z": m.z}))
                    .collect();
                let explanation = verdict
                    .moved
                    .iter()
                    .map(|m| {
                        let (name, summed) = FEATURES[m.feature];
                        // Byte rates are compared in logs: told in bytes.
                        let unit = |v: f64| if summed { v.exp_m1() } else { v };
                        format!(
                            "{name} {} (usually {})",
                            series_fmt(unit(m.value)),
                            series_fmt(unit(m.median))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let detail = json!({
                    "raw": verdict.raw,
                    "model_version": verdict.model_version,
                    "moved": moved,
                    "worst_score": value,
                });
                changes.push(Change::Opened(AnomalyRecord {
                    id,
                    opened_ms: row.at_ms,
                    closed_ms: None,
                    series: HOST_ANOMALY.name.to_string(),
                    target: Some("host".to_string()),
                    kind: "forest".to_string(),
                    severity: forest_severity(&verdict),
                    score: value,
                    explanation: format!("unusual combination of host figures: {explanation}"),
                    detail: detail.clone(),
                    cause: None,
                }));
                self.forest_open = Some(Open {
                    id,
                    detail,
                    worst: value,
                });
            }
            Some(Transition::Closed) => {
                if let Some(open) = self.forest_open.take() {
                    changes.push(close(open, row.at_ms));
                }
            }
            None => {
                if let Some(open) = self.forest_open.as_mut() {
                    open.worst = open.worst.max(value);
                }
            }
        }
        self.forest_last = Some(verdict);
        ready.then(|| Observation::value(SeriesKey::global(&HOST_ANOMALY), row.at_ms, value))
    }

    /// A forest training job, when one is due.
    pub fn training_due(&mut self) -> Option<TrainingJob> {
        self.forest.training_due()
    }

    /// Where a finished training publishes its model.
    pub fn model_slot(&self) -> aegis_detect::model::ModelSlot<aegis_detect::forest::HostModel> {
        self.forest.slot()
    }

    /// The running training finished (published or failed).
    pub fn training_done(&mut self) {
        self.forest.training_done();
    }

    /// Forgets a series the history dropped; closes its open anomaly.
    pub fn forget(&mut self, key: &SeriesKey, now_ms: i64, changes: &mut Vec<Change>) {
        if let Some(t) = self.series.remove(key) {
            if let Some(open) = t.open {
                changes.push(close(open, now_ms));
            }
        }
    }

    /// What the detectors say about a series' newest point.
    pub fn score(&self, key: &SeriesKey) -> Option<SeriesScore> {
        if key.family().name == HOST_ANOMALY.name {
            let v = self.forest_last.as_ref()?;
            return Some(SeriesScore {
                value: v.score.value,
                p: 1.0 - v.score.value,
                state: state_name(v.score.state).to_string(),
                warmup: warmup(v.score.state),
                severity: forest_severity(v),
                component: Some("forest".to_string()),
                explanation: v
                    .model_version
                    .map(|m| format!("isolation forest model version {m}")),
                seasonal: false,
                open_anomaly: self.forest_open.as_ref().map(|o| o.id),
            });
        }
        let t = self.series.get(key)?;
        let a = t.last.as_ref()?;
        Some(SeriesScore {
            value: a.score.value,
            p: a.p,
            state: state_name(a.score.state).to_string(),
            warmup: warmup(a.score.state),
            severity: a.severity,
            component: a.top.map(|f| f.component.as_str().to_string()),
            explanation: a.top.map(|f| f.explain()),
            seasonal: t.detector.seasonal(),
            open_anomaly: t.open.as_ref().map(|o| o.id),
        })
    }

    /// Newest score of every series, sorted by series.
    pub fn scores(&self) -> Vec<(SeriesKey, f64)> {
        let mut v: Vec<(SeriesKey, f64)> = self
            .series
            .iter()
            .filter_map(|(k, t)| t.last.as_ref().map(|a| (k.clone(), a.score.value)))
            .collect();
        if let Some(f) = &self.forest_last {
            v.push((SeriesKey::global(&HOST_ANOMALY), f.score.value));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Anomalies open now.
    pub fn open_count(&self) -> usize {
        self.series.values().filter(|t| t.open.is_some()).count()
            + usize::from(self.forest_open.is_some())
    }

    /// Series with a detector (bounded by the history's series bound).
    pub fn tracked(&self) -> usize {
        self.series.len()
    }
}

fn close(open: Open, closed_ms: i64) -> Change {
    let mut detail = open.detail;
    if let Some(obj) = detail.as_object_mut() {
        obj.insert("worst_score".to_string(), json!(open.worst));
    }
    Change::Closed {
        id: open.id,
        closed_ms,
        detail,
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::WarmingUp { .. } => "warming_up",
        State::Ready => "ready",
    }
}

fn warmup(s: State) -> Option<(u32, u32)> {
    match s {
        State::WarmingUp { needed, seen } => Some((seen, needed)),
        State::Ready => None,
    }
}

/// How busy the host is: its CPU, load, runnable processes, disks' and
/// network's throughput. More of it is activity, not a fault.
fn host_activity(family: &str) -> bool {
    matches!(
        family,
        "host_cpu_usage_ratio"
            | "host_cpu_core_usage_ratio"
            | "host_cpu_iowait_ratio"
            | "host_load1"
            | "host_load5"
            | "host_load15"
            | "host_procs_running"
            | "host_disk_read_bytes_per_second"
            | "host_disk_write_bytes_per_second"
            | "host_disk_reads_per_second"
            | "host_disk_writes_per_second"
            | "host_disk_busy_ratio"
            | "host_net_rx_bytes_per_second"
            | "host_net_tx_bytes_per_second"
            | "host_net_rx_packets_per_second"
            | "host_net_tx_packets_per_second"
    )
}

/// The severity an anomaly is told with. A host busier than usual (a burst
/// of disk reads, a cron job's CPU, a backup's traffic) is recorded, shown
/// and kept as evidence, but as `info`: whether busy is too busy is a
/// threshold's call (a `series` check such as `host_cpu_usage_ratio` above
/// 0.9 for 10m), as it is in Monit and Netdata. Less of it (traffic that
/// stops), and everything else (memory, swap, filesystems, errors, drops,
/// any target's series), keeps the severity of its probability.
fn told_severity(family: &str, a: &Assessment) -> Severity {
    match a.top {
        Some(f) if f.direction > 0 && host_activity(family) => Severity::Info,
        _ => a.severity,
    }
}

/// The severity of the forest's verdict: as [`told_severity`], a host
/// that is only busier than usual (every feature that moved most moved up,
/// and is one of the host's activity figures) is `info`.
fn forest_severity(v: &ForestVerdict) -> Severity {
    let busier = !v.moved.is_empty()
        && v.moved
            .iter()
            .all(|m| m.z > 0.0 && host_activity(FEATURES[m.feature].0));
    if busier {
        Severity::Info
    } else {
        Severity::from_p(1.0 - v.score.value)
    }
}

/// The smallest change that matters on a series of `family`, in its unit:
/// the detectors' scale never falls below it. Without it a series at rest
/// (a load average at 0.00, one runnable process, a latency of a
/// millisecond on loopback) has a scale near zero, and its first ordinary
/// step reads as hundreds of deviations. Binary series (`*_up`,
/// `*_healthy`) and success ratios keep none: any change of theirs matters.
pub fn least_change(family: &str) -> f64 {
    const MIB: f64 = 1_048_576.0;
    match family {
        "host_load1" | "host_load5" | "host_load15" => 0.1,
        "endpoint_latency_seconds" => 0.005,
        "endpoint_success_ratio" => 0.0,
        "container_cpu_cores" | "process_cpu_cores" => 0.01,
        "tls_certificate_days_left" => 1.0,
        f if f.ends_with("_up") || f.ends_with("_healthy") => 0.0,
        f if f.ends_with("_ratio") => 0.01,
        f if f.ends_with("_bytes_per_second") => 4_096.0,
        f if f.ends_with("_per_second") => 1.0,
        f if f.ends_with("_bytes") => MIB,
        // Counts: processes, threads, descriptors, restarts.
        "host_procs_running" | "process_count" | "process_threads" | "process_open_fds"
        | "process_restarts" | "container_restarts" => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod least_change_tests {
    use super::least_change;

    #[test]
    fn every_family_at_rest_has_a_least_change_and_binary_ones_have_none() {
        assert_eq!(least_change("host_load1"), 0.1);
        assert_eq!(least_change("host_procs_running"), 1.0);
        assert_eq!(least_change("host_cpu_iowait_ratio"), 0.01);
        assert_eq!(least_change("host_disk_write_bytes_per_second"), 4_096.0);
        assert_eq!(least_change("host_net_rx_packets_per_second"), 1.0);
        assert_eq!(least_change("host_memory_available_bytes"), 1_048_576.0);
        assert_eq!(least_change("endpoint_latency_seconds"), 0.005);
        for binary in [
            "endpoint_up",
            "container_up",
            "container_healthy",
            "process_up",
        ] {
            assert_eq!(least_change(binary), 0.0, "{binary}");
        }
        assert_eq!(least_change("endpoint_success_ratio"), 0.0);
        assert_eq!(least_change("host_anomaly"), 0.0);
    }
}

#[cfg(test)]
mod severity_tests {
    use super::*;

    static DISK_READS: Family = Family {
        name: "host_disk_read_bytes_per_second",
        help: "",
        label: Some("device"),
    };
    static NET_RX: Family = Family {
        name: "host_net_rx_bytes_per_second",
        help: "",
        label: Some("interface"),
    };

    /// The first anomaly a series opens: `normal` observations around
    /// `level` (noise of `noise`), then `value` held for 20 observations.
    fn first_anomaly(family: &'static Family, level: f64, noise: f64, value: f64) -> AnomalyRecord {
        let mut detection =
            Detection::new(1, &DetectConfig::default(), ForestDetectorConfig::default());
        let key = SeriesKey::instance(family, "vda");
        let mut changes = Vec::new();
        let mut rng = aegis_detect::forest::Rng::new(42);
        for i in 0..2_000i64 {
            let u = rng.unit();
            let x = if i < 1_980 {
                level + noise * (u - 0.5)
            } else {
                value
            };
            detection.observe(&Observation::value(key.clone(), i * 5_000, x), &mut changes);
        }
        changes
            .into_iter()
            .find_map(|c| match c {
                Change::Opened(a) => Some(a),
                Change::Closed { .. } => None,
            })
            .expect("the change opens an anomaly")
    }

    fn verdict(moved: &[(&str, f64)]) -> ForestVerdict {
        ForestVerdict {
            score: aegis_detect::Score {
                value: 1.0 - 1e-9,
                state: State::Ready,
            },
            raw: Some(0.8),
            model_version: Some(1),
            moved: moved
                .iter()
                .map(|(name, z)| aegis_detect::forest::Moved {
                    feature: FEATURES
                        .iter()
                        .position(|(f, _)| f == name)
                        .expect("feature"),
                    value: 1.0,
                    median: 0.0,
                    z: *z,
                })
                .collect(),
        }
    }

    #[test]
    fn the_forest_on_a_busier_host_is_info_and_on_memory_keeps_its_severity() {
        let disks = verdict(&[
            ("host_disk_read_bytes_per_second", 1e10),
            ("host_disk_write_bytes_per_second", 6e9),
            ("host_net_rx_bytes_per_second", 5e9),
        ]);
        assert_eq!(forest_severity(&disks), Severity::Info);
        let memory = verdict(&[
            ("host_disk_read_bytes_per_second", 40.0),
            ("host_memory_used_ratio", 12.0),
        ]);
        assert_eq!(forest_severity(&memory), Severity::Critical);
        let quiet = verdict(&[("host_net_rx_bytes_per_second", -30.0)]);
        assert_eq!(forest_severity(&quiet), Severity::Critical);
    }

    #[test]
    fn a_busier_host_is_told_as_info_and_less_of_it_keeps_its_severity() {
        let burst = first_anomaly(&DISK_READS, 6_000.0, 4_000.0, 50_000_000.0);
        assert_eq!(burst.severity, Severity::Info, "{burst:?}");
        let stopped = first_anomaly(&NET_RX, 2_000_000.0, 100_000.0, 0.0);
        assert!(stopped.severity >= Severity::Warning, "{stopped:?}");
    }
}
