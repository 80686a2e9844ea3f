//! Healing containers on a real Docker engine: an opted-in container made
//! unhealthy is restarted and verified healthy; an unlabelled one is left
//! alone; one an operator stopped stays stopped; the engine stopped and
//! started again mid-test: the agent says Docker is unavailable, reconnects
//! and heals again.
//!
//! Needs the engine and image that `scripts/test.sh` sets up (DOCKER_HOST
//! pointing at the private engine it starts).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aegis");
const IMAGE: &str = "aegis-test/busybox:latest";

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn engine_dir() -> PathBuf {
    PathBuf::from(std::env::var("AEGIS_DOCKER_DIR").unwrap_or_else(|_| "/tmp/aegis-dockerd".into()))
}

/// Containers removed when the test ends, pass or fail.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = docker(&["rm", "-f", c]);
        }
    }
}

fn run_web(name: &str, labels: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none", "--init"];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.extend([
        "--health-cmd",
        "wget -q -O /dev/null http://127.0.0.1:8080/health",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        IMAGE,
        "sh",
        "-c",
        "echo ok > /www/health && exec httpd -f -p 127.0.0.1:8080 -h /www",
    ]);
    let (ok, out) = docker(&args);
    assert!(ok, "docker run {name}: {out}");
}

fn health(name: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    ])
    .1
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

