//! Child processes that never outlive their test, and real servers
//! (redis-server, memcached) started on free loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::within;

/// First port of the range [`free_port`] hands out: below the kernel's
/// ephemeral range (32768 and up), so no outgoing connection of another
/// test can take a port between the moment it is chosen and the moment
/// its server binds it.
const PORTS_FROM: u16 = 20_000;
/// Ports in that range.
const PORTS: u16 = 12_000;

static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A loopback port nothing listens on, never handed out twice by this
/// process (tests running in parallel never share one).
pub fn free_port() -> u16 {
    // Each test binary starts at its own place in the range.
    let base = (std::process::id() % u32::from(PORTS)) * 7;
    for _ in 0..PORTS {
        let n = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = PORTS_FROM + ((base + n) % u32::from(PORTS)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {PORTS_FROM} and {}",
        PORTS_FROM + PORTS
    );
}

/// A child process (and its process group) killed when dropped, pass or fail.
#[derive(Debug)]
pub struct ChildGuard {
    /// The process.
    pub child: Child,
}

impl ChildGuard {
    /// Starts `cmd` in a process group of its own, with no standard input.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<ChildGuard> {
        let child = cmd.stdin(Stdio::null()).process_group(0).spawn()?;
        Ok(ChildGuard { child })
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the group now and reaps the child.
    pub fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative PID signals that process group;
            // it has no memory-safety preconditions.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something accepts connections at `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A real server on a free loopback port, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub guard: ChildGuard,
}

fn start_server(program: &str, args: &[String], port: u16) -> Option<Server> {
    let guard = ChildGuard::spawn(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if !within(Duration::from_secs(15), || accepts(addr)) {
        panic!("{program} did not listen on {addr} within 15 s");
    }
    Some(Server { addr, guard })
}

/// A redis-server with no persistence on a free port; `None` (the test
/// skipped, saying why) when redis-server is not installed. `extra` are
/// more config arguments (`--requirepass`, ...).
#[track_caller]
pub fn redis(extra: &[&str]) -> Option<Server> {
    if !crate::need(&["redis-server"]) {
        return None;
    }
    let port = free_port();
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    start_server("redis-server", &args, port)
}

/// A memcached on a free loopback port; `None` (skipped) when not installed.
#[track_caller]
pub fn memcached() -> Option<Server> {
    if !crate::need(&["memcached"]) {
        return None;
    }
    let port = free_port();
    let mut args: Vec<String> = ["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // memcached refuses to run as root unless told which user to be.
        args.extend(["-u".to_string(), "root".to_string()]);
    }
    start_server("memcached", &args, port)
}
