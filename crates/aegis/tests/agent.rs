//! The `aegis` binary as a user runs it: real process, real sockets on
//! loopback, real SQLite file, real signals.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;

use common::{
    aegis, calm_before_the_jump, fake_proc, free_port, http_post, wait_until, Agent, LoadWriter,
};

/// Sends a signal to the agent.
fn signal(agent: &Agent, sig: Signal) {
    kill(Pid::from_raw(agent.child.id() as i32), sig).expect("kill");
}

fn series_names(agent: &Agent) -> Vec<String> {
    agent
        .json("/api/v1/series")
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn runs_on_defaults_and_shows_live_host_figures_within_two_intervals() {
    let interval = Duration::from_secs(1);
    let agent = Agent::start(&["--interval", "1s"]);
    // Two collections give every gauge and the first rates; allow the
    // publishing tick and a slow machine some slack on top.
    let live = wait_until(2 * interval + Duration::from_millis(1500), || {
        let names = series_names(&agent);
        let metrics = agent.get("/metrics").1;
        names.iter().any(|n| n == "host_cpu_usage_ratio")
            && names.iter().any(|n| n == "host_memory_used_ratio")
            && metrics.contains("aegis_host_cpu_usage_ratio ")
    });
    assert!(live, "host figures missing: {:?}", series_names(&agent));

    let status = agent.json("/api/v1/status");
    assert_eq!(status["sources"][0]["name"], "host");
    assert_eq!(status["sources"][0]["state"], "ok");
    assert!(status["observations_total"].as_u64().unwrap_or(0) > 0);
    assert!(status["store"]["path"]
        .as_str()
        .unwrap_or("")
        .ends_with(".local/state/aegis/aegis.db"));

    let (code, metrics) = agent.get("/metrics");
    assert_eq!(code, 200);
    for needle in [
        "aegis_host_cpu_usage_ratio ",
        "aegis_host_memory_used_ratio ",
        "aegis_host_load1 ",
        "aegis_host_filesystem_used_ratio{mountpoint=\"/\"}",
        "aegis_source_up{source=\"host\"} 1",
        "aegis_observations_dropped_total{reason=\"channel_full\"} 0",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}");
    }

    let series = agent.json("/api/v1/series/host_memory_used_ratio?since=1m");
    let v = series["data"][0]["v"].as_f64().expect("a value");
    assert!((0.0..=1.0).contains(&v));
    let (code, body) = agent.get("/api/v1/series/no_such_series");
    assert_eq!(code, 404, "{body}");
    let (code, body) = agent.get("/api/v1/series/host_load1?since=yesterday");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("since"), "{body}");

    let out = aegis(&agent.home)
        .args(["status", "--url", &format!("http://{}", agent.api)])
        .output()
        .expect("aegis status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("host     ok"), "{text}");
    assert!(
        text.contains("cpu ") && text.contains("% ") && text.contains("memory "),
        "{text}"
    );
    assert!(agent.db().exists());

    let out = aegis(&agent.home)
        .args([
            "status",
            "--json",
            "--url",
            &format!("http://{}", agent.api),
        ])
        .output()
        .expect("aegis status --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json status");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn sigterm_stops_within_the_deadline_with_exit_0_and_flushes_the_store() {
    let mut agent = Agent::start(&["--interval", "200ms"]);
    assert!(wait_until(Duration::from_secs(5), || {
        agent.json("/api/v1/status")["observations_total"]
            .as_u64()
            .unwrap_or(0)
            > 50
    }));
    let sent = Instant::now();
    signal(&agent, Signal::SIGTERM);
    // The default deadline is 5s.
    let status = agent
        .wait(Duration::from_secs(5))
        .expect("agent still running 5s after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    eprintln!("stopped {:?} after SIGTERM", sent.elapsed());
    let conn = rusqlite::Connection::open(agent.db()).expect("open db");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM rollup_1m", [], |r| r.get(0))
        .expect("count");
    assert!(rows > 0, "nothing was stored");
    let logs: Vec<String> = agent.logs.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("\"stopped\"")), "{logs:?}");
}

