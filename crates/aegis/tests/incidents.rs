//! One incident per fault, end to end: an endpoint checked every second is
//! killed, and the series the fault moves (the endpoint's own, and the
//! loopback traffic that was the checks' own traffic) open their anomalies
//! within a second or two of each other. The agent records one incident,
//! the endpoint's anomaly with the loopback anomalies as its evidence, and
//! a real Alertmanager (Debian's prometheus-alertmanager) receives one
//! alert for the fault: the failing check's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aegis_testkit::{free_port, need, HttpStub};

mod common;

use common::{fake_proc, http_get, wait_until, Agent, BIN};

/// Writes the fake procfs' `net/dev` every 10 ms: loopback bytes grow at
/// about 200 kB/s each way (±10%) while `up`, and not at all after.
struct Loopback {
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Loopback {
    fn start(proc_dir: &Path) -> Loopback {
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (u, s, dir) = (Arc::clone(&up), Arc::clone(&stop), proc_dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            // The counters follow the clock, not this loop, so a writer
            // held up on a loaded machine makes no dip of its own.
            let (mut rx, mut tx, mut x) =
                (1_000_000.0f64, 1_000_000.0f64, 0x9E37_79B9_7F4A_7C15u64);
            let mut last = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                let dt = now.duration_since(last).as_secs_f64();
                last = now;
                if u.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let wobble = (x % 1_000) as f64 / 1_000.0 * 0.2 + 0.9;
                    rx += 200_000.0 * dt * wobble;
                    tx += 200_000.0 * dt * (1.9 - wobble);
                }
                let (rx, tx) = (rx as u64, tx as u64);
                let text = format!(
                    "Inter-|   Receive                                                |  Transmit\n \
                     face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                     lo: {rx} {p} 0 0 0 0 0 0 {tx} {p} 0 0 0 0 0 0\n",
                    p = rx / 100
                );
                let tmp = dir.join("net/dev.tmp");
                let _ = std::fs::write(&tmp, text);
                let _ = std::fs::rename(&tmp, dir.join("net/dev"));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Loopback {
            up,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn http(addr: &str, path: &str) -> String {
    addr.parse()
        .map(|a| http_get(a, path).1)
        .unwrap_or_default()
}

#[test]
fn an_endpoint_fault_is_one_incident_with_its_evidence_and_one_alert() {
    if !need(&["prometheus-alertmanager"]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let (_am, am) = common::alertmanager(
        dir,
        "route:\n  receiver: none\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: none\n",
    );
    assert!(
        wait_until(Duration::from_secs(20), || http(&am, "/-/ready")
            .contains("OK")),
        "alertmanager not ready"
    );
    let alerts = || -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&http(&am, "/api/v2/alerts"))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };

    // A fake host whose loopback traffic the test moves, a real endpoint.
    let proc_dir = dir.join("proc");
    fake_proc(&proc_dir);
    let lo = Loopback::start(&proc_dir);
    let port = free_port();
    let server = HttpStub::start_on(port);
    let config = dir.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[collect]\ninterval = \"100ms\"\nproc_root = \"{}\"\n[detect]\nwarmup = 20\nsettle = 40\n\
             [docker]\nenabled = false\n\
             [notify]\ngroup_wait = \"200ms\"\nwebhooks = [{{ url = \"http://{am}/api/v2/alerts\" }}]\n\
             [[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 3\n",
            proc_dir.display()
        ),
    )
    .expect("config");
    let agent = Agent::start_in(dir, &["--config", config.to_str().expect("utf8")]);

    // Healthy until the endpoint's series has been seen long enough to
    // judge (warm-up and settling: 60 points, a minute at one check a
    // second) and nothing is open.
    let judged = |series: &str| {
        let (code, body) = agent.get(&format!("/api/v1/series/{series}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        code == 200
            && v["score"]["state"] == "ready"
            && v["data"].as_array().is_some_and(|d| d.len() >= 62)
    };
    // Nothing open, and nothing closed in the last 20 s either: a blip of
    // a loaded machine just before the fault would be the fault's group.
    let quiet = || {
        let now = agent.json("/api/v1/status")["updated_ms"]
            .as_i64()
            .unwrap_or(0);
        agent
            .json("/api/v1/anomalies?limit=1000")
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .all(|r| r["closed_ms"].as_i64().is_some_and(|c| c < now - 20_000))
            })
    };
    let calm = wait_until(Duration::from_secs(240), || {
        judged("endpoint_up/web") && judged("host_net_rx_bytes_per_second/lo") && quiet()
    });
    assert!(
        calm,
        "never calm: {}",
        agent.get("/api/v1/anomalies?status=open").1
    );
    assert!(
        alerts().is_empty(),
        "alerts before the fault: {:?}",
        alerts()
    );
    let since_ms = agent.json("/api/v1/status")["updated_ms"]
        .as_i64()
        .expect("updated_ms");

    // The fault: the endpoint dies, and its traffic on loopback with it.
    drop(server);
    lo.up.store(false, Ordering::Relaxed);
    let killed = Instant::now();

    let incidents = || -> Vec<serde_json::Value> {
        agent
            .json("/api/v1/incidents?limit=100")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i["started_ms"].as_i64().unwrap_or(0) >= since_ms)
            .collect()
    };
    let evidence_of = |i: &serde_json::Value| -> Vec<String> {
        i["evidence"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|a| a["series"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let grouped = wait_until(Duration::from_secs(40), || {
        incidents().iter().any(|i| {
            i["target"] == "web"
                && i["anomaly"]["series"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("endpoint_") && s.ends_with("/web"))
                && evidence_of(i)
                    .iter()
                    .any(|s| s.starts_with("host_net_") && s.ends_with("/lo"))
        })
    });
    assert!(
        grouped,
        "no incident of the endpoint with the loopback as evidence: {:#?}\nanomalies: {}",
        incidents(),
        agent.get("/api/v1/anomalies?limit=50").1
    );
    let anomalies = agent.json("/api/v1/anomalies?limit=100");
    let opened_since: Vec<&serde_json::Value> = anomalies
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["opened_ms"].as_i64().unwrap_or(0) >= since_ms)
        .collect();
    assert!(
        opened_since.len() >= 2,
        "one fault, several series: {opened_since:#?}"
    );
    let found = incidents();
    assert_eq!(found.len(), 1, "one fault, one incident: {found:#?}");
    let incident = &found[0];
    let held = 1 + evidence_of(incident).len();
    assert_eq!(
        held,
        opened_since.len(),
        "every anomaly of the fault is in the incident: {incident:#}\n{opened_since:#?}"
    );

    // The check fails too (three failures a second apart): Alertmanager
    // has its alert, and nothing else once every message held for evidence
    // has had its time (10 s after the first anomaly, with room to spare).
    assert!(
        wait_until(Duration::from_secs(30), || !alerts().is_empty()),
        "Alertmanager received nothing"
    );
    // Proving that nothing more comes takes time: 25 s from the fault.
    std::thread::sleep(Duration::from_secs(25).saturating_sub(killed.elapsed()));
    let received = alerts();
    assert_eq!(received.len(), 1, "one alert for one fault: {received:#?}");
    assert_eq!(received[0]["labels"]["alertname"], "AegisCheckFailing");
    assert_eq!(received[0]["labels"]["check"], "web");
    assert_eq!(incidents().len(), 1, "{:#?}", incidents());

    // `aegis incidents` shows it the same way: one incident, its evidence.
    let out = std::process::Command::new(BIN)
        .args([
            "incidents",
            "--url",
            &format!("http://{}", agent.api),
            "--since",
            &since_ms.to_string(),
        ])
        .output()
        .expect("aegis incidents");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("anomaly-").count(), 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("evidence") && l.contains("host_net_") && l.contains("/lo")),
        "{text}"
    );
    drop(lo);
}