struct Agent {
    child: Child,
    api: SocketAddr,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(home: &std::path::Path) -> Agent {
        let config = home.join("aegis.toml");
        std::fs::write(
            &config,
            "[docker]\ninterval = \"1s\"\n[heal]\ncooldown = \"1s\"\nverify_window = \"30s\"\nrate_max = 10\n[detect]\nenabled = false\n",
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
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn aegis");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let api = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("agent start");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "aegis running" {
                break v["api"].as_str().expect("api").parse().expect("addr");
            }
        };
        Agent { child, api }
    }

    fn text(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.api).expect("connect");
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read");
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.text(path)).unwrap_or(serde_json::Value::Null)
    }

    fn records(&self, target: &str) -> Vec<(String, String)> {
        self.json(&format!("/api/v1/actions?target={target}&limit=1000"))
            .as_array()
            .map(|a| {
                a.iter()
                    .rev()
                    .map(|r| {
                        (
                            r["action"].as_str().unwrap_or("").to_string(),
                            r["outcome"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn docker_state(&self) -> String {
        let status = self.json("/api/v1/status");
        status["sources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "docker"))
            .and_then(|s| s["state"].as_str())
            .unwrap_or("missing")
            .to_string()
    }
}

fn heals(agent: &Agent, name: &str, healed_before: usize) -> bool {
    wait_until(Duration::from_secs(40), || {
        agent
            .records(name)
            .iter()
            .filter(|(a, o)| a == "container_restart" && o == "healed")
            .count()
            > healed_before
    })
}

fn stop_engine() {
    let pidfile = engine_dir().join("dockerd.pid");
    let pid = std::fs::read_to_string(&pidfile)
        .expect("the private engine's pidfile")
        .trim()
        .to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    assert!(
        wait_until(Duration::from_secs(30), || !docker(&["info"]).0),
        "the engine did not stop"
    );
}

fn start_engine() {
    let dir = engine_dir();
    let sock = format!("unix://{}/docker.sock", dir.display());
    let log = std::fs::File::create(dir.join("dockerd.restart.log")).expect("log");
    // The engine is meant to outlive this test (later tests and runs reuse
    // it, as scripts/test.sh would have started it): it is not waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("dockerd")
        .args([
            "--data-root",
            &dir.join("data").display().to_string(),
            "--exec-root",
            &dir.join("exec").display().to_string(),
            "--pidfile",
            &dir.join("dockerd.pid").display().to_string(),
            "--host",
            &sock,
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
        ])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start dockerd");
    assert!(
        wait_until(Duration::from_secs(30), || docker(&["info"]).0),
        "the engine did not come back"
    );
}

#[test]
fn docker_healing_end_to_end() {
    let (ok, info) = docker(&["info", "--format", "{{.ServerVersion}}"]);
    assert!(
        ok,
        "no Docker engine ({info}); run scripts/test.sh, which starts one"
    );
    let private = std::env::var("DOCKER_HOST")
        .map(|h| h.contains(&engine_dir().display().to_string()))
        .unwrap_or(false);
    let tag = std::process::id();
    let (opted, plain, stopped) = (
        format!("aegis-opted-{tag}"),
        format!("aegis-plain-{tag}"),
        format!("aegis-stopped-{tag}"),
    );
    let _cleanup = Containers(vec![opted.clone(), plain.clone(), stopped.clone()]);
    run_web(&opted, &["aegis.autoheal=true"]);
    run_web(&plain, &[]);
    run_web(&stopped, &["aegis.autoheal=true"]);
    for c in [&opted, &plain, &stopped] {
        assert!(
            wait_until(Duration::from_secs(20), || health(c) == "running/healthy"),
            "{c}: {}",
            health(c)
        );
    }
    let home = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::start(home.path());
    assert!(
        wait_until(Duration::from_secs(10), || agent.docker_state() == "ok"),
        "docker source: {}",
        agent.docker_state()
    );

    // An operator stops one: it stays stopped.
    assert!(docker(&["stop", "-t", "2", &stopped]).0);
    // Both the opted-in and the plain one turn unhealthy.
    assert!(docker(&["exec", &opted, "rm", "/www/health"]).0);
    assert!(docker(&["exec", &plain, "rm", "/www/health"]).0);

    assert!(
        heals(&agent, &opted, 0),
        "opted-in container not healed: {:?}",
        agent.records(&opted)
    );
    assert_eq!(health(&opted), "running/healthy");
    let records = agent.records(&opted);
    assert_eq!(
        records
            .iter()
            .map(|(a, o)| format!("{a}:{o}"))
            .collect::<Vec<_>>(),
        vec![
            "none:decided",
            "container_restart:succeeded",
            "container_restart:healed"
        ],
    );
    // The plain one was seen unhealthy (by now, several health checks ago) and left alone.
    assert_eq!(health(&plain), "running/unhealthy");
    assert!(
        agent.records(&plain).is_empty(),
        "{:?}",
        agent.records(&plain)
    );
    assert!(
        health(&stopped).starts_with("exited"),
        "{}",
        health(&stopped)
    );
    assert!(
        agent.records(&stopped).is_empty(),
        "{:?}",
        agent.records(&stopped)
    );
    assert!(
        wait_until(Duration::from_secs(5), || agent.text("/metrics").contains(
            "aegis_heal_records_total{action=\"container_restart\",outcome=\"healed\"} 1"
        )),
        "healing not in /metrics"
    );
    assert!(agent
        .text("/metrics")
        .contains("aegis_container_healthy{container="));
    let breakers = agent.json("/api/v1/breakers");
    assert!(
        breakers["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["target"] == opted.as_str())),
        "{breakers}"
    );

    // History survives a restart of the agent: `aegis incidents` shows the
    // incident with its actions and verdict.
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    agent = Agent::start(home.path());
    let out = Command::new(BIN)
        .args([
            "incidents",
            "--url",
            &format!("http://{}", agent.api),
            "--target",
            &opted,
        ])
        .output()
        .expect("aegis incidents");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("healed") && text.contains("container_restart") && text.contains(&opted),
        "{text}"
    );
    let json = Command::new(BIN)
        .args([
            "incidents",
            "--json",
            "--url",
            &format!("http://{}", agent.api),
            "--target",
            &opted,
        ])
        .output()
        .expect("aegis incidents --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v[0]["status"], "healed", "{v}");
    assert!(wait_until(Duration::from_secs(10), || agent.docker_state() == "ok"));

    // The engine goes away and comes back.
    if !private {
        panic!("the engine restart part needs the private engine scripts/test.sh starts (DOCKER_HOST={:?})", std::env::var("DOCKER_HOST"));
    }
    stop_engine();
    assert!(
        wait_until(Duration::from_secs(15), || agent.docker_state()
            == "unavailable"),
        "the agent did not notice: {}",
        agent.docker_state()
    );
    // Everything else keeps running.
    assert_eq!(agent.json("/healthz"), serde_json::Value::Null);
    assert!(
        agent.json("/api/v1/status")["observations_total"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    start_engine();
    assert!(
        wait_until(Duration::from_secs(30), || agent.docker_state() == "ok"),
        "no reconnection: {}",
        agent.docker_state()
    );
    // The engine stopped the containers with it; bring the opted-in one back.
    assert!(docker(&["start", &opted]).0);
    assert!(
        wait_until(Duration::from_secs(20), || health(&opted)
            == "running/healthy"),
        "{}",
        health(&opted)
    );
    assert!(docker(&["exec", &opted, "rm", "/www/health"]).0);
    assert!(
        heals(&agent, &opted, 1),
        "not healed after reconnecting: {:?}",
        agent.records(&opted)
    );
}
