//! The pipeline task: the one owner of the in-memory history.
//!
//! It receives observations from the bounded channel, records them in the
//! rings, forwards them to the store, answers history queries from the API,
//! and once a second publishes the status snapshot and the newest values on
//! `watch` channels. Detection runs in this same task, so detector state
//! needs no lock either; only forest training goes to a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use aegis_api::{BoxFuture, HistoryReader, Unavailable};
use aegis_collect::{ObservationSink, SourceHealth};
use aegis_core::ring::{History, RingBounds};
use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, BufferStatus, HistoryStatus, Incident,
    IncidentQuery, Latest, SeriesDetail, SeriesSummary, Status,
};
use aegis_core::{Clock, Observation, SeriesKey};
use aegis_heal::engine::{EngineHandle, Trigger};
use aegis_store::StoreHandle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::detection::{Change, Detection};

/// How many observations the pipeline takes from the channel at once.
const BATCH: usize = 1024;

/// A question for the pipeline about its history.
enum Query {
    List(oneshot::Sender<Vec<SeriesSummary>>),
    Get {
        name: String,
        since_ms: i64,
        reply: oneshot::Sender<Option<SeriesDetail>>,
    },
}

/// Asks the pipeline for history and the store for anomalies; given to the API.
#[derive(Clone)]
pub struct HistoryHandle {
    tx: mpsc::Sender<Query>,
    store: StoreHandle,
}

impl HistoryReader for HistoryHandle {
    fn list(&self) -> BoxFuture<'_, Result<Vec<SeriesSummary>, Unavailable>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Query::List(reply))
                .await
                .map_err(|_| Unavailable)?;
            rx.await.map_err(|_| Unavailable)
        })
    }

    fn get(
        &self,
        name: String,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Option<SeriesDetail>, Unavailable>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Query::Get {
                    name,
                    since_ms,
                    reply,
                })
                .await
                .map_err(|_| Unavailable)?;
            rx.await.map_err(|_| Unavailable)
        })
    }

    fn anomalies(
        &self,
        query: AnomalyQuery,
    ) -> BoxFuture<'_, Result<Vec<AnomalyRecord>, Unavailable>> {
        Box::pin(self.read("anomalies", move |c| {
            aegis_store::anomalies::list(c, &query)
        }))
    }

    fn incidents(&self, query: IncidentQuery) -> BoxFuture<'_, Result<Vec<Incident>, Unavailable>> {
        Box::pin(self.read("incidents", move |c| {
            aegis_store::incidents::list(c, &query)
        }))
    }

    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, Result<Vec<ActionRecord>, Unavailable>> {
        Box::pin(self.read("healing records", move |c| {
            aegis_store::actions::list(c, &query)
        }))
    }
}

impl HistoryHandle {
    /// Runs a read on the store thread; a failure is logged once and
    /// answered as unavailable.
    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(
                &mut aegis_store::rusqlite::Connection,
            ) -> Result<T, aegis_store::rusqlite::Error>
            + Send
            + 'static,
    ) -> Result<T, Unavailable> {
        match self.store.query(f).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                tracing::error!(error = %e, what, "reading the store");
                Err(Unavailable)
            }
            Err(_) => Err(Unavailable),
        }
    }
}

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Ring bounds.
    pub bounds: RingBounds,
    /// Series bound.
    pub max_series: usize,
    /// The collection interval, reported in the status.
    pub interval: Duration,
    /// How often status and newest values are published.
    pub publish_every: Duration,
}