#[test]
fn sigkill_mid_write_leaves_a_database_that_passes_integrity_check() {
    for round in 0..3u64 {
        let home = tempfile::tempdir().expect("tempdir");
        let config = home.path().join("aegis.toml");
        std::fs::write(
            &config,
            "[collect]\ninterval = \"100ms\"\n[store]\nflush_interval = \"100ms\"\nretention_interval = \"1s\"\n",
        )
        .expect("config");
        let mut agent = Agent::start(&["--config", config.to_str().expect("utf8 path")]);
        // Once it has committed, kill it at a different point of its
        // writing each round (a deliberate offset, not a wait).
        assert!(wait_until(Duration::from_secs(20), || {
            agent.json("/api/v1/status")["store"]["last_flush_ms"].is_i64()
        }));
        std::thread::sleep(Duration::from_millis(37 * round));
        signal(&agent, Signal::SIGKILL);
        agent.wait(Duration::from_secs(5)).expect("killed");
        let conn = rusqlite::Connection::open(agent.db()).expect("open db after SIGKILL");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok", "round {round}");
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM rollup_1m", [], |r| r.get(0))
            .expect("count");
        assert!(
            rows > 0,
            "round {round}: the commits before the kill were lost"
        );
    }
}

const BAD: &str = "\
[collect]
intervall = \"5s\"

[history]
max_series = \"many\"

[store]
flush_interval = \"10 parsecs\"
";

#[test]
fn check_config_names_each_problem_with_its_line_and_run_refuses_with_the_same_message() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("bad.toml");
    std::fs::write(&file, BAD).expect("write");
    let path = file.to_str().expect("utf8 path");

    let check = aegis(home.path())
        .args(["check-config", path])
        .output()
        .expect("check-config");
    assert_eq!(check.status.code(), Some(78));
    let report = String::from_utf8_lossy(&check.stderr).to_string();
    for expected in [
        format!("{path}:2:1: `collect.intervall`: unknown field `intervall`"),
        format!("{path}:5:14: `history.max_series`: invalid type: string \"many\""),
        format!("{path}:8:18: `store.flush_interval`: invalid duration \"10 parsecs\""),
    ] {
        assert!(
            report.contains(&expected),
            "missing {expected:?} in:\n{report}"
        );
    }

    let run = aegis(home.path())
        .args(["run", "--config", path])
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(78));
    let refused = String::from_utf8_lossy(&run.stderr);
    assert!(
        refused.contains(report.trim()),
        "run said:\n{refused}\ncheck-config said:\n{report}"
    );
}

