//! Announcing anomalies: each becomes an Alertmanager alert, firing when it
//! opens and resolved when it closes, posted to every configured webhook.
//!
//! A storm becomes a few messages: alerts arriving within `group_wait` go in
//! one post, each receiver gets at most `max_posts_per_minute` posts and what
//! waits is merged into the next. Delivery runs on its own task with retries
//! and exponential backoff; failures are counted and logged, and nothing
//! here can block the pipeline (it only ever `try_send`s to this task).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::action::Webhook;
use aegis_core::config::NotifyConfig;
use aegis_core::status::AnomalyRecord;
use aegis_heal::exec::webhook::{post, rfc3339, Alert};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the pipeline tells the notifier.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An anomaly opened.
    Opened(AnomalyRecord),
    /// An anomaly closed at this time.
    Closed {
        /// Its id.
        id: i64,
        /// When, Unix ms.
        closed_ms: i64,
    },
}

/// Delivery counters, for the status and `/metrics`.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Posts delivered.
    pub delivered: AtomicU64,
    /// Posts given up after every attempt.
    pub failed: AtomicU64,
    /// Notices dropped because the notifier's queue was full.
    pub dropped: AtomicU64,
}

/// The sending side, given to the pipeline.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notice>,
    stats: Arc<NotifyStats>,
}

impl Notifier {
    /// Queues a notice; never waits.
    pub fn notify(&self, notice: Notice) {
        if self.tx.try_send(notice).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Delivery counters.
    pub fn summary(&self) -> aegis_core::status::NotifySummary {
        aegis_core::status::NotifySummary {
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
        }
    }
}

fn rank(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

fn alert_of(a: &AnomalyRecord, ends: Option<i64>, host: &str) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), "AegisAnomaly".to_string());
    labels.insert("series".to_string(), a.series.clone());
    labels.insert("severity".to_string(), a.severity.clone());
    labels.insert("component".to_string(), a.kind.clone());
    labels.insert("instance".to_string(), host.to_string());
    if let Some(t) = &a.target {
        labels.insert("target".to_string(), t.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_string(),
        format!("{} anomaly on {}", a.severity, a.series),
    );
    annotations.insert("description".to_string(), a.explanation.clone());
    annotations.insert("anomaly_id".to_string(), a.id.to_string());
    Alert {
        labels,
        annotations,
        starts_at: rfc3339(a.opened_ms),
        ends_at: ends.map(rfc3339),
        generator_url: String::new(),
    }
}

/// Starts the notifier; `None` when no webhook is configured.
pub fn start(
    config: &NotifyConfig,
    cancel: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Option<Notifier> {
    if config.webhooks.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<Notice>(1_024);
    let stats = Arc::new(NotifyStats::default());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let config = config.clone();
    let shared = Arc::clone(&stats);
    tasks.spawn(async move {
        // Open anomalies we announced (bounded: the oldest are forgotten).
        let mut firing: BTreeMap<i64, AnomalyRecord> = BTreeMap::new();
        let mut pending: BTreeMap<(i64, bool), Alert> = BTreeMap::new();
        let mut sent_at: Vec<tokio::time::Instant> = Vec::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            let wake =
                flush_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = cancel.cancelled() => break,
                n = rx.recv() => {
                    let Some(n) = n else { break };
                    match n {
                        Notice::Opened(a) if rank(&a.severity) >= rank(&config.min_severity) => {
                            pending.insert((a.id, false), alert_of(&a, None, &host));
                            firing.insert(a.id, a);
                            if firing.len() > 10_000 {
                                let oldest = firing.keys().next().copied();
                                if let Some(k) = oldest {
                                    firing.remove(&k);
                                }
                            }
                        }
                        Notice::Opened(_) => {}
                        Notice::Closed { id, closed_ms } => {
                            if let Some(a) = firing.remove(&id) {
                                pending.remove(&(id, false));
                                pending.insert((id, true), alert_of(&a, Some(closed_ms), &host));
                            }
                        }
                    }
                    if pending.len() > 5_000 {
                        // A bound, even in a storm: keep the newest.
                        let drop_n = pending.len() - 5_000;
                        let keys: Vec<(i64, bool)> = pending.keys().take(drop_n).copied().collect();
                        for k in keys {
                            pending.remove(&k);
                        }
                        shared.dropped.fetch_add(drop_n as u64, Ordering::Relaxed);
                    }
                    if flush_at.is_none() && !pending.is_empty() {
                        flush_at = Some(tokio::time::Instant::now() + config.group_wait.0);
                    }
                }
                _ = tokio::time::sleep_until(wake), if flush_at.is_some() => {
                    let now = tokio::time::Instant::now();
                    sent_at.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                    if sent_at.len() as u32 >= config.max_posts_per_minute {
                        // Rate limited: wait for the oldest post to age out;
                        // what arrives meanwhile joins this batch.
                        flush_at = sent_at.first().map(|t| *t + Duration::from_secs(60));
                        continue;
                    }
                    sent_at.push(now);
                    flush_at = None;
                    let batch: Vec<Alert> = std::mem::take(&mut pending).into_values().collect();
                    for hook in config.webhooks.clone() {
                        let batch = batch.clone();
                        let stats = Arc::clone(&shared);
                        let attempts = config.attempts;
                        tokio::spawn(deliver(hook, batch, attempts, stats));
                    }
                }
            }
        }
    });
    Some(Notifier { tx, stats })
}

async fn deliver(hook: Webhook, batch: Vec<Alert>, attempts: u32, stats: Arc<NotifyStats>) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=attempts.max(1) {
        match post(&hook, &batch, Duration::from_secs(10)).await {
            Ok(_) => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(url = %hook.url, alerts = batch.len(), "alerts delivered");
                return;
            }
            Err(e) => {
                tracing::warn!(url = %hook.url, attempt, error = %e, "alert delivery failed");
                if attempt < attempts {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
    stats.failed.fetch_add(1, Ordering::Relaxed);
}
