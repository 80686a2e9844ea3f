//! `statvfs` that cannot hang the agent.
//!
//! A network or FUSE file system whose server is gone makes `statvfs` on its
//! mount point wait, uninterruptibly, until the server answers: hours, or
//! never. The agent runs on one thread, so such a call made inline would
//! stop every check, heal and answer of the API with it. Here each call runs
//! on a helper thread and is waited for at most a timeout. A call that
//! times out is left to finish on its own: its thread is given up, the
//! mount is reported hung and is not asked again (no thread piles up behind
//! it) until that call returns, after which it is read as before. This is
//! how node_exporter treats "stuck mounts".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `statvfs` says of a file system, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsStat {
    /// Its size.
    pub size: f64,
    /// Space free, reserved blocks included.
    pub free: f64,
    /// Space available to unprivileged users.
    pub avail: f64,
    /// Inodes in all (0 where the file system has no fixed number).
    pub files: f64,
    /// Inodes free.
    pub files_free: f64,
    /// Mounted read-only.
    pub read_only: bool,
}

impl FsStat {
    /// Used space over used plus available, as `df` computes it: reserved
    /// blocks count as full. None when neither is above 0.
    pub fn used_ratio(&self) -> Option<f64> {
        let used = self.size - self.free;
        (used + self.avail > 0.0).then(|| used / (used + self.avail))
    }

    /// Used inodes over all inodes (0 where there are none).
    pub fn inodes_ratio(&self) -> Option<f64> {
        (self.files > 0.0).then(|| (self.files - self.files_free) / self.files)
    }
}

/// The system call itself (tests put one in that never answers).
type StatFn = fn(&Path) -> Result<FsStat, String>;

/// `statvfs(2)`.
pub fn statvfs(path: &Path) -> Result<FsStat, String> {
    use nix::sys::statvfs::FsFlags;
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| e.to_string())?;
    let frag = s.fragment_size() as f64;
    Ok(FsStat {
        size: s.blocks() as f64 * frag,
        free: s.blocks_free() as f64 * frag,
        avail: s.blocks_available() as f64 * frag,
        files: s.files() as f64,
        files_free: s.files_free() as f64,
        read_only: s.flags().contains(FsFlags::ST_RDONLY),
    })
}

/// Why no figures came.
#[derive(Debug, Clone, PartialEq)]
pub enum StatError {
    /// The call failed (no such mount, permission...).
    Failed(String),
    /// No answer within the timeout: the call is left running.
    TimedOut(Duration),
    /// An earlier call, given up on, has still not returned.
    Hung(Duration),
}

impl StatError {
    /// One line, naming the mount.
    pub fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            StatError::Failed(e) => format!("statvfs {p}: {e}"),
            StatError::TimedOut(t) => format!(
                "statvfs {p}: no answer within {t:?} (a hung network or FUSE mount?); not asked again until it answers"
            ),
            StatError::Hung(t) => format!(
                "statvfs {p}: still no answer after {}s (a hung mount?); not asked again until it answers",
                t.as_secs()
            ),
        }
    }
}

struct Job {
    path: PathBuf,
    reply: Reply,
}

enum Reply {
    Blocking(SyncSender<Result<FsStat, String>>),
    Async(tokio::sync::oneshot::Sender<Result<FsStat, String>>),
}

/// Calls under way, by path, since when: kept by the helper threads, so a
/// call given up on stays listed until it really returns.
type InFlight = Arc<Mutex<HashMap<PathBuf, Instant>>>;

/// One owner's `statvfs` calls (the host source's, one check's), made on a
/// helper thread of its own, started when first needed.
#[derive(Debug)]
pub struct Statfs {
    stat: StatFn,
    timeout: Duration,
    worker: Option<SyncSender<Job>>,
    in_flight: InFlight,
}

impl Statfs {
    /// Calls that wait at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::with(statvfs, timeout)
    }

    /// With another system call (tests).
    fn with(stat: StatFn, timeout: Duration) -> Self {
        Self {
            stat,
            timeout,
            worker: None,
            in_flight: Arc::default(),
        }
    }

    /// Waits at most `timeout` from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The mounts given up on whose call has still not returned.
    pub fn hung(&self) -> Vec<PathBuf> {
        lock(&self.in_flight).keys().cloned().collect()
    }

    /// Whether `path` has a call given up on still under way, and since when.
    fn hung_since(&self, path: &Path) -> Option<Duration> {
        lock(&self.in_flight).get(path).map(Instant::elapsed)
    }

    /// Hands `job` to the helper thread, starting one if there is none (or
    /// the last one is gone).
    fn submit(&mut self, job: Job) -> Result<(), StatError> {
        let mut job = Some(job);
        for _ in 0..2 {
            let tx = match &self.worker {
                Some(tx) => tx.clone(),
                None => {
                    let tx = spawn_worker(self.stat, Arc::clone(&self.in_flight))?;
                    self.worker = Some(tx.clone());
                    tx
                }
            };
            match tx.try_send(job.take().expect("a job")) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::TrySendError::Full(j))
                | Err(std::sync::mpsc::TrySendError::Disconnected(j)) => {
                    self.worker = None;
                    job = Some(j);
                }
            }
        }
        Err(StatError::Failed(
            "no helper thread would take the call".into(),
        ))
    }

    /// Reads `path`, blocking the calling thread at most the timeout.
    pub fn stat(&mut self, path: &Path) -> Result<FsStat, StatError> {
        if let Some(since) = self.hung_since(path) {
            return Err(StatError::Hung(since));
        }
        let (tx, rx) = sync_channel(1);
        self.submit(Job {
            path: path.to_path_buf(),
            reply: Reply::Blocking(tx),
        })?;
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(StatError::Failed),
            Err(RecvTimeoutError::Timeout) => {
                // Its thread stays in the call; the next one gets a new thread.
                self.worker = None;
                Err(StatError::TimedOut(self.timeout))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.worker = None;
                Err(StatError::Failed("the helper thread stopped".into()))
            }
        }
    }

    /// Reads `path`, waiting at most the timeout without blocking the
    /// runtime.
    pub async fn stat_async(&mut self, path: &Path) -> Result<FsStat, StatError> {
        if let Some(since) = self.hung_since(path) {
            return Err(StatError::Hung(since));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Job {
            path: path.to_path_buf(),
            reply: Reply::Async(tx),
        })?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r.map_err(StatError::Failed),
            Ok(Err(_)) => {
                self.worker = None;
                Err(StatError::Failed("the helper thread stopped".into()))
            }
            Err(_) => {
                self.worker = None;
                Err(StatError::TimedOut(self.timeout))
            }
        }
    }
}