#[test]
fn init_prints_a_config_that_checks_ok() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = aegis(home.path()).arg("init").output().expect("init");
    assert!(out.status.success());
    let file = home.path().join("aegis.toml");
    std::fs::write(&file, &out.stdout).expect("write");
    let check = aegis(home.path())
        .args(["check-config", file.to_str().expect("utf8")])
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_public_listen_address_without_a_token_is_refused() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = aegis(home.path())
        .args(["run", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.listen"));
}

#[test]
fn status_says_clearly_when_no_agent_answers() {
    let home = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bind, note it, close.
    let port = free_port();
    let out = aegis(home.path())
        .args(["status", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("status");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the agent"), "{err}");
}

#[test]
fn version_prints_the_version() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = aegis(home.path()).arg("version").output().expect("version");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("aegis {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_induced_anomaly_is_scored_stored_and_exported() {
    let home = tempfile::tempdir().expect("tempdir");
    let proc_dir = home.path().join("proc");
    fake_proc(&proc_dir);
    let config = home.path().join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[collect]\ninterval = \"100ms\"\nproc_root = \"{}\"\n[detect]\nwarmup = 20\nsettle = 40\n[store]\nflush_interval = \"100ms\"\n\
             [[heal.rules]]\nname = \"load\"\non = \"anomaly\"\nseries = \"host_load*\"\nactions = [{{ kind = \"command\", argv = [\"true\"] }}]\n",
            proc_dir.display()
        ),
    )
    .expect("config");
    let mut agent = Agent::start(&["--config", config.to_str().expect("utf8")]);

    // Normal load wobbling around 0.5 for a while, then a jump to 40.
    let load = LoadWriter::start(&proc_dir, 0.5, 40.0);
    calm_before_the_jump(&agent);
    load.set_high(true);

    let found = wait_until(Duration::from_secs(30), || {
        let list = agent.json("/api/v1/anomalies?status=open");
        list.as_array()
            .is_some_and(|a| a.iter().any(|r| r["series"] == "host_load1"))
    });
    drop(load);
    assert!(
        found,
        "no anomaly on host_load1: {}",
        agent.get("/api/v1/anomalies").1
    );

    // The anomaly the jump opened (a loaded test machine can add others,
    // such as a gap when a collection came late).
    let list = agent.json("/api/v1/anomalies?series=host_load1");
    let a = list
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|a| a["detail"]["value"].as_f64().unwrap_or(0.0) > 30.0)
        })
        .unwrap_or_else(|| panic!("no anomaly at the jump: {list}"));
    assert_eq!(a["kind"], "spike", "{a}");
    assert!(
        a["explanation"]
            .as_str()
            .unwrap_or("")
            .contains("above the expected"),
        "{a}"
    );
    assert!(a["detail"]["value"].as_f64().unwrap_or(0.0) > 30.0, "{a}");
    assert!(a["score"].as_f64().unwrap_or(0.0) >= 0.99999, "{a}");

    let series = agent.json("/api/v1/series/host_load1");
    assert_eq!(series["score"]["state"], "ready", "{series}");
    assert_eq!(series["score"]["open_anomaly"], a["id"], "{series}");
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains("aegis_anomaly_score{series=\"host_load1\"}"),
        "score not exported"
    );
    assert!(
        metrics.contains("aegis_anomalies_open "),
        "open count not exported"
    );
    // The anomaly started the rule's ladder: decided, then the command ran.
    assert!(
        wait_until(Duration::from_secs(10), || {
            agent.json("/api/v1/actions").as_array().is_some_and(|r| {
                r.iter().any(|r| {
                    r["action"] == "command"
                        && r["outcome"] == "succeeded"
                        && r["anomaly_id"] == a["id"]
                })
            })
        }),
        "no healing for the anomaly: {}",
        agent.get("/api/v1/actions").1
    );
    let (code, body) = agent.get("/api/v1/anomalies?status=sometimes");
    assert_eq!(code, 400, "{body}");

    // Stored in SQLite, with its explanation, and still there after a stop.
    signal(&agent, Signal::SIGTERM);
    assert!(agent
        .wait(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    let conn = rusqlite::Connection::open(agent.db()).expect("open db");
    let (series, explanation): (String, String) = conn
        .query_row(
            "SELECT series, explanation FROM anomalies WHERE series = 'host_load1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("anomaly row");
    assert_eq!(series, "host_load1");
    assert!(explanation.contains("sd above"), "{explanation}");
}

#[test]
fn state_changes_need_the_token_and_bodies_are_bounded() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    let token = "a-long-enough-test-token";
    std::fs::write(
        &config,
        format!("[api]\ntoken = \"{token}\"\n[docker]\nenabled = false\n"),
    )
    .expect("config");
    let agent = Agent::start(&["--config", config.to_str().expect("utf8")]);
    let manual = r#"{"target": "touch-test", "action": {"kind": "command", "argv": ["true"]}}"#;
    for path in [
        "/api/v1/heal/pause",
        "/api/v1/heal/resume",
        "/api/v1/actions",
    ] {
        let (code, body) = http_post(agent.api, path, None, manual);
        assert_eq!(code, 401, "{path} without a token: {body}");
        let (code, body) = http_post(agent.api, path, Some("wrong-token-of-some-length"), manual);
        assert_eq!(code, 403, "{path} with a wrong token: {body}");
        assert!(body.contains("\"error\""), "{body}");
    }
    let big = format!(
        r#"{{"target": "x", "action": {{"kind": "command", "argv": ["{}"]}}}}"#,
        "a".repeat(70_000)
    );
    let (code, body) = http_post(agent.api, "/api/v1/actions", Some(token), &big);
    assert_eq!(code, 413, "{body}");
    let (code, body) = http_post(
        agent.api,
        "/api/v1/actions",
        Some(token),
        r#"{"target": "x", "action": {"kind": "reboot"}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown variant `reboot`"), "{body}");

    let (code, body) = http_post(agent.api, "/api/v1/heal/pause", Some(token), "");
    assert_eq!(
        (code, body.contains("\"paused\":true")),
        (200, true),
        "{body}"
    );
    let (code, body) = http_post(agent.api, "/api/v1/heal/resume", Some(token), "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_post(agent.api, "/api/v1/actions", Some(token), manual);
    assert_eq!(code, 202, "{body}");
    let incident = serde_json::from_str::<serde_json::Value>(&body).expect("json")["incident"]
        .as_i64()
        .expect("incident");
    assert!(wait_until(Duration::from_secs(10), || {
        agent
            .json(&format!("/api/v1/actions?incident={incident}"))
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|r| r["outcome"] == "succeeded" && r["action"] == "command")
            })
    }));
    let breakers = agent.json("/api/v1/breakers");
    assert_eq!(breakers["paused"], false, "{breakers}");
    assert!(
        breakers["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["target"] == "command:true")),
        "{breakers}"
    );
}

#[test]
fn without_a_configured_token_nothing_can_change_state() {
    let agent = Agent::start(&["--interval", "1s"]);
    let (code, _) = http_post(agent.api, "/api/v1/heal/pause", None, "");
    assert_eq!(code, 401);
    let (code, _) = http_post(
        agent.api,
        "/api/v1/heal/pause",
        Some("anything-at-all-long"),
        "",
    );
    assert_eq!(code, 403);
}

#[test]
fn configured_endpoints_and_processes_are_watched_and_exported() {
    // A real HTTP server on loopback.
    let server = aegis_testkit::HttpStub::start();
    server.otherwise(aegis_testkit::Reply::json(&serde_json::json!({"ok": true})));
    let port = server.addr().port();
    // A command line no other process has (a run that was killed may have
    // left its sleeper behind).
    let marker = format!("3141.{}", std::process::id());
    let mut sleeper = Command::new("sleep").arg(&marker).spawn().expect("sleep");
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[docker]\nenabled = false\n[probe]\ninterval = \"200ms\"\n\
             [[probes]]\nname = \"local\"\nurl = \"http://127.0.0.1:{port}/health\"\njson_pointer = \"/ok\"\njson_equals = \"true\"\n\
             [[processes]]\nname = \"sleeper\"\ncmdline = \"sleep {marker}\"\n"
        ),
    )
    .expect("config");
    let agent = Agent::start(&[
        "--config",
        config.to_str().expect("utf8"),
        "--interval",
        "200ms",
    ]);
    // Probes and processes from before checks are checks now.
    let ok = wait_until(Duration::from_secs(10), || {
        let s = agent.json("/api/v1/status");
        let state = |name: &str| {
            s["checks"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == name))
                .map(|c| c["state"].clone())
        };
        state("local") == Some("passing".into()) && state("sleeper") == Some("passing".into())
    });
    assert!(ok, "{}", agent.get("/api/v1/status").1);
    assert!(wait_until(Duration::from_secs(5), || {
        let m = agent.get("/metrics").1;
        m.contains("aegis_endpoint_up{endpoint=\"local\"} 1")
            && m.contains("aegis_process_up{process=\"sleeper\"} 1")
    }));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(wait_until(Duration::from_secs(5), || agent
        .get("/metrics")
        .1
        .contains("aegis_process_up{process=\"sleeper\"} 0")));
}

