//! A fleet, the way fleets are watched: three agents, each on a host of its
//! own (a network namespace this test makes, joined to this machine by a
//! veth pair), each listening on its own address with a token; one real
//! Prometheus scraping all three through file-based service discovery and
//! evaluating the shipped rules (`packaging/prometheus/aegis.rules.yml`);
//! one real Alertmanager receiving what fires. The test reads `up` and a
//! host metric for every instance, makes one agent give up a heal, and
//! finds the alert in Alertmanager with that instance's label. Namespaces
//! and processes go at the end, whatever the outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aegis_testkit::{http_get, http_request, need, need_root, within, ChildGuard};

mod common;

use common::BIN;

const TOKEN: &str = "fleet-test-token-0123456789";
const HOSTS: usize = 3;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces made by this test, removed (with their veth pairs) when
/// it ends.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// One simulated host: its namespace and the agent's address in it.
struct Host {
    ns: String,
    agent: String,
}

fn make_hosts(nss: &mut Namespaces) -> Vec<Host> {
    let tag = std::process::id() % 10_000;
    let mut hosts = Vec::new();
    for i in 0..HOSTS {
        let ns = format!("aegis-fleet-{tag}-{i}");
        let outside = format!("aef{tag}h{i}");
        let inside = format!("aef{tag}n{i}");
        // A link-local /30 per host, which no real network here uses.
        let (host_ip, agent_ip) = (
            format!("169.254.{}.1", 200 + i),
            format!("169.254.{}.2", 200 + i),
        );
        // Leftovers of a run that was killed.
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &outside]);
        ip(&["netns", "add", &ns]).expect("ip netns add");
        nss.0.push(ns.clone());
        for step in [
            vec![
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
            vec!["link", "set", &inside, "netns", &ns],
            vec!["addr", "add", &format!("{host_ip}/30"), "dev", &outside],
            vec!["link", "set", &outside, "up"],
            vec![
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{agent_ip}/30"),
                "dev",
                &inside,
            ],
            vec!["-n", &ns, "link", "set", &inside, "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
        ] {
            ip(&step).expect("setting up a host");
        }
        hosts.push(Host {
            ns,
            agent: format!("{agent_ip}:9477"),
        });
    }
    hosts
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn get(addr: &str, path: &str) -> String {
    addr.parse()
        .map(|a| http_get(a, path).1)
        .unwrap_or_default()
}

fn query(prom: &str, q: &str) -> serde_json::Value {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    serde_json::from_str(&get(prom, &format!("/api/v1/query?query={encoded}"))).unwrap_or_default()
}

/// The instances a query's result has a sample for.
fn instances(result: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = result["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

#[test]
fn three_agents_in_their_own_namespaces_are_scraped_and_a_give_up_reaches_alertmanager() {
    if !need_root("network namespaces") || !need(&["ip", "prometheus", "prometheus-alertmanager"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut nss = Namespaces(Vec::new());
    let hosts = make_hosts(&mut nss);

    // The agents, one per namespace.
    let mut agents: Vec<ChildGuard> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let config = dir.join(format!("agent{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[agent]\nstate_dir = \"{}\"\n[collect]\ninterval = \"1s\"\n[docker]\nenabled = false\n\
                 [heal]\nretries = 0\n[api]\nlisten = \"{}\"\ntoken = \"{TOKEN}\"\n",
                dir.join(format!("state{i}")).display(),
                h.agent
            ),
        )
        .expect("agent config");
        agents.push(
            ChildGuard::spawn(
                Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &h.ns,
                        BIN,
                        "run",
                        "--log-format",
                        "json",
                        "--config",
                    ])
                    .arg(&config)
                    .stdout(Stdio::null())
                    .stderr(
                        std::fs::File::create(dir.join(format!("agent{i}.log")))
                            .map(Stdio::from)
                            .unwrap_or_else(|_| Stdio::null()),
                    ),
            )
            .expect("start an agent in its namespace"),
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        assert!(
            within(Duration::from_secs(30), || get(&h.agent, "/healthz")
                .contains("ok")),
            "agent {i} at {} did not answer from its namespace: {}",
            h.agent,
            std::fs::read_to_string(dir.join(format!("agent{i}.log"))).unwrap_or_default()
        );
    }

    // Alertmanager, holding what Prometheus sends.
    let (_am, am) = common::alertmanager(
        dir,
        "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
    );

    // Prometheus: the agents from a file (file-based service discovery),
    // the shipped rules, alerts to Alertmanager.
    let targets: Vec<String> = hosts.iter().map(|h| format!("'{}'", h.agent)).collect();
    std::fs::write(
        dir.join("targets.yml"),
        format!(
            "- targets: [{}]\n  labels:\n    fleet: test\n",
            targets.join(", ")
        ),
    )
    .expect("targets.yml");
    std::fs::copy(
        repo().join("packaging/prometheus/aegis.rules.yml"),
        dir.join("aegis.rules.yml"),
    )
    .expect("the shipped rules");
    let (_prom, prom) = common::prometheus(
        dir,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{rules}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n\
             scrape_configs:\n  - job_name: aegis\n    file_sd_configs:\n      - files: ['{targets}']\n        refresh_interval: 1s\n",
            rules = dir.join("aegis.rules.yml").display(),
            targets = dir.join("targets.yml").display(),
        ),
    );

    // Every instance is up and has host figures.
    let mut expected: Vec<String> = hosts.iter().map(|h| h.agent.clone()).collect();
    expected.sort();
    for q in [
        "up{job=\"aegis\"} == 1",
        "aegis_host_cpu_usage_ratio",
        "aegis_host_memory_used_ratio",
    ] {
        assert!(
            within(Duration::from_secs(60), || instances(&query(&prom, q))
                == expected),
            "{q}: instances {:?}, expected {expected:?}",
            instances(&query(&prom, q))
        );
    }

    // One agent gives up a heal: a manual command that fails, no retries,
    // nothing to escalate to.
    let doomed = &hosts[1];
    let addr = doomed.agent.parse().expect("address");
    let (code, body) = http_request(
        addr,
        "POST",
        "/api/v1/actions",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        r#"{"target": "doomed", "action": {"kind": "command", "argv": ["/bin/false"]}}"#,
    );
    assert_eq!(code, 202, "manual action: {body}");
    assert!(
        within(Duration::from_secs(30), || get(
            &doomed.agent,
            "/api/v1/actions?target=doomed"
        )
        .contains("gave_up")),
        "the agent did not give up: {}",
        get(&doomed.agent, "/api/v1/actions?target=doomed")
    );

    // The alert reaches Alertmanager, about that instance only.
    let gave_up_alerts = || -> Vec<serde_json::Value> {
        serde_json::from_str::<Vec<serde_json::Value>>(&get(&am, "/api/v2/alerts"))
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "AegisHealGaveUp")
            .collect()
    };
    assert!(
        within(Duration::from_secs(60), || !gave_up_alerts().is_empty()),
        "no AegisHealGaveUp in Alertmanager; Prometheus sees {}",
        query(&prom, "aegis_heal_records_total")
    );
    let alerts = gave_up_alerts();
    assert!(
        alerts
            .iter()
            .all(|a| a["labels"]["instance"] == doomed.agent.as_str()),
        "alerts for other instances: {alerts:?}"
    );
    assert_eq!(alerts[0]["labels"]["severity"], "critical", "{alerts:?}");
    drop(agents);
}
