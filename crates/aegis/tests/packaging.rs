//! What ships beside the binary, tested against the real tools: the
//! service manager's notifications (a real datagram socket named by
//! `NOTIFY_SOCKET`, as systemd makes it), the Prometheus alerting rules
//! (`promtool check rules` and `promtool test rules`), and the fleet
//! dashboard (valid JSON whose every query names metrics a live agent
//! exports).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aegis_testkit::need;

mod common;

use common::Agent;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every datagram that arrives within `within`, until `done` says enough.
fn receive_until(
    socket: &UnixDatagram,
    within: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&got) {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn the_agent_tells_systemd_it_is_ready_pings_the_watchdog_and_says_it_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let path_text = path.to_string_lossy().into_owned();
    // A 1 s watchdog: pings every 500 ms while the pipeline beats.
    let mut agent = Agent::start_in_env(
        dir.path(),
        &[],
        &[("NOTIFY_SOCKET", &path_text), ("WATCHDOG_USEC", "1000000")],
    );
    let got = receive_until(&socket, Duration::from_secs(20), |m| {
        m.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3
    });
    let ready = got.iter().position(|m| m.lines().any(|l| l == "READY=1"));
    let first_ping = got.iter().position(|m| m == "WATCHDOG=1");
    assert!(ready.is_some(), "no READY=1 in {got:?}");
    assert!(
        got.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3,
        "fewer than 3 watchdog pings in 20 s: {got:?}"
    );
    assert!(ready < first_ping, "a ping came before READY=1: {got:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let got = receive_until(&socket, Duration::from_secs(10), |m| {
        m.iter().any(|m| m.lines().any(|l| l == "STOPPING=1"))
    });
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {got:?}"
    );
    let status = agent
        .wait(Duration::from_secs(15))
        .expect("the agent exits");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn the_agent_pings_no_watchdog_for_another_process() {
    // WATCHDOG_PID names the process systemd watches; a child that
    // inherited the variables must not ping for it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let path_text = path.to_string_lossy().into_owned();
    let _agent = Agent::start_in_env(
        dir.path(),
        &[],
        &[
            ("NOTIFY_SOCKET", &path_text),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let got = receive_until(&socket, Duration::from_secs(3), |_| false);
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {got:?}"
    );
    assert!(
        !got.iter().any(|m| m == "WATCHDOG=1"),
        "pinged the watchdog of PID 1: {got:?}"
    );
}

#[test]
fn prometheus_rules_pass_promtool() {
    if !need(&["promtool"]) {
        return;
    }
    let dir = repo().join("packaging/prometheus");
    for args in [
        vec!["check", "rules", "aegis.rules.yml"],
        vec!["test", "rules", "aegis.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `aegis_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("aegis_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |e| start + e);
        if !preceded {
            names.push(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

#[test]
fn the_fleet_dashboard_names_only_metrics_the_agent_exports() {
    let path = repo().join("packaging/grafana/aegis-fleet.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "only {} panels", panels.len());

    // A live agent with a check, so the check families have samples too.
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    std::fs::write(
        &config,
        "[[checks]]\nname = \"closed\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\ninterval = \"1s\"\n",
    )
    .expect("config");
    let agent = Agent::start_in(
        home.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--interval",
            "1s",
        ],
    );
    let mut exported = std::collections::HashSet::new();
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            let (code, body) = agent.get("/metrics");
            exported = body
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    let name = parts.next()?;
                    // OpenMetrics names a counter's family with or without
                    // `_total`; its samples always end in it.
                    Some(match parts.next() {
                        Some("counter") if !name.ends_with("_total") => format!("{name}_total"),
                        _ => name.to_string(),
                    })
                })
                .collect();
            code == 200
                && exported.contains("aegis_host_cpu_usage_ratio")
                && exported.contains("aegis_check_up")
        }),
        "the agent's /metrics never had host and check families: {exported:?}"
    );

    let mut checked = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(
                !names.is_empty() || expr.starts_with("up{"),
                "panel {title:?}: {expr:?} names no metric of the agent"
            );
            for name in names {
                assert!(
                    exported.contains(&name),
                    "panel {title:?}: {name} is not a metric of the agent"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} metric names checked");
}

fn check_names(agent: &Agent) -> Vec<(String, String, u64)> {
    let (_, body) = agent.get("/api/v1/checks");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut names: Vec<(String, String, u64)> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["state"].as_str().unwrap_or("").to_string(),
                        c["runs"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn hangup(agent: &Agent) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
}

/// Waits for a log line whose message contains `text`.
fn logged(agent: &Agent, text: &str, within: Duration) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = agent.logs.recv_timeout(left) else {
            return None;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"].as_str().is_some_and(|m| m.contains(text)) {
            return Some(v);
        }
    }
    None
}