#[test]
fn a_watched_process_is_signalled_by_pid_and_start_time_found_when_the_action_runs() {
    let marker = format!("2718.{}", std::process::id());
    let mut runaway = Command::new("sleep").arg(&marker).spawn().expect("sleep");
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    let token = "another-long-test-token";
    std::fs::write(
        &config,
        format!("[api]\ntoken = \"{token}\"\n[docker]\nenabled = false\n[[processes]]\nname = \"runaway\"\ncmdline = \"sleep {marker}\"\n"),
    )
    .expect("config");
    let agent = Agent::start(&["--config", config.to_str().expect("utf8")]);
    let body = r#"{"target": "runaway", "action": {"kind": "signal", "pid": 0, "start_time": 0, "signal": "TERM"}}"#;
    let (code, answer) = http_post(agent.api, "/api/v1/actions", Some(token), body);
    assert_eq!(code, 202, "{answer}");
    let mut status = None;
    let signalled = wait_until(Duration::from_secs(10), || {
        status = runaway.try_wait().expect("try_wait");
        status.is_some()
    });
    assert!(
        signalled,
        "not signalled: {}",
        agent.get("/api/v1/actions").1
    );
    let status = status.expect("exited");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));
    // Records are committed within a tenth of a second.
    let recorded = wait_until(Duration::from_secs(5), || {
        agent
            .json("/api/v1/actions?target=runaway")
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|r| r["action"] == "signal" && r["outcome"] == "succeeded")
            })
    });
    assert!(
        recorded,
        "{}",
        agent.get("/api/v1/actions?target=runaway").1
    );
}

