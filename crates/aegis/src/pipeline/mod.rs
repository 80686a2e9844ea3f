//! The pipeline task: the one owner of the in-memory history and of the
//! detectors, so neither needs a lock.
//!
//! It receives observations from the bounded channel, records them in the
//! rings, scores them, forwards them to the store, and publishes the status
//! snapshot ([`snapshot`]) and the newest values on `watch` channels: within
//! `publish_every` of anything new (data, a finished training, a change of
//! the healing summary or of the checks), and every `quiet_every` when
//! nothing is, as proof of life. History queries from the API arrive through a
//! [`reader::HistoryHandle`]; anomaly changes go out through [`fanout`].
//! Only forest training leaves the task, for a blocking thread.

mod fanout;
mod grouping;
mod reader;
mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use aegis_collect::{ObservationSink, SourceHealth};
use aegis_core::ring::{History, RingBounds};
use aegis_core::status::{HealSummary, Latest, SeriesDetail, Status};
use aegis_core::{Clock, Observation, SeriesKey};
use aegis_heal::engine::EngineHandle;
use aegis_notify::{Event, Message, Notifier};
use aegis_store::StoreHandle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use fanout::anomaly_message;
pub use reader::HistoryHandle;

use crate::detection::{Change, Detection};
use reader::Query;

/// How many observations the pipeline takes from the channel at once.
const BATCH: usize = 1024;
/// How often the rings are swept of points past their age, at most (a
/// quarter of the age bound when that is shorter).
const SWEEP_EVERY_MS: i64 = 10_000;

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Ring bounds.
    pub bounds: RingBounds,
    /// Series bound.
    pub max_series: usize,
    /// The collection interval, reported in the status.
    pub interval: Duration,
    /// How soon status and newest values are published after something new,
    /// at the latest (and how often, at most).
    pub publish_every: Duration,
    /// How often the status is published when nothing new came: its
    /// uptime, the sources' and the store's figures, and the heartbeat.
    pub quiet_every: Duration,
}

/// The pipeline; build with [`Pipeline::new`], run with [`Pipeline::run`].
pub struct Pipeline {
    rx: mpsc::Receiver<Observation>,
    queries: mpsc::Receiver<Query>,
    history: History,
    sink: ObservationSink,
    sources: Vec<SourceHealth>,
    clock: Arc<dyn Clock>,
    config: PipelineConfig,
    started_ms: i64,
    started_mono: Duration,
    received: u64,
    status_tx: watch::Sender<Status>,
    latest_tx: watch::Sender<Arc<Latest>>,
    detection: Detection,
    training: JoinSet<()>,
    changes: Vec<Change>,
    fanout: fanout::Fanout,
    groups: grouping::Grouper,
    heal_summary: Option<watch::Receiver<HealSummary>>,
    checks: Option<watch::Receiver<Arc<Vec<aegis_core::check::CheckStatus>>>>,
    disk_full: bool,
    beat: Option<watch::Sender<i64>>,
    /// Whether the newest values changed since they were last published.
    latest_stale: bool,
    /// Observations for the store, handed over a batch at a time.
    for_store: Vec<Observation>,
    /// When the rings are next swept of points past their age (wall ms).
    next_sweep_ms: i64,
}

/// What the rest of the agent holds of the pipeline.
pub struct PipelineEnds {
    /// Status snapshots.
    pub status: watch::Receiver<Status>,
    /// Newest values.
    pub latest: watch::Receiver<Arc<Latest>>,
    /// History queries.
    pub history: HistoryHandle,
}

impl Pipeline {
    /// Builds the pipeline around the receiving end of the observation
    /// channel. `sink` is only used to read the channel's figures.
    pub fn new(
        rx: mpsc::Receiver<Observation>,
        sink: ObservationSink,
        store: StoreHandle,
        sources: Vec<SourceHealth>,
        clock: Arc<dyn Clock>,
        config: PipelineConfig,
        detection: Detection,
    ) -> (Self, PipelineEnds) {
        let (qtx, queries) = mpsc::channel(reader::QUERY_QUEUE);
        let history = History::new(config.bounds, config.max_series);
        let started_ms = clock.wall_ms();
        let started_mono = clock.monotonic();
        let pipeline = Self {
            rx,
            queries,
            history,
            sink,
            sources,
            clock,
            config,
            started_ms,
            started_mono,
            received: 0,
            status_tx: watch::Sender::new(Status::default()),
            latest_tx: watch::Sender::new(Arc::new(Latest::default())),
            detection,
            training: JoinSet::new(),
            changes: Vec::new(),
            fanout: fanout::Fanout {
                store: store.clone(),
                heal: None,
                notifier: None,
            },
            groups: grouping::Grouper::default(),
            heal_summary: None,
            checks: None,
            disk_full: false,
            beat: None,
            latest_stale: true,
            for_store: Vec::new(),
            next_sweep_ms: started_ms,
        };
        pipeline.status_tx.send_replace(pipeline.status());
        let ends = PipelineEnds {
            status: pipeline.status_tx.subscribe(),
            latest: pipeline.latest_tx.subscribe(),
            history: HistoryHandle { tx: qtx, store },
        };
        (pipeline, ends)
    }

