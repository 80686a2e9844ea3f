//! The agent's tasks, each with a name and a span, supervised: a task that
//! panics is logged and counted (`aegis_panics_total`), and when it is one
//! the agent cannot do without (the pipeline, healing, the store's feed,
//! the API) the agent stops with an error instead of running on half
//! alive, so its supervisor (systemd, the container engine) restarts it.
//! Nothing ever waits on a dead task: shutdown waits for the tracker, and a
//! panicked task has ended.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts a panic (from the panic hook).
pub fn count_panic() {
    PANICS.fetch_add(1, Ordering::Relaxed);
}

/// Panics caught since start.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Whether the agent can go on without a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Losing it stops the agent (with an error).
    Critical,
    /// Losing it costs what it does; the rest goes on.
    Optional,
}

/// The running tasks.
#[derive(Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled when a critical task dies: the agent stops.
    failed: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
}

impl Tasks {
    /// No task yet.
    pub fn new() -> Self {
        Self {
            tracker: TaskTracker::new(),
            failed: CancellationToken::new(),
            failure: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `task` as `name`, supervised.
    pub fn spawn<F>(&self, name: &'static str, role: Role, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = tokio::spawn(task.instrument(tracing::info_span!("task", name)));
        let (failed, failure) = (self.failed.clone(), Arc::clone(&self.failure));
        self.tracker.spawn(async move {
            match inner.await {
                Ok(()) => tracing::debug!(task = name, "task ended"),
                Err(e) if e.is_panic() => {
                    tracing::error!(task = name, "task panicked");
                    if role == Role::Critical {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert_with(|| format!("the {name} task panicked"));
                        }
                        failed.cancel();
                    }
                }
                Err(_) => {}
            }
        });
    }

    /// Resolves when a critical task has died.
    pub async fn failed(&self) {
        self.failed.cancelled().await;
    }

    /// Why the agent stops with an error, if it does.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// No more tasks will be added.
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Resolves when every task has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// The tracker, for parts that spawn helpers of their own.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}
