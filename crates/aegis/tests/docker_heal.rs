//! Healing containers on a real Docker engine: an opted-in container made
//! unhealthy is restarted and verified healthy; an unlabelled one is left
//! alone; one an operator stopped stays stopped; the engine stopped and
//! started again mid-test: the agent says Docker is unavailable, reconnects
//! and heals again.
//!
//! Needs the engine and image that `scripts/test.sh` sets up (DOCKER_HOST
//! pointing at the private engine it starts).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use aegis_testkit::docker::{docker, health, run_web, Containers};
use common::{wait_until, Agent, BIN};

fn engine_dir() -> PathBuf {
    PathBuf::from(std::env::var("AEGIS_DOCKER_DIR").unwrap_or_else(|_| "/tmp/aegis-dockerd".into()))
}

fn start_agent(home: &Path) -> Agent {
    let config = home.join("aegis.toml");
    std::fs::write(
        &config,
        "[docker]\ninterval = \"1s\"\n[heal]\ncooldown = \"1s\"\nverify_window = \"30s\"\nrate_max = 10\n[detect]\nenabled = false\n",
    )
    .expect("config");
    Agent::start_in(home, &["--config", config.to_str().expect("utf8 path")])
}

fn records(agent: &Agent, target: &str) -> Vec<(String, String)> {
    agent
        .json(&format!("/api/v1/actions?target={target}&limit=1000"))
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

fn docker_state(agent: &Agent) -> String {
    let status = agent.json("/api/v1/status");
    status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "docker"))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

/// Waits for one more `healed` restart of `name` than `healed_before`;
/// fails with `what`, the records and the agent's log when none comes.
fn expect_heal(agent: &Agent, name: &str, healed_before: usize, what: &str) {
    let healed = wait_until(Duration::from_secs(40), || {
        records(agent, name)
            .iter()
            .filter(|(a, o)| a == "container_restart" && o == "healed")
            .count()
            > healed_before
    });
    assert!(
        healed,
        "{what}: {:?}\nthe agent's log:\n{}",
        records(agent, name),
        agent.recent_logs(40)
    );
}

/// Whether a process runs; a zombie (an engine an earlier run of this test
/// started and never waited for) does not.
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
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
    // The socket closes before the engine has finished stopping (containerd,
    // then its pidfile, go last); a new engine started before then refuses
    // to run beside the pidfile. Wait for the process itself to be gone.
    assert!(
        wait_until(Duration::from_secs(30), || !running(&pid)),
        "the engine (pid {pid}) did not stop"
    );
    assert!(!docker(&["info"]).0, "the engine still answers");
}

fn start_engine() {
    let dir = engine_dir();
    let sock = format!("unix://{}/docker.sock", dir.display());
    let pidfile = dir.join("dockerd.pid");
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        if !running(pid.trim()) {
            let _ = std::fs::remove_file(&pidfile);
        }
    }
    let log_path = dir.join("dockerd.restart.log");
    let log = std::fs::File::create(&log_path).expect("log");
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
            &pidfile.display().to_string(),
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
    let back = wait_until(Duration::from_secs(30), || docker(&["info"]).0);
    assert!(
        back,
        "the engine did not come back; {}:\n{}",
        log_path.display(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

#[test]
fn docker_healing_end_to_end() {
    if !aegis_testkit::need::need_docker() {
        return;
    }
    let private = std::env::var("DOCKER_HOST")
        .map(|h| h.contains(&engine_dir().display().to_string()))
        .unwrap_or(false);
    let tag = std::process::id();
    let (opted, plain, stopped, early) = (
        format!("aegis-opted-{tag}"),
        format!("aegis-plain-{tag}"),
        format!("aegis-stopped-{tag}"),
        format!("aegis-early-{tag}"),
    );
    let _cleanup = Containers(vec![
        opted.clone(),
        plain.clone(),
        stopped.clone(),
        early.clone(),
    ]);
    run_web(&opted, &["aegis.autoheal=true"]);
    run_web(&plain, &[]);
    run_web(&stopped, &["aegis.autoheal=true"]);
    run_web(&early, &["aegis.autoheal=true"]);
    for c in [&opted, &plain, &stopped, &early] {
        assert!(
            wait_until(Duration::from_secs(20), || health(c) == "running/healthy"),
            "{c}: {}",
            health(c)
        );
    }
    // One opted-in container is already unhealthy when the agent starts:
    // no event will ever say so again.
    assert!(docker(&["exec", &early, "rm", "/www/health"]).0);
    assert!(
        wait_until(Duration::from_secs(20), || health(&early)
            == "running/unhealthy"),
        "{early}: {}",
        health(&early)
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent(home.path());
    expect_heal(
        &agent,
        &early,
        0,
        "a container unhealthy before the agent started was not healed",
    );
    assert_eq!(health(&early), "running/healthy");
    assert!(
        wait_until(Duration::from_secs(10), || docker_state(&agent) == "ok"),
        "docker source: {}",
        docker_state(&agent)
    );

    // An operator stops one: it stays stopped.
    assert!(docker(&["stop", "-t", "2", &stopped]).0);
    // Both the opted-in and the plain one turn unhealthy.
    assert!(docker(&["exec", &opted, "rm", "/www/health"]).0);
    assert!(docker(&["exec", &plain, "rm", "/www/health"]).0);

    expect_heal(&agent, &opted, 0, "opted-in container not healed");
    assert_eq!(health(&opted), "running/healthy");
    let seen = records(&agent, &opted);
    assert_eq!(
        seen.iter()
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
        records(&agent, &plain).is_empty(),
        "{:?}",
        records(&agent, &plain)
    );
    assert!(
        health(&stopped).starts_with("exited"),
        "{}",
        health(&stopped)
    );
    assert!(
        records(&agent, &stopped).is_empty(),
        "{:?}",
        records(&agent, &stopped)
    );
    assert!(
        wait_until(Duration::from_secs(5), || agent.get("/metrics").1.contains(
            "aegis_heal_records_total{action=\"container_restart\",outcome=\"healed\"} 2"
        )),
        "healing not in /metrics"
    );
    assert!(agent
        .get("/metrics")
        .1
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
    agent = start_agent(home.path());
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
    assert!(wait_until(Duration::from_secs(10), || docker_state(&agent) == "ok"));

    // The engine goes away and comes back (only the private engine
    // scripts/test.sh starts may be stopped by a test).
    if !private {
        aegis_testkit::skip(&format!(
            "the private engine scripts/test.sh starts, to stop and start it (DOCKER_HOST={:?})",
            std::env::var("DOCKER_HOST").unwrap_or_default()
        ));
        return;
    }
    stop_engine();
    assert!(
        wait_until(Duration::from_secs(15), || docker_state(&agent)
            == "unavailable"),
        "the agent did not notice: {}",
        docker_state(&agent)
    );
    // Everything else keeps running.
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_string()));
    assert!(
        agent.json("/api/v1/status")["observations_total"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    start_engine();
    assert!(
        wait_until(Duration::from_secs(30), || docker_state(&agent) == "ok"),
        "no reconnection: {}",
        docker_state(&agent)
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
    expect_heal(&agent, &opted, 1, "not healed after reconnecting");
}