#[test]
fn a_restart_of_the_agent_does_not_reset_the_rate_limit() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("aegis.toml");
    let token = "a-long-enough-test-token";
    std::fs::write(
        &config,
        format!(
            "[api]\ntoken = \"{token}\"\n[docker]\nenabled = false\n[heal]\ncooldown = \"1s\"\nrate_max = 1\nrate_window = \"1h\"\n"
        ),
    )
    .expect("config");
    let args = ["--config", config.to_str().expect("utf8")];
    let manual = r#"{"target": "once-an-hour", "action": {"kind": "command", "argv": ["true"]}}"#;
    // The outcome of the manual action's attempt, once it has one.
    let outcome = |agent: &Agent| -> String {
        let (code, body) = http_post(agent.api, "/api/v1/actions", Some(token), manual);
        assert_eq!(code, 202, "{body}");
        let incident = serde_json::from_str::<serde_json::Value>(&body).expect("json")["incident"]
            .as_i64()
            .expect("incident");
        let mut found = String::new();
        assert!(wait_until(Duration::from_secs(10), || {
            let records = agent.json(&format!("/api/v1/actions?incident={incident}"));
            found = records
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|r| r["action"] == "command" && r["outcome"] != "healed")
                        .map(|r| {
                            format!(
                                "{}:{}",
                                r["outcome"].as_str().unwrap_or(""),
                                r["reason"].as_str().unwrap_or("")
                            )
                        })
                })
                .unwrap_or_default();
            !found.is_empty()
        }));
        found
    };

    let agent = Agent::start_in(home.path(), &args);
    assert!(outcome(&agent).starts_with("succeeded:"));
    // Past the cooldown (which a restart does not reset either), so that
    // what stops the next attempt is the rate limit.
    assert!(wait_until(Duration::from_secs(10), || {
        agent.json("/api/v1/breakers")["targets"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["target"] == "command:true"))
            .and_then(|t| t["last_action_ago_s"].as_u64())
            .is_some_and(|s| s >= 2)
    }));
    drop(agent);

    // A new run of the agent on the same state: the hour's one action is
    // spent, whoever took it.
    let agent = Agent::start_in(home.path(), &args);
    assert_eq!(outcome(&agent), "skipped:rate_limited");
    let breakers = agent.json("/api/v1/breakers");
    let target = breakers["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == "command:true"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(target["recent_actions"], 1, "{breakers}");
}
