//! The dashboard in a real headless browser (Debian's chromium, installed by
//! scripts/test.sh): the page loads with no console error, charts draw, and
//! an induced anomaly appears on the page.
//!
//! `AEGIS_SCREENSHOT=docs/dashboard.png cargo test -p aegis --test dashboard`
//! also saves a screenshot there.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aegis");

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("no chromium; scripts/test.sh installs Debian's"))
}

/// Runs headless chromium on `url` with `extra` flags; returns (stdout, stderr).
fn browse(url: &str, profile: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn the_dashboard_loads_draws_and_shows_an_induced_anomaly() {
    let home = tempfile::tempdir().expect("tempdir");
    let proc_dir = home.path().join("proc");
    std::fs::create_dir_all(proc_dir.join("net")).expect("mkdir");
    std::fs::write(proc_dir.join("stat"), "cpu  100 0 100 1000 0 0 0 0 0 0\n").expect("stat");
    std::fs::write(
        proc_dir.join("meminfo"),
        "MemTotal: 1000 kB\nMemAvailable: 500 kB\n",
    )
    .expect("meminfo");
    std::fs::write(proc_dir.join("mounts"), "").expect("mounts");
    std::fs::write(proc_dir.join("diskstats"), "").expect("diskstats");
    std::fs::write(proc_dir.join("net/dev"), "h\nh\n").expect("net");
    std::fs::write(proc_dir.join("loadavg"), "0.5 0.5 0.5 1/1 1\n").expect("loadavg");
    let config = home.path().join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[collect]\ninterval = \"100ms\"\nproc_root = \"{}\"\n[detect]\nwarmup = 20\nsettle = 40\n[docker]\nenabled = false\n",
            proc_dir.display()
        ),
    )
    .expect("config");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aegis");
    let stderr = child.stderr.take().expect("stderr");
    let agent = Agent(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let api: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("agent start");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "aegis running" {
            break v["api"].as_str().expect("api").parse().expect("addr");
        }
    };

    // Load wobbles around 0.5, then jumps: an anomaly opens.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let dir = proc_dir.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut x: u64 = 88172645463325252;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = (x % 1000) as f64 / 5000.0 - 0.1;
                let load = if started.elapsed() < Duration::from_secs(10) {
                    0.5 + noise
                } else {
                    12.0 + noise
                };
                let tmp = dir.join("loadavg.tmp");
                let _ = std::fs::write(&tmp, format!("{load:.3} 0.5 0.5 1/1 1\n"));
                let _ = std::fs::rename(&tmp, dir.join("loadavg"));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(api, "/api/v1/anomalies?status=open").contains("host_load1") {
        assert!(Instant::now() < deadline, "no anomaly was induced");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    let profile = tempfile::tempdir().expect("profile");
    let url = format!("http://{api}/");
    let (dom, log) = browse(&url, profile.path(), &["--dump-dom"]);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(dom.contains("Aegis Sentinel"), "{dom}");
    // Charts drew: a line for the load, with the anomaly marked on it.
    let load_chart = dom
        .split("data-series=\"host_load1\"")
        .nth(1)
        .expect("a load chart");
    assert!(load_chart.contains("<path d=\"M"), "no line drawn");
    assert!(
        load_chart.contains("anomaly-mark"),
        "the anomaly is not marked on the chart"
    );
    // The open anomaly is listed with its explanation.
    assert!(
        dom.contains("anomaly-row") && dom.contains("above the expected"),
        "no open anomaly on the page"
    );
    // The header shows the agent's figures (not "unreachable").
    assert!(
        dom.contains("id=\"agent\" class=\"dim\">up "),
        "the page could not reach the agent"
    );

    if let Ok(path) = std::env::var("AEGIS_SCREENSHOT") {
        let shot = format!("--screenshot={path}");
        let (_, log) = browse(
            &url,
            profile.path(),
            &[&shot, "--window-size=1280,900", "--hide-scrollbars"],
        );
        assert!(Path::new(&path).exists(), "no screenshot: {log}");
    }
    // A narrow screen still renders everything.
    let (narrow, _) = browse(
        &url,
        profile.path(),
        &["--dump-dom", "--window-size=390,844"],
    );
    assert!(narrow.contains("anomaly-row"));
    drop(agent);
}