    /// Tells the healing engine about anomalies as they open and close.
    pub fn with_heal(mut self, heal: EngineHandle) -> Self {
        self.heal_summary = Some(heal.summary());
        self.fanout.heal = Some(heal);
        self
    }

    /// Announces anomalies (and a full disk) through the notifier.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.fanout.notifier = Some(notifier);
        self
    }

    /// Reports the checks' states in the status.
    pub fn with_checks(
        mut self,
        view: watch::Receiver<Arc<Vec<aegis_core::check::CheckStatus>>>,
    ) -> Self {
        self.checks = Some(view);
        self
    }

    /// Publishes the wall-clock time of each of its loop's publications:
    /// proof of life for a watchdog.
    pub fn with_heartbeat(mut self, beat: watch::Sender<i64>) -> Self {
        self.beat = Some(beat);
        self
    }

    /// Runs until `cancel` fires or every source is gone, then drains what is
    /// already in the channel and publishes a last snapshot.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut buf = Vec::with_capacity(BATCH);
        // Published when nothing is new, and when something is.
        let quiet = self.config.quiet_every.max(self.config.publish_every);
        let soon = self.config.publish_every;
        let mut published = tokio::time::Instant::now();
        let mut next = published;
        let mut heal = self.heal_summary.clone();
        let mut checks = self.checks.clone();
        loop {
            let news = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(q) = self.queries.recv() => {
                    self.answer(q);
                    false
                }
                _ = tokio::time::sleep_until(next) => {
                    self.publish();
                    published = tokio::time::Instant::now();
                    next = published + quiet;
                    false
                }
                Some(done) = self.training.join_next(), if !self.training.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "model training task failed");
                    }
                    self.detection.training_done();
                    self.latest_stale = true;
                    true
                }
                Ok(()) = changed(heal.as_mut()) => true,
                Ok(()) = changed(checks.as_mut()) => true,
                n = self.rx.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.ingest(&mut buf);
                    true
                }
            };
            if news {
                next = next.min(published + soon);
            }
            // A group's held message goes out when its hold passes.
            if let Some(due_ms) = self.groups.next_due_ms() {
                let wait = due_ms.saturating_sub(self.clock.wall_ms()).max(0) as u64;
                next = next.min(tokio::time::Instant::now() + Duration::from_millis(wait));
            }
        }
        while let Ok(obs) = self.rx.try_recv() {
            buf.push(obs);
            if buf.len() >= BATCH {
                self.ingest(&mut buf);
            }
        }
        self.ingest(&mut buf);
        self.publish();
        // Held messages are told now rather than lost with the agent.
        self.tell_due(i64::MAX);
        tracing::debug!("pipeline stopped");
    }

    fn ingest(&mut self, buf: &mut Vec<Observation>) {
        if buf.is_empty() {
            return;
        }
        self.received += buf.len() as u64;
        self.latest_stale = true;
        // What the series bound refuses is shed here for detection and the
        // store too, so a label explosion cannot grow memory or the database.
        let history = &mut self.history;
        buf.retain(|obs| history.record(&obs.series, obs.at_ms, obs.reading));
        let mut derived = Vec::new();
        for obs in buf.iter() {
            if let Some(score) = self.detection.observe(obs, &mut self.changes) {
                derived.push(score);
            }
        }
        for obs in derived {
            if self.history.record(&obs.series, obs.at_ms, obs.reading) {
                buf.push(obs);
            }
        }
        // Handed to the store a batch at a time (or each second, at the
        // latest), not as it came: each hand-over wakes the store's thread.
        self.for_store.append(buf);
        if self.for_store.len() >= BATCH {
            self.hand_to_store();
        }
        self.fanout
            .changes(self.changes.drain(..), &mut self.groups);
        self.start_training();
    }

    /// Gives the store what was collected for it.
    fn hand_to_store(&mut self) {
        if self.for_store.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.for_store);
        if let Err(e) = self.fanout.store.record(batch) {
            tracing::debug!(error = %e, "store did not take a batch");
        }
    }

    /// Hands a due forest training to a blocking thread. The model reaches
    /// the detector only through its slot, whole.
    fn start_training(&mut self) {
        let Some(job) = self.detection.training_due() else {
            return;
        };
        let slot = self.detection.model_slot();
        self.training.spawn_blocking(move || match job.run() {
            Ok(model) => {
                let version = slot.publish(model);
                tracing::info!(version, "isolation forest model published");
            }
            Err(e) => tracing::warn!(error = %e, "isolation forest training failed"),
        });
    }

    fn answer(&self, q: Query) {
        match q {
            Query::List(reply) => {
                let list = self
                    .history
                    .iter()
                    .map(|(k, r)| snapshot::summary(k, r, &self.detection))
                    .collect();
                let _ = reply.send(list);
            }
            Query::Get {
                name,
                since_ms,
                reply,
            } => {
                let detail = self.history.find(&name).map(|(k, r)| SeriesDetail {
                    summary: snapshot::summary(k, r, &self.detection),
                    data: r.since(since_ms).copied().collect(),
                });
                let _ = reply.send(detail);
            }
        }
    }

    fn publish(&mut self) {
        self.hand_to_store();
        let now = self.clock.wall_ms();
        // Ages are swept now and then, not every second: with hundreds of
        // series, walking every ring was a good part of an idle agent's CPU.
        if now >= self.next_sweep_ms {
            let (bounds, _) = self.history.bounds();
            let every = SWEEP_EVERY_MS.min(bounds.max_age_ms / 4).max(1);
            self.next_sweep_ms = now.saturating_add(every);
            for key in self.history.sweep(now) {
                self.latest_stale = true;
                self.detection.forget(&key, now, &mut self.changes);
            }
        }
        self.fanout
            .changes(self.changes.drain(..), &mut self.groups);
        self.tell_due(now);
        let status = self.status();
        self.disk_full_news(status.store.disk_full, now);
        self.status_tx.send_replace(status);
        if let Some(beat) = &self.beat {
            beat.send_replace(now);
        }
        // The newest values, only when something new came.
        if !self.latest_stale {
            return;
        }
        self.latest_stale = false;
        let values: Vec<(SeriesKey, f64)> = self
            .history
            .sorted()
            .filter_map(|(k, r)| r.last().and_then(|p| p.value).map(|v| (k.clone(), v)))
            .collect();
        self.latest_tx.send_replace(Arc::new(Latest {
            values,
            scores: self.detection.scores(),
            open_anomalies: self.detection.open_count(),
        }));
    }

    /// Hands the notifier the groups whose hold has passed by `now_ms`,
    /// unless a failing check already tells of their target.
    fn tell_due(&mut self, now_ms: i64) {
        let checks = self.checks.as_ref().map(|rx| Arc::clone(&rx.borrow()));
        self.fanout.due(now_ms, &mut self.groups, |target| {
            checks
                .as_deref()
                .is_some_and(|checks| tells_of(checks, target))
        });
    }

    /// Tells people when the store's disk fills, and when it has room again.
    fn disk_full_news(&mut self, full: bool, now_ms: i64) {
        if full == self.disk_full {
            return;
        }
        self.disk_full = full;
        let Some(n) = &self.fanout.notifier else {
            return;
        };
        let path = self.fanout.store.path().display().to_string();
        let mut m = Message::new(
            "store:disk_full",
            if full { Event::Opened } else { Event::Resolved },
            aegis_core::Severity::Critical,
            "AegisStoreDiskFull",
            format!("the disk holding {path} is full"),
            now_ms,
        )
        .describe("the agent keeps its records in memory until they can be written")
        .label("path", path);
        if !full {
            m = m.resolved_at(now_ms);
        }
        n.send(m);
    }
}

/// Whether a check already tells of `target`: one about it (by name, or
/// the container or process it watches) fails, or is blocked by a
/// dependency that fails and tells of it.
fn tells_of(checks: &[aegis_core::check::CheckStatus], target: &str) -> bool {
    use aegis_core::check::CheckState;
    checks.iter().any(|c| {
        matches!(c.state, CheckState::Failing | CheckState::Blocked)
            && (c.name == target
                || c.subject.container.as_deref() == Some(target)
                || c.subject.process.as_deref() == Some(target))
    })
}

/// Waits for a change on `rx`; never, when there is no `rx` or its sender is
/// gone (the select then waits on its other branches).
async fn changed<T>(rx: Option<&mut watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Ok(()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
