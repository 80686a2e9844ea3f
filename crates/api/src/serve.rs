//! Serving the API on a listener, with limits an agent needs when its
//! port is reachable by anything: at most `max_connections` at once (more
//! are accepted and closed at once, so they never hold a descriptor the
//! sources need), request headers within `header_timeout` (an idle
//! connection is closed then too), each request answered within
//! `request_timeout` (a body trickled in slowly is cut off), and a body
//! larger than [`MAX_BODY`](crate::MAX_BODY) refused from its
//! `Content-Length` before a byte of it is read.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::{app, ApiError, AppState, MAX_BODY};

/// The listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request's headers (and longest idle time between
    /// requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Time to answer one request, body included.
    pub request_timeout: Duration,
    /// Time requests in flight get to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// The listener's figures, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections being served now.
    pub open: AtomicU64,
    /// Connections served since start.
    pub accepted: AtomicU64,
    /// Connections closed at once because the cap was reached.
    pub refused: AtomicU64,
    /// Accept errors (out of descriptors...).
    pub accept_errors: AtomicU64,
}

/// Refuses a body whose `Content-Length` is over the bound before reading
/// it, and answers 408 for a request that takes too long.
pub(crate) async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::TooLarge(format!(
            "the body may be at most {MAX_BODY} bytes; Content-Length says {}",
            declared.unwrap_or(0)
        ))
        .into_response();
    }
    let timeout = req
        .extensions()
        .get::<RequestTimeout>()
        .map_or(Limits::default().request_timeout, |t| t.0);
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The request timeout, handed to the middleware with each request.
#[derive(Debug, Clone, Copy)]
struct RequestTimeout(Duration);

/// Serves the API on `listener` until `shutdown` completes, then lets the
/// requests in flight finish within the drain timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let timeout = RequestTimeout(limits.request_timeout);
    let router = app(state).layer(axum::Extension(timeout));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "accepting a connection failed");
                    // Out of descriptors: give the others a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let service = TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("requests still in flight at shutdown were abandoned");
    }
    Ok(())
}
