//! The notifier's task: grouping, rate limits and retries, never blocking
//! whoever hands it a message.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::backoff::{entropy_seed, BackoffPolicy};
use aegis_core::status::{NotifySummary, ReceiverSummary};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::message::Message;
use crate::receiver::Receiver;

/// Messages waiting for the notifier's task, at most.
const QUEUE: usize = 1_024;
/// Messages waiting for one receiver's next post, at most (the oldest go).
const MAX_PENDING: usize = 5_000;
/// Posts in flight at once, over every receiver.
const MAX_IN_FLIGHT: usize = 16;

/// Settings of the notifier.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Where broadcast messages go.
    pub receivers: Vec<Receiver>,
    /// Messages arriving within this window are sent together.
    pub group_wait: Duration,
    /// At most this many posts per receiver per minute.
    pub max_posts_per_minute: u32,
    /// Attempts per post.
    pub attempts: u32,
    /// Delay between attempts (doubling, jittered).
    pub retry: BackoffPolicy,
    /// Time allowed to one post.
    pub timeout: Duration,
    /// This host's name (the `instance` label).
    pub instance: String,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            receivers: Vec::new(),
            group_wait: Duration::from_secs(5),
            max_posts_per_minute: 6,
            attempts: 5,
            retry: BackoffPolicy::doubling(Duration::from_millis(500), Duration::from_secs(30))
                .with_jitter(0.2),
            timeout: Duration::from_secs(10),
            instance: host_name(),
        }
    }
}

/// This host's name, for the `instance` label.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// How a direct delivery ended: the receiver's reply, or why it failed
/// after every attempt.
pub type Delivery = Result<String, String>;

enum Command {
    Broadcast(Message, Option<String>),
    Direct(Box<Receiver>, Message, Option<oneshot::Sender<Delivery>>),
    Reconfigure(Box<NotifierConfig>, oneshot::Sender<Reconfigured>),
}

/// What a new configuration changed, by receiver name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Receivers that are new, or whose settings changed (they start with
    /// nothing waiting).
    pub added: Vec<String>,
    /// Receivers that are gone, with what waited for them.
    pub removed: Vec<String>,
    /// Receivers unchanged: what waits for them, and their rate limit's
    /// memory, are kept.
    pub kept: usize,
    /// Messages that waited for removed or changed receivers, dropped.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: u64,
    failed: u64,
    dropped: u64,
    receivers: BTreeMap<String, ReceiverSummary>,
}

/// The handle given to whoever has something to say. Cloneable; never blocks.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Command>,
    counters: Arc<Mutex<Counters>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

fn lock(c: &Mutex<Counters>) -> std::sync::MutexGuard<'_, Counters> {
    match c.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Notifier {
    /// Hands a message to every receiver that wants it; never waits. A
    /// full queue drops it and counts the drop.
    pub fn send(&self, message: Message) {
        self.broadcast(message, None);
    }

    /// Like [`Notifier::send`], leaving out receivers that post to
    /// `address` (they are told directly).
    pub fn send_except(&self, message: Message, address: &str) {
        self.broadcast(message, Some(address.to_string()));
    }

    fn broadcast(&self, message: Message, except: Option<String>) {
        if self
            .tx
            .try_send(Command::Broadcast(message, except))
            .is_err()
        {
            lock(&self.counters).dropped += 1;
        }
    }

    /// Delivers `message` to `receiver` alone, now (no grouping, no rate
    /// limit), with retries; the answer says how it ended.
    pub fn deliver(&self, receiver: Receiver, message: Message) -> oneshot::Receiver<Delivery> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self
            .tx
            .try_send(Command::Direct(Box::new(receiver), message, Some(reply)))
        {
            lock(&self.counters).dropped += 1;
            let (mpsc::error::TrySendError::Full(cmd) | mpsc::error::TrySendError::Closed(cmd)) = e;
            if let Command::Direct(_, _, Some(reply)) = cmd {
                let _ = reply.send(Err("the notifier is busy or stopped".into()));
            }
        }
        rx
    }

    /// Replaces the receivers and the grouping, rate-limit and retry
    /// settings (a reloaded configuration). Unchanged receivers keep what
    /// waits for them; posts in flight finish as they began. `None` when
    /// the notifier has stopped.
    pub async fn reconfigure(&self, config: NotifierConfig) -> Option<Reconfigured> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Reconfigure(Box::new(config), reply))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Delivery figures.
    pub fn summary(&self) -> NotifySummary {
        let c = lock(&self.counters);
        NotifySummary {
            delivered: c.delivered,
            failed: c.failed,
            dropped: c.dropped,
            receivers: c.receivers.values().cloned().collect(),
        }
    }
}

