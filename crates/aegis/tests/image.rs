//! The agent as a container, the way autoheal's users run their healer:
//! the image `scripts/build-image.sh` makes (no registry), on the private
//! engine, with the engine's socket mounted and the host's `/proc` mounted
//! read-only for the host source (`collect.proc_root = "/host/proc"`). The
//! containerised agent heals a sibling container that turned unhealthy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aegis_testkit::docker::{docker, health, run_web, Containers};
use aegis_testkit::{free_port, http_get, need_docker, wait_until};

mod common;

use common::BIN;

const TAG: &str = "aegis-test/agent:test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The engine's socket path on this machine, from DOCKER_HOST.
fn socket_path() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

fn started_at(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.StartedAt}}", name]).1
}

#[test]
fn the_agent_in_its_image_heals_a_sibling_container() {
    if !need_docker() {
        return;
    }
    let out = Command::new(repo().join("scripts/build-image.sh"))
        .args([BIN, TAG])
        .output()
        .expect("scripts/build-image.sh");
    assert!(
        out.status.success(),
        "build-image.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let id = std::process::id();
    let web = format!("aegis-image-web-{id}");
    let agent = format!("aegis-image-agent-{id}");
    let mut cleanup = Containers::default();
    cleanup.add(&web);
    cleanup.add(&agent);
    run_web(&web, &["aegis.autoheal=true"]);
    wait_until(Duration::from_secs(60), "the sibling is healthy", || {
        health(&web) == "running/healthy"
    });

    // The agent's configuration, mounted where root's agent looks for it.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[collect]\ninterval = \"1s\"\nproc_root = \"/host/proc\"\n\
             [docker]\ninterval = \"1s\"\n\
             [heal]\ncooldown = \"1s\"\n\
             [detect]\nenabled = false\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .expect("config");
    let socket = socket_path();
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &agent,
        // The host's network (the API on loopback, where this test reads
        // it); the private engine makes no bridge.
        "--network",
        "host",
        "-v",
        &format!("{socket}:/var/run/docker.sock"),
        "-e",
        "DOCKER_HOST=unix:///var/run/docker.sock",
        "-v",
        "/proc:/host/proc:ro",
        "-v",
        &format!("{}:/etc/aegis/aegis.toml:ro", config.display()),
        TAG,
    ]);
    assert!(ok, "docker run the agent: {out}");
    let api: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let status = || -> serde_json::Value {
        serde_json::from_str(&http_get(api, "/api/v1/status").1).unwrap_or_default()
    };
    let logs = || docker(&["logs", "--tail", "30", &agent]).1;
    // "degraded" is fine for the host: some host files may be closed to
    // a container; what matters is that it reads the host's /proc.
    let source_ok = |s: &serde_json::Value, name: &str| {
        matches!(
            s["sources"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == name))
                .and_then(|x| x["state"].as_str()),
            Some("ok" | "degraded")
        )
    };
    let ready = aegis_testkit::within(Duration::from_secs(60), || {
        let s = status();
        source_ok(&s, "host") && source_ok(&s, "docker")
    });
    assert!(
        ready,
        "the containerised agent's host and docker sources never both worked: {}\n{}",
        status(),
        logs()
    );
    // Root's agent found its configuration and state directory unasked.
    let s = status();
    assert_eq!(
        s["store"]["path"].as_str(),
        Some("/var/lib/aegis/aegis.db"),
        "root's agent keeps its state in /var/lib/aegis: {s}"
    );

    let before = started_at(&web);
    let (ok, out) = docker(&["exec", &web, "rm", "/www/health"]);
    assert!(ok, "breaking the sibling: {out}");
    let healed = aegis_testkit::within(Duration::from_secs(60), || {
        started_at(&web) != before && health(&web) == "running/healthy"
    });
    let actions = http_get(api, &format!("/api/v1/actions?target={web}")).1;
    assert!(
        healed,
        "the sibling was not restarted healthy: {}; actions {actions}\n{}",
        health(&web),
        logs()
    );
    assert!(
        actions.contains("container_restart"),
        "no restart recorded by the containerised agent: {actions}"
    );
}
