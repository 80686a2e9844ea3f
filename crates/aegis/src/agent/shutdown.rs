//! Shutdown in three steps: tell every task, wait for them under a
//! deadline, close the store last. Nothing here blocks the runtime.

use std::time::Duration;

use aegis_store::{StoreHandle, StoreThread};
use tokio_util::sync::CancellationToken;

use super::tasks::Tasks;

/// The store always gets at least this long for its last commit, even when
/// the tasks took the whole deadline.
const STORE_MIN: Duration = Duration::from_millis(500);

/// Stops everything; an error when the deadline was not met.
pub(super) async fn stop(
    tasks: &Tasks,
    stop: CancellationToken,
    store: StoreHandle,
    store_thread: StoreThread,
    deadline: Duration,
) -> anyhow::Result<()> {
    tracing::info!(deadline = ?deadline, "shutting down");
    let started = tokio::time::Instant::now();
    // 1. Tell.
    stop.cancel();
    // 2. Wait, under the deadline.
    let finished = tokio::time::timeout(deadline, tasks.wait()).await.is_ok();
    if !finished {
        tracing::warn!("tasks did not stop within the deadline; closing the store anyway");
    }
    // 3. The store last: everything the tasks handed it is committed.
    store.shutdown();
    let left = deadline.saturating_sub(started.elapsed()).max(STORE_MIN);
    let closed = store_thread.wait(left).await;
    if !finished || !closed {
        anyhow::bail!("shutdown exceeded its deadline of {deadline:?}");
    }
    tracing::info!("stopped");
    Ok(())
}
