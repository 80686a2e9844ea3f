//! The service manager's notification protocol (`sd_notify(3)`): `READY=1`
//! once every part runs, `RELOADING=1` and `READY=1` around a reload,
//! `STOPPING=1` at shutdown, and `WATCHDOG=1` pings paced by the
//! pipeline's own heartbeat, so that a stalled pipeline stops the pings and
//! systemd restarts the agent (`WatchdogSec=` in the unit).
//!
//! Without `NOTIFY_SOCKET` in the environment (not started by systemd, or
//! `Type=simple`), every call is a no-op. The protocol is one datagram per
//! message on a Unix socket, a path or an abstract name (`@...`); a failed
//! send is logged once and never stops the agent.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::Clock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// A handle on the service manager's socket; cheap to clone.
#[derive(Debug, Clone)]
pub struct Systemd {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    address: Address,
    warned: AtomicBool,
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET`; a handle that does nothing when it is unset or
    /// unusable.
    pub fn from_env() -> Self {
        let Some(raw) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
            return Self { inner: None };
        };
        let raw = raw.to_string_lossy().into_owned();
        let address = match raw.strip_prefix('@') {
            Some(name) => Address::Abstract(name.as_bytes().to_vec()),
            None if raw.starts_with('/') => Address::Path(PathBuf::from(&raw)),
            None => {
                tracing::warn!(
                    socket = %raw,
                    "NOTIFY_SOCKET is neither a path nor an abstract name; not notifying systemd"
                );
                return Self { inner: None };
            }
        };
        match UnixDatagram::unbound() {
            Ok(socket) => Self {
                inner: Some(Arc::new(Inner {
                    socket,
                    address,
                    warned: AtomicBool::new(false),
                })),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot make a socket to notify systemd");
                Self { inner: None }
            }
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Sends one message (`KEY=VALUE` lines).
    pub fn notify(&self, message: &str) {
        let Some(inner) = &self.inner else { return };
        let sent = match &inner.address {
            Address::Path(p) => inner.socket.send_to(message.as_bytes(), p),
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| inner.socket.send_to_addr(message.as_bytes(), &a))
            }
        };
        if let Err(e) = sent {
            if !inner.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot notify systemd (further failures are not logged)");
            }
        }
    }

    /// Every part runs.
    pub fn ready(&self) {
        self.notify("READY=1\nSTATUS=running");
    }

    /// A reload begins; `ready` ends it.
    pub fn reloading(&self) {
        let usec = monotonic_usec();
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    /// Shutdown begins.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
    }
}

/// The watchdog timeout systemd asks for (`WATCHDOG_USEC`, for this process
/// when `WATCHDOG_PID` is set), or `None`.
pub fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Pings the watchdog at half its timeout for as long as the pipeline's
/// heartbeat (its loop's last publication, Unix ms) is younger than the
/// timeout. A pipeline that stalls stops the pings; systemd then kills and
/// restarts the agent.
pub async fn watchdog(
    systemd: Systemd,
    timeout: Duration,
    heartbeat: watch::Receiver<i64>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval((timeout / 2).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let mut stalled = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let age_ms = clock.wall_ms().saturating_sub(*heartbeat.borrow());
        if age_ms < limit_ms {
            if stalled {
                tracing::info!("the pipeline beats again; watchdog pings resumed");
                stalled = false;
            }
            systemd.notify("WATCHDOG=1");
        } else if !stalled {
            stalled = true;
            tracing::error!(
                heartbeat_age_ms = age_ms,
                "the pipeline has not beaten within the watchdog timeout; no more pings, systemd will restart the agent"
            );
        }
    }
}

fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64)
            .saturating_mul(1_000_000)
            .saturating_add(t.tv_nsec() as u64 / 1_000),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::ManualClock;

    fn listener() -> (tempfile::TempDir, UnixDatagram, Systemd) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let systemd = Systemd {
            inner: Some(Arc::new(Inner {
                socket: UnixDatagram::unbound().expect("socket"),
                address: Address::Path(path),
                warned: AtomicBool::new(false),
            })),
        };
        (dir, socket, systemd)
    }

    fn pings(socket: &UnixDatagram) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while let Ok(len) = socket.recv(&mut buf) {
            if &buf[..len] == b"WATCHDOG=1" {
                n += 1;
            }
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_pipeline_stops_the_watchdog_pings_and_a_beating_one_resumes_them() {
        let (_dir, socket, systemd) = listener();
        let clock = Arc::new(ManualClock::starting_at(1_000_000));
        let timeout = Duration::from_secs(2);
        // The pipeline last beat 10 s ago: stalled.
        let (beat, heartbeat) = watch::channel(clock.wall_ms() - 10_000);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watchdog(
            systemd,
            timeout,
            heartbeat,
            clock.clone(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(pings(&socket), 0, "pinged for a stalled pipeline");

        // It beats again: pings at half the timeout.
        beat.send_replace(clock.wall_ms());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let n = pings(&socket);
        assert!((2..=4).contains(&n), "{n} pings in 3 s at a 1 s period");

        stop.cancel();
        task.await.expect("the watchdog ends when told");
    }
}