fn lock(
    m: &Mutex<HashMap<PathBuf, Instant>>,
) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Instant>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A helper thread serving calls one at a time until its owner lets go of
/// it (after a timeout, while it is still in its call).
fn spawn_worker(stat: StatFn, in_flight: InFlight) -> Result<SyncSender<Job>, StatError> {
    let (tx, rx): (SyncSender<Job>, Receiver<Job>) = sync_channel(1);
    std::thread::Builder::new()
        .name("aegis-statfs".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for job in rx {
                lock(&in_flight).insert(job.path.clone(), Instant::now());
                let r = stat(&job.path);
                lock(&in_flight).remove(&job.path);
                match job.reply {
                    Reply::Blocking(tx) => {
                        let _ = tx.send(r);
                    }
                    Reply::Async(tx) => {
                        let _ = tx.send(r);
                    }
                }
            }
        })
        .map_err(|e| StatError::Failed(format!("starting a helper thread: {e}")))?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The fake server of `/hung`: holds its callers until released.
    static RELEASED: AtomicBool = AtomicBool::new(false);

    fn fake(path: &Path) -> Result<FsStat, String> {
        if path == Path::new("/hung") {
            while !RELEASED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if path == Path::new("/gone") {
            return Err("ENOENT: No such file or directory".into());
        }
        Ok(FsStat {
            size: 100.0,
            free: 30.0,
            avail: 20.0,
            files: 10.0,
            files_free: 5.0,
            read_only: false,
        })
    }

    #[test]
    fn a_hung_mount_costs_one_timeout_then_is_skipped_until_it_answers() {
        let mut s = Statfs::with(fake, Duration::from_millis(200));
        let ok = s.stat(Path::new("/")).expect("answers");
        // As df: used 70 of used + available 90.
        assert!((ok.used_ratio().expect("a ratio") - 70.0 / 90.0).abs() < 1e-12);
        assert_eq!(ok.inodes_ratio(), Some(0.5));
        assert!(matches!(
            s.stat(Path::new("/gone")),
            Err(StatError::Failed(e)) if e.contains("ENOENT")
        ));

        let started = Instant::now();
        assert_eq!(
            s.stat(Path::new("/hung")),
            Err(StatError::TimedOut(Duration::from_millis(200)))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // Not asked again while that call is under way: no wait at all.
        let started = Instant::now();
        assert!(matches!(
            s.stat(Path::new("/hung")),
            Err(StatError::Hung(_))
        ));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(s.hung(), vec![PathBuf::from("/hung")]);
        // The other mounts are read at once, by a new thread.
        assert!(s.stat(Path::new("/")).is_ok());

        // The server answers: the stuck call returns and the mount is read again.
        RELEASED.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.hung().is_empty() {
            assert!(Instant::now() < deadline, "the stuck call never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(s.stat(Path::new("/hung")).is_ok());
        assert!(StatError::TimedOut(Duration::from_secs(1))
            .describe(Path::new("/mnt/nfs"))
            .contains("statvfs /mnt/nfs: no answer within 1s"));
    }

    #[tokio::test]
    async fn the_async_call_never_blocks_the_runtime() {
        static HELD: AtomicBool = AtomicBool::new(true);
        fn slow(path: &Path) -> Result<FsStat, String> {
            while HELD.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            fake(path)
        }
        let mut s = Statfs::with(slow, Duration::from_millis(100));
        // A timer on the same (current-thread) runtime still fires while
        // the call waits.
        let ticks = tokio::spawn(async {
            let mut n = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n += 1;
            }
            n
        });
        assert!(matches!(
            s.stat_async(Path::new("/a")).await,
            Err(StatError::TimedOut(_))
        ));
        assert_eq!(ticks.await.expect("ticks"), 5);
        assert!(matches!(
            s.stat_async(Path::new("/a")).await,
            Err(StatError::Hung(_))
        ));
        HELD.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.hung().is_empty() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(s.stat_async(Path::new("/a")).await.is_ok());
    }
}
