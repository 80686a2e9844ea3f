//! Healing on Podman (Debian's, through its Docker-compatible API service
//! that the test starts): an opted-in container that dies is restarted;
//! Podman without systemd never runs health checks, so the agent runs each
//! opted-in container's own check, finds it unhealthy, restarts it and
//! verifies it healthy, and its status says that it does so.

use std::time::Duration;

mod common;

use aegis_testkit::docker::Web;
use aegis_testkit::podman::{Podman, IMAGE, RUN_OPTIONS};
use common::{wait_until, Agent};

fn records(agent: &Agent, target: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = agent
        .json(&format!("/api/v1/actions?target={target}&limit=1000"))
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["action"].as_str().unwrap_or("").to_string(),
                        r["outcome"].as_str().unwrap_or("").to_string(),
                        r["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.reverse();
    out
}

fn docker_source(agent: &Agent) -> serde_json::Value {
    agent.json("/api/v1/status")["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "docker").cloned())
        .unwrap_or_default()
}

fn expect_healed(agent: &Agent, name: &str, what: &str) {
    let healed = wait_until(Duration::from_secs(60), || {
        records(agent, name)
            .iter()
            .any(|(a, o, _)| a == "container_restart" && o == "healed")
    });
    assert!(
        healed,
        "{what}: {:#?}\nthe agent's log:\n{}",
        records(agent, name),
        agent.recent_logs(60)
    );
}

#[test]
fn podman_containers_are_healed_and_their_checks_run_by_the_agent() {
    if !aegis_testkit::need::need(&["podman", "runc", "busybox", "tar"])
        || !aegis_testkit::need::need_root("a rootful Podman")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let podman = Podman::start(dir.path());
    let tag = std::process::id();
    let (dies, sick) = (
        format!("aegis-pm-dies-{tag}"),
        format!("aegis-pm-sick-{tag}"),
    );
    for name in [&dies, &sick] {
        let args = Web::new(name)
            .labels(&["aegis.autoheal=true"])
            .image(IMAGE)
            .run_args(RUN_OPTIONS);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = podman.run(&args);
        assert!(ok, "podman run {name}: {out}");
    }
    // No systemd: Podman itself never runs the checks.
    assert_eq!(podman.health(&sick), "running/starting");

    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[docker]\ninterval = \"1s\"\nhost = \"{}\"\n\
             [heal]\ncooldown = \"1s\"\nverify_window = \"30s\"\nrate_max = 10\n\
             [detect]\nenabled = false\n",
            podman.address()
        ),
    )
    .expect("config");
    let agent = Agent::start_in(
        home.path(),
        &["--config", config.to_str().expect("utf8 path")],
    );

    // The agent finds Podman, notices nobody runs the checks, and runs
    // them: both turn healthy, and the status says why.
    let mut source = serde_json::Value::Null;
    let said = wait_until(Duration::from_secs(40), || {
        source = docker_source(&agent);
        let detail = source["detail"].as_str().unwrap_or("");
        source["state"] == "ok"
            && detail.contains("Podman")
            && detail.contains(&sick)
            && detail.contains(&dies)
    });
    assert!(
        said,
        "the status does not say the agent runs the checks: {source}\n{}",
        agent.recent_logs(40)
    );
    for name in [&dies, &sick] {
        assert!(
            wait_until(Duration::from_secs(30), || podman.health(name)
                == "running/healthy"),
            "{name}: {}",
            podman.health(name)
        );
    }

    // One dies: restarted.
    assert!(podman.run(&["exec", &dies, "touch", "/die"]).0);
    expect_healed(&agent, &dies, "a container that died was not restarted");
    assert!(podman.health(&dies).starts_with("running/"));

    // One's check starts failing: the agent's own run finds it unhealthy,
    // and it is restarted and verified healthy.
    assert!(podman.run(&["exec", &sick, "rm", "/www/health"]).0);
    expect_healed(&agent, &sick, "an unhealthy container was not healed");
    assert_eq!(podman.health(&sick), "running/healthy");
    let seen = records(&agent, &sick);
    assert!(
        seen.first()
            .is_some_and(|(_, o, why)| o == "decided" && why.contains("unhealthy")),
        "{seen:#?}"
    );
}