struct Pending {
    receiver: Receiver,
    waiting: BTreeMap<String, Message>,
    sent_at: VecDeque<Instant>,
    flush_at: Option<Instant>,
}

impl Pending {
    /// Nothing waiting for `receiver` yet.
    fn new(receiver: &Receiver) -> Self {
        Self {
            receiver: receiver.clone(),
            waiting: BTreeMap::new(),
            sent_at: VecDeque::new(),
            flush_at: None,
        }
    }
}

/// A receiver's figures before anything was sent to it.
fn summary_of(receiver: &Receiver) -> ReceiverSummary {
    ReceiverSummary {
        name: receiver.name.clone(),
        kind: receiver.kind.as_str().into(),
        ..ReceiverSummary::default()
    }
}

/// Starts the notifier's task on `tasks`; it stops with `cancel`
/// (deliveries in flight are abandoned).
pub fn start(
    config: NotifierConfig,
    cancel: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Notifier {
    let (notifier, task) = new(config);
    tasks.spawn(task.run(cancel));
    notifier
}

/// The notifier's task, built but not running: run it with
/// [`NotifierTask::run`].
pub struct NotifierTask {
    task: Task,
    rx: mpsc::Receiver<Command>,
}

impl NotifierTask {
    /// Runs until `cancel` (deliveries in flight are abandoned).
    pub async fn run(self, cancel: CancellationToken) {
        self.task.run(self.rx, cancel).await;
    }
}

/// A notifier and its task, not yet running.
pub fn new(config: NotifierConfig) -> (Notifier, NotifierTask) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let counters = Arc::new(Mutex::new(Counters::default()));
    {
        let mut c = lock(&counters);
        for r in &config.receivers {
            c.receivers.insert(r.name.clone(), summary_of(r));
        }
    }
    let task = Task {
        pending: config.receivers.iter().map(Pending::new).collect(),
        client: reqwest::Client::builder()
            .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default(),
        config,
        counters: Arc::clone(&counters),
        in_flight: JoinSet::new(),
        queued: VecDeque::new(),
    };
    (Notifier { tx, counters }, NotifierTask { task, rx })
}

type Post = (Receiver, Vec<Message>, Option<oneshot::Sender<Delivery>>);

