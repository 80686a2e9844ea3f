//! The status snapshot and the series summaries the pipeline publishes.

use aegis_core::ring::Ring;
use aegis_core::status::{BufferStatus, HistoryStatus, SeriesSummary, Status};
use aegis_core::SeriesKey;

use super::Pipeline;
use crate::detection::Detection;

impl Pipeline {
    pub(super) fn status(&self) -> Status {
        let (bounds, max_series) = self.history.bounds();
        let counters = self.history.counters();
        let now_ms = self.clock.wall_ms();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: self.started_ms,
            uptime_seconds: self
                .clock
                .monotonic()
                .saturating_sub(self.started_mono)
                .as_secs_f64(),
            updated_ms: now_ms,
            interval_seconds: self.config.interval.as_secs_f64(),
            sources: self.sources.iter().map(|s| s.snapshot()).collect(),
            channel: BufferStatus {
                len: self.sink.len() as u64,
                capacity: self.sink.capacity() as u64,
                dropped: self.sink.dropped(),
            },
            observations_total: self.received,
            history: HistoryStatus {
                series: BufferStatus {
                    len: self.history.series_count() as u64,
                    capacity: max_series as u64,
                    dropped: counters.refused_series,
                },
                points: BufferStatus {
                    len: self.history.points() as u64,
                    capacity: (max_series as u64).saturating_mul(bounds.max_points as u64),
                    dropped: counters.evicted_full + counters.evicted_age,
                },
                max_points_per_series: bounds.max_points as u64,
                max_age_seconds: (bounds.max_age_ms / 1000).max(0) as u64,
                evicted_full: counters.evicted_full,
                evicted_age: counters.evicted_age,
            },
            store: self.fanout.store.status(),
            heal: self.heal_summary.as_ref().map(|r| r.borrow().clone()),
            checks: self
                .checks
                .as_ref()
                .map(|v| std::sync::Arc::clone(&v.borrow()))
                .unwrap_or_default(),
            notify: self.fanout.notifier.as_ref().map(|n| n.summary()),
            panics: crate::agent::tasks::panics(),
            log_lines_dropped: crate::logging::dropped_lines(),
        }
    }
}

/// One series' summary: its family, newest point and verdict.
pub(super) fn summary(key: &SeriesKey, ring: &Ring, detection: &Detection) -> SeriesSummary {
    let family = key.family();
    SeriesSummary {
        name: key.to_string(),
        family: family.name.to_string(),
        label: family.label.map(str::to_string),
        instance: key.instance_name().map(str::to_string),
        help: family.help.to_string(),
        points: ring.len(),
        last: ring.last(),
        score: detection.score(key),
    }
}