/// The pipeline and the ends other tasks use.
pub struct Pipeline {
    rx: mpsc::Receiver<Observation>,
    queries: mpsc::Receiver<Query>,
    history: History,
    store: StoreHandle,
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
    heal: Option<EngineHandle>,
    heal_summary: Option<watch::Receiver<aegis_core::status::HealSummary>>,
    endpoints: Option<aegis_collect::probe::EndpointView>,
    notifier: Option<crate::notify::Notifier>,
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
        let (qtx, queries) = mpsc::channel(64);
        let history = History::new(config.bounds, config.max_series);
        let started_ms = clock.wall_ms();
        let started_mono = clock.monotonic();
        let pipeline = Self {
            rx,
            queries,
            history,
            store,
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
            heal: None,
            heal_summary: None,
            endpoints: None,
            notifier: None,
        };
        pipeline.status_tx.send_replace(pipeline.status());
        let ends = PipelineEnds {
            status: pipeline.status_tx.subscribe(),
            latest: pipeline.latest_tx.subscribe(),
            history: HistoryHandle {
                tx: qtx,
                store: pipeline.store.clone(),
            },
        };
        (pipeline, ends)
    }

    /// Tells the healing engine about anomalies as they open and close.
    pub fn with_heal(mut self, heal: EngineHandle) -> Self {
        self.heal_summary = Some(heal.summary());
        self.heal = Some(heal);
        self
    }

    /// Announces anomalies through the notifier.
    pub fn with_notifier(mut self, notifier: crate::notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Reports the endpoint probes' states in the status.
    pub fn with_endpoints(mut self, view: aegis_collect::probe::EndpointView) -> Self {
        self.endpoints = Some(view);
        self
    }

    /// Runs until `cancel` fires or every source is gone, then drains what is
    /// already in the channel and publishes a last snapshot.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut publish = tokio::time::interval(self.config.publish_every);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(q) = self.queries.recv() => self.answer(q),
                _ = publish.tick() => self.publish(),
                Some(done) = self.training.join_next(), if !self.training.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "model training task failed");
                    }
                    self.detection.training_done();
                }
                n = self.rx.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.ingest(&mut buf);
                }
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
        tracing::debug!("pipeline stopped");
    }

    fn ingest(&mut self, buf: &mut Vec<Observation>) {
        if buf.is_empty() {
            return;
        }
        self.received += buf.len() as u64;
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
        let batch = std::mem::replace(buf, Vec::with_capacity(BATCH));
        if let Err(e) = self.store.record(batch) {
            tracing::debug!(error = %e, "store did not take a batch");
        }
        self.write_changes();
        self.start_training();
    }

    /// Writes anomaly openings and closings; they are never shed for room.
    fn write_changes(&mut self) {
        for change in self.changes.drain(..) {
            let queued = match change {
                Change::Opened(record) => {
                    tracing::warn!(
                        anomaly = record.id,
                        series = %record.series,
                        kind = %record.kind,
                        severity = %record.severity,
                        score = record.score,
                        explanation = %record.explanation,
                        "anomaly opened"
                    );
                    if let Some(n) = &self.notifier {
                        n.notify(crate::notify::Notice::Opened(record.clone()));
                    }
                    if let Some(heal) = &self.heal {
                        heal.trigger(Trigger::AnomalyOpened {
                            id: record.id,
                            series: record.series.clone(),
                            target: record.target.clone().unwrap_or_default(),
                            component: record.kind.clone(),
                            severity: record.severity.clone(),
                            explanation: record.explanation.clone(),
                        });
                    }
                    self.store.write("anomaly opened", move |c| {
                        aegis_store::anomalies::insert(c, &record)
                    })
                }
                Change::Closed {
                    id,
                    closed_ms,
                    detail,
                } => {
                    tracing::info!(anomaly = id, "anomaly closed");
                    if let Some(heal) = &self.heal {
                        heal.trigger(Trigger::AnomalyClosed { id });
                    }
                    if let Some(n) = &self.notifier {
                        n.notify(crate::notify::Notice::Closed { id, closed_ms });
                    }
                    self.store.write("anomaly closed", move |c| {
                        aegis_store::anomalies::close(c, id, closed_ms, &detail)
                    })
                }
            };
            if queued.is_err() {
                tracing::error!("an anomaly change could not be queued for the store");
            }
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
                    .map(|(k, r)| summary(k, r, &self.detection))
                    .collect();
                let _ = reply.send(list);
            }
            Query::Get {
                name,
                since_ms,
                reply,
            } => {
                let detail = self.history.find(&name).map(|(k, r)| SeriesDetail {
                    summary: summary(k, r, &self.detection),
                    data: r.since(since_ms).copied().collect(),
                });
                let _ = reply.send(detail);
            }
        }
    }

    fn publish(&mut self) {
        let now = self.clock.wall_ms();
        for key in self.history.sweep(now) {
            self.detection.forget(&key, now, &mut self.changes);
        }
        self.write_changes();
        self.status_tx.send_replace(self.status());
        let mut values: Vec<(SeriesKey, f64)> = self
            .history
            .iter()
            .filter_map(|(k, r)| r.last().and_then(|p| p.value).map(|v| (k.clone(), v)))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        self.latest_tx.send_replace(Arc::new(Latest {
            values,
            scores: self.detection.scores(),
            open_anomalies: self.detection.open_count(),
        }));
    }

    fn status(&self) -> Status {
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
            sources: self.sources.iter().map(SourceHealth::snapshot).collect(),
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
            store: self.store.status(),
            heal: self.heal_summary.as_ref().map(|r| r.borrow().clone()),
            endpoints: self
                .endpoints
                .as_ref()
                .map(|v| {
                    v.snapshot()
                        .iter()
                        .filter_map(|e| serde_json::to_value(e).ok())
                        .collect()
                })
                .unwrap_or_default(),
            notify: self.notifier.as_ref().map(crate::notify::Notifier::summary),
        }
    }
}

fn summary(key: &SeriesKey, ring: &aegis_core::ring::Ring, detection: &Detection) -> SeriesSummary {
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