struct Task {
    config: NotifierConfig,
    pending: Vec<Pending>,
    client: reqwest::Client,
    counters: Arc<Mutex<Counters>>,
    in_flight: JoinSet<()>,
    /// Posts waiting for a free delivery slot (bounded by the pending bounds).
    queued: VecDeque<Post>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, cancel: CancellationToken) {
        loop {
            let wake = self
                .pending
                .iter()
                .filter_map(|p| p.flush_at)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(Command::Broadcast(m, except)) => self.broadcast(m, except.as_deref()),
                    Some(Command::Direct(r, m, reply)) => self.queue((*r, vec![m], reply)),
                    Some(Command::Reconfigure(config, reply)) => {
                        let _ = reply.send(self.reconfigure(*config));
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => self.flush_due(),
                Some(_) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {}
            }
            self.start_queued();
        }
    }

    fn reconfigure(&mut self, config: NotifierConfig) -> Reconfigured {
        let mut done = Reconfigured::default();
        let mut old = std::mem::take(&mut self.pending);
        for r in &config.receivers {
            match old.iter().position(|p| p.receiver == *r) {
                Some(i) => {
                    self.pending.push(old.swap_remove(i));
                    done.kept += 1;
                }
                None => {
                    self.pending.push(Pending::new(r));
                    done.added.push(r.name.clone());
                }
            }
        }
        let now_named: std::collections::BTreeSet<&str> =
            config.receivers.iter().map(|r| r.name.as_str()).collect();
        for p in old {
            done.dropped += p.waiting.len() as u64;
            if !now_named.contains(p.receiver.name.as_str()) {
                done.removed.push(p.receiver.name.clone());
            }
        }
        {
            let mut c = lock(&self.counters);
            c.dropped += done.dropped;
            c.receivers
                .retain(|name, _| now_named.contains(name.as_str()));
            for r in &config.receivers {
                c.receivers
                    .entry(r.name.clone())
                    .or_insert_with(|| summary_of(r));
            }
        }
        self.config = config;
        done
    }

    fn broadcast(&mut self, m: Message, except: Option<&str>) {
        let group_wait = self.config.group_wait;
        let mut dropped = 0;
        for p in &mut self.pending {
            if !p.receiver.wants(&m) || except == Some(p.receiver.address().as_str()) {
                continue;
            }
            // A resolved message replaces its firing one still waiting.
            p.waiting.insert(m.key.clone(), m.clone());
            while p.waiting.len() > MAX_PENDING {
                if p.waiting.pop_first().is_some() {
                    dropped += 1;
                }
            }
            if p.flush_at.is_none() {
                p.flush_at = Some(Instant::now() + group_wait);
            }
        }
        if dropped > 0 {
            lock(&self.counters).dropped += dropped;
        }
    }

    fn flush_due(&mut self) {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let max = self.config.max_posts_per_minute.max(1) as usize;
        let mut posts = Vec::new();
        for p in &mut self.pending {
            if p.flush_at.is_none_or(|t| t > now) {
                continue;
            }
            while p
                .sent_at
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                p.sent_at.pop_front();
            }
            if p.sent_at.len() >= max {
                // Rate limited: wait for the oldest post to leave the
                // window; what arrives meanwhile joins this batch.
                p.flush_at = p.sent_at.front().map(|t| *t + window);
                continue;
            }
            p.sent_at.push_back(now);
            p.flush_at = None;
            let batch: Vec<Message> = std::mem::take(&mut p.waiting).into_values().collect();
            if !batch.is_empty() {
                posts.push((p.receiver.clone(), batch, None));
            }
        }
        for post in posts {
            self.queue(post);
        }
    }

    fn queue(&mut self, post: Post) {
        if self.queued.len() >= MAX_PENDING {
            if let Some((_, batch, reply)) = self.queued.pop_front() {
                lock(&self.counters).dropped += batch.len() as u64;
                if let Some(reply) = reply {
                    let _ = reply.send(Err("dropped: too many deliveries waiting".into()));
                }
            }
        }
        self.queued.push_back(post);
    }

    fn start_queued(&mut self) {
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some((receiver, batch, reply)) = self.queued.pop_front() else {
                return;
            };
            let client = self.client.clone();
            let counters = Arc::clone(&self.counters);
            let (attempts, retry, timeout, instance) = (
                self.config.attempts.max(1),
                self.config.retry,
                self.config.timeout,
                self.config.instance.clone(),
            );
            self.in_flight.spawn(async move {
                let mut backoff = retry.start(entropy_seed());
                let mut last = String::new();
                for attempt in 1..=attempts {
                    match receiver.post(&client, &batch, &instance, timeout).await {
                        Ok(reply_text) => {
                            tracing::info!(receiver = %receiver.name, messages = batch.len(), "notification delivered");
                            record(&counters, &receiver, Ok(()));
                            if let Some(reply) = reply {
                                let _ = reply.send(Ok(reply_text));
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(receiver = %receiver.name, attempt, error = %e, "notification delivery failed");
                            last = e;
                            if attempt < attempts {
                                tokio::time::sleep(backoff.next_delay()).await;
                            }
                        }
                    }
                }
                record(&counters, &receiver, Err(last.clone()));
                if let Some(reply) = reply {
                    let _ = reply.send(Err(last));
                }
            });
        }
    }
}

fn record(counters: &Mutex<Counters>, receiver: &Receiver, result: Result<(), String>) {
    let mut c = lock(counters);
    let entry = c
        .receivers
        .entry(receiver.name.clone())
        .or_insert_with(|| summary_of(receiver));
    match result {
        Ok(()) => {
            entry.delivered += 1;
            entry.last_error = None;
            c.delivered += 1;
        }
        Err(e) => {
            entry.failed += 1;
            entry.last_error = Some(e.chars().take(300).collect());
            c.failed += 1;
        }
    }
    // Direct deliveries name receivers outside the configured ones: keep
    // the map bounded.
    while c.receivers.len() > 256 {
        c.receivers.pop_first();
    }
}
