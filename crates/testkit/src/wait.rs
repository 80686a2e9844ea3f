//! Waiting for a condition, with a deadline and a message that says what
//! did not happen.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` every 20 ms until it holds; panics with `what` when
/// `deadline` passes first. Returns how long it took.
#[track_caller]
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `condition` until it holds or `deadline` passes; whether it held.
/// For tests that report the failure themselves, with more context.
pub fn within(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The async form of [`wait_until`]: awaits `condition()` every 20 ms of
/// the runtime's time (so paused-time tests advance instead of sleeping).
#[track_caller]
pub fn wait_until_async<'a, F, Fut>(
    deadline: Duration,
    what: &'a str,
    mut condition: F,
) -> impl Future<Output = ()> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = bool> + 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        let waited = tokio_like_sleep_loop(deadline, &mut condition).await;
        if !waited {
            panic!("timed out after {deadline:?} waiting for {what} (at {caller})");
        }
    }
}

async fn tokio_like_sleep_loop<F, Fut>(deadline: Duration, condition: &mut F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    // The kit does not depend on tokio: a 20 ms timer thread wakes the
    // future, which works on any runtime (and real time).
    let start = Instant::now();
    loop {
        if condition().await {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        Timer::after(Duration::from_millis(20)).await;
    }
}

/// A future that completes after a delay, woken by a short-lived thread.
struct Timer {
    at: Instant,
    armed: bool,
}

impl Timer {
    fn after(d: Duration) -> Self {
        Self {
            at: Instant::now() + d,
            armed: false,
        }
    }
}

impl Future for Timer {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if Instant::now() >= self.at {
            return std::task::Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            let waker = cx.waker().clone();
            let at = self.at;
            std::thread::spawn(move || {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                waker.wake();
            });
        }
        std::task::Poll::Pending
    }
}