#[test]
fn sighup_applies_checks_rules_healing_settings_and_receivers_and_refuses_an_invalid_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    let up = std::net::TcpListener::bind("127.0.0.1:0").expect("a listening port");
    let up_addr = up.local_addr().expect("address");
    let checks = |names: &[(&str, String)]| -> String {
        names
            .iter()
            .map(|(n, a)| {
                format!("[[checks]]\nname = \"{n}\"\nkind = \"tcp\"\naddress = \"{a}\"\ninterval = \"200ms\"\n")
            })
            .collect()
    };
    let closed = format!("127.0.0.1:{}", aegis_testkit::free_port());
    std::fs::write(
        &config,
        format!(
            "[detect]\nenabled = false\n{}",
            checks(&[("keep", up_addr.to_string()), ("old", closed.clone())])
        ),
    )
    .expect("config");
    let mut agent = Agent::start_in(home.path(), &["--config", config.to_str().expect("utf-8")]);
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            let c = check_names(&agent);
            c.len() == 2 && c[0].0 == "keep" && c[0].2 >= 5
        }),
        "the first checks never ran: {:?}",
        check_names(&agent)
    );
    let keep_runs_before = check_names(&agent)[0].2;

    // A changed set: `old` goes, `new` and `trips` come, `keep` is
    // untouched; a rule that heals `trips` when it fails (rules change
    // live); dry run switched on (the guard changes live); a receiver told
    // of failing checks (receivers change live); and the host's sampling
    // interval, which only applies at the next start.
    let chat = aegis_testkit::HttpStub::start();
    std::fs::write(
        &config,
        format!(
            "[detect]\nenabled = false\n[collect]\ninterval = \"7s\"\n[heal]\ndry_run = true\n\
             [[heal.rules]]\nname = \"trips\"\non = \"check_failed\"\ncheck = \"trips\"\n\
             actions = [{{ kind = \"command\", argv = [\"true\"] }}]\n\
             [notify]\ngroup_wait = \"100ms\"\n\
             [[notify.receivers]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}\"\nevents = [\"check_failing\"]\n{}",
            chat.url("/hook"),
            checks(&[
                ("keep", up_addr.to_string()),
                ("new", up_addr.to_string()),
                ("trips", closed.clone())
            ])
        ),
    )
    .expect("config");
    hangup(&agent);
    let applied = logged(
        &agent,
        "checks, rules and healing settings applied",
        Duration::from_secs(20),
    )
    .expect("no log of the checks applied");
    assert_eq!(applied["added"], "[\"new\", \"trips\"]", "{applied}");
    assert_eq!(applied["rules_replaced"], true, "{applied}");
    assert_eq!(applied["heal_settings"], true, "{applied}");
    assert_eq!(applied["removed"], "[\"old\"]", "{applied}");
    let receivers = logged(&agent, "receivers applied", Duration::from_secs(5))
        .expect("no log of the receivers applied");
    assert_eq!(receivers["added"], "[\"chat\"]", "{receivers}");
    let later = logged(
        &agent,
        "take effect at the next start",
        Duration::from_secs(5),
    )
    .expect("no log of the sections left for a restart");
    assert_eq!(later["sections"], "[\"collect\"]", "{later}");
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            let c = check_names(&agent);
            c.len() == 3 && c[1].0 == "new" && c[1].1 == "passing"
        }),
        "the new check is not passing: {:?}",
        check_names(&agent)
    );
    // The new rule is in force, under the new dry run: the failing new
    // check is healed by it, in dry run; and the new receiver hears of it.
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            let actions = agent.get("/api/v1/actions?target=trips&limit=100").1;
            actions.contains("\"action\":\"command\"")
                && actions.contains("\"outcome\":\"dry_run\"")
        }),
        "the rule added by the reload did not heal its check in dry run: {}",
        agent.get("/api/v1/actions?limit=100").1
    );
    assert!(
        common::wait_until(Duration::from_secs(20), || chat
            .requests()
            .iter()
            .any(|r| r.body.contains("trips"))),
        "the receiver added by the reload heard nothing: {:?}",
        chat.requests()
    );
    let c = check_names(&agent);
    assert_eq!(c[0].0, "keep");
    assert!(
        c[0].2 >= keep_runs_before,
        "the unchanged check started afresh: {} runs before, {} after",
        keep_runs_before,
        c[0].2
    );

    // An invalid file: refused, the agent runs on with the checks it has.
    std::fs::write(
        &config,
        "[[checks]]\nname = \"broken\"\nkind = \"tcp\"\naddress = \"nohost:notaport\"\n",
    )
    .expect("config");
    hangup(&agent);
    let refused =
        logged(&agent, "refused", Duration::from_secs(20)).expect("no log of the refusal");
    assert!(
        refused["problems"]
            .as_str()
            .is_some_and(|p| p.contains("aegis.toml:4:11") && p.contains("checks.0.address")),
        "the refusal does not say where: {refused}"
    );
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "the agent stopped"
    );
    assert_eq!(agent.get("/healthz").0, 200);
    let runs = check_names(&agent)[1].2;
    assert!(
        common::wait_until(Duration::from_secs(20), || check_names(&agent)[1].2
            > runs + 2),
        "the running checks stopped after a refused reload: {:?}",
        check_names(&agent)
    );
    let names: Vec<String> = check_names(&agent).into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["keep", "new", "trips"]);
    drop(up);
}
