//! Helpers shared by the test binaries that run the real `aegis`: start an
//! agent on a free loopback port, talk HTTP to it, fake a procfs whose load
//! average moves, wait for things.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_aegis");

/// `aegis` with `HOME` set (so the default state directory is the test's).
pub fn aegis(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("HOME", home).env_remove("XDG_STATE_HOME");
    cmd
}

/// A running agent; killed when dropped.
pub struct Agent {
    /// The process.
    pub child: Child,
    /// Where its API listens.
    pub api: SocketAddr,
    /// Its log lines (JSON), as they come.
    pub logs: mpsc::Receiver<String>,
    /// Its HOME.
    pub home: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl Agent {
    /// Starts `aegis run` in a fresh HOME with `extra` flags.
    pub fn start(extra: &[&str]) -> Agent {
        let home = tempfile::tempdir().expect("tempdir");
        let mut agent = Agent::start_in(home.path(), extra);
        agent._owned = Some(home);
        agent
    }

    /// Starts `aegis run` in `home` with `extra` flags, on a free port, and
    /// waits until it says it runs.
    pub fn start_in(home: &Path, extra: &[&str]) -> Agent {
        Agent::start_in_env(home, extra, &[])
    }

    /// As [`Agent::start_in`], with more environment variables.
    pub fn start_in_env(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut child = aegis(home)
            .args(["run", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn aegis");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let api = loop {
            let line = logs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("agent did not log that it runs");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "aegis running" {
                break v["api"]
                    .as_str()
                    .expect("api field")
                    .parse()
                    .expect("api address");
            }
        };
        Agent {
            child,
            api,
            logs,
            home: home.to_path_buf(),
            _owned: None,
        }
    }

    /// GET: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.api, path)
    }

    /// GET a JSON answer (asserting 200).
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("json body")
    }

    /// Waits for the process to end.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The last `n` log lines not read yet, one per line: for a failure's
    /// message.
    pub fn recent_logs(&self, n: usize) -> String {
        let lines: Vec<String> = self.logs.try_iter().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The default database of this HOME.
    pub fn db(&self) -> PathBuf {
        self.home.join(".local/state/aegis/aegis.db")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: status code and (de-chunked) body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    aegis_testkit::http_get(addr, path)
}

/// A JSON POST, with a bearer token when given: status code and body.
pub fn http_post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    aegis_testkit::http_request(addr, "POST", path, &headers, body)
}

/// Polls `f` until it holds or `within` passes; whether it held.
pub fn wait_until(within: Duration, f: impl FnMut() -> bool) -> bool {
    aegis_testkit::within(within, f)
}

/// Waits until the fake host's load is scored and no anomaly is open on
/// it. The tests calibrate in seconds (warm-up 20, settle 40), and a false
/// alarm while the calibration is that young would absorb the induced jump:
/// an open anomaly does not open again.
pub fn calm_before_the_jump(agent: &Agent) {
    let calm = wait_until(Duration::from_secs(60), || {
        // The series appears with the first collections.
        // Ready, and settled: the 40 observations after warm-up during
        // which the spike component does not judge yet are behind (a jump
        // while settling would be taught to the per-observation score).
        let (code, body) = agent.get("/api/v1/series/host_load1");
        let v = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default();
        let ready = code == 200
            && v["score"]["state"] == "ready"
            && v["data"].as_array().is_some_and(|d| d.len() >= 62);
        let open = agent
            .json("/api/v1/anomalies?status=open")
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["series"] == "host_load1"));
        ready && !open
    });
    assert!(
        calm,
        "the load never settled: {}",
        agent.get("/api/v1/anomalies?series=host_load1").1
    );
}

#[allow(unused_imports)]
pub use aegis_testkit::free_port;

/// A fake procfs: constant CPU and memory, no mounts, disks or interfaces,
/// and a load average that a [`LoadWriter`] moves.
pub fn fake_proc(dir: &Path) {
    std::fs::create_dir_all(dir.join("net")).expect("mkdir");
    std::fs::write(dir.join("stat"), "cpu  100 0 100 1000 0 0 0 0 0 0\n").expect("stat");
    std::fs::write(
        dir.join("meminfo"),
        "MemTotal: 1000 kB\nMemAvailable: 500 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    )
    .expect("meminfo");
    std::fs::write(dir.join("mounts"), "").expect("mounts");
    std::fs::write(dir.join("diskstats"), "").expect("diskstats");
    std::fs::write(dir.join("net/dev"), "h\nh\n").expect("net/dev");
    std::fs::write(dir.join("loadavg"), "0.50 0.50 0.50 1/100 1\n").expect("loadavg");
}

/// Moves the fake procfs' load average: about `normal` with a little noise,
/// or about `high` while `set_high(true)`. Stops when dropped.
pub struct LoadWriter {
    high: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoadWriter {
    /// Starts writing `dir/loadavg` every 10 ms.
    pub fn start(dir: &Path, normal: f64, high: f64) -> LoadWriter {
        let flag = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, dir) = (Arc::clone(&flag), Arc::clone(&stop), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            while !s.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = (x % 1000) as f64 / 5000.0 - 0.1;
                let load = if f.load(Ordering::Relaxed) == 1 {
                    high
                } else {
                    normal
                } + noise;
                let tmp = dir.join("loadavg.tmp");
                let _ = std::fs::write(&tmp, format!("{load:.3} 0.50 0.50 1/100 1\n"));
                let _ = std::fs::rename(&tmp, dir.join("loadavg"));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        LoadWriter {
            high: flag,
            stop,
            thread: Some(thread),
        }
    }

    /// Switches between the normal and the high load.
    pub fn set_high(&self, high: bool) {
        self.high.store(u8::from(high), Ordering::Relaxed);
    }
}

impl Drop for LoadWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts an agent on a fake procfs in `home` scored fast (warm-up 20,
/// settle 40, collecting every 100 ms), with `more` appended to its config.
pub fn start_fake_host(home: &Path, more: &str) -> (Agent, PathBuf) {
    let proc_dir = home.join("proc");
    fake_proc(&proc_dir);
    let config = home.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[collect]\ninterval = \"100ms\"\nproc_root = \"{}\"\n[detect]\nwarmup = 20\nsettle = 40\n{more}",
            proc_dir.display()
        ),
    )
    .expect("config");
    let agent = Agent::start_in(home, &["--config", config.to_str().expect("utf8 path")]);
    (agent, proc_dir)
}

/// Debian's Alertmanager on a free loopback port with `config` (YAML),
/// its files in `dir`: the process (stopped when dropped) and its address.
pub fn alertmanager(dir: &Path, config: &str) -> (aegis_testkit::ChildGuard, String) {
    let port = free_port();
    std::fs::write(dir.join("alertmanager.yml"), config).expect("alertmanager.yml");
    let child = aegis_testkit::ChildGuard::spawn(
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start prometheus-alertmanager");
    (child, format!("127.0.0.1:{port}"))
}

/// Debian's Prometheus on a free loopback port with `config` (YAML), its
/// files in `dir`: the process (stopped when dropped) and its address.
pub fn prometheus(dir: &Path, config: &str) -> (aegis_testkit::ChildGuard, String) {
    let port = free_port();
    std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
    let child = aegis_testkit::ChildGuard::spawn(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start prometheus");
    (child, format!("127.0.0.1:{port}"))
}
