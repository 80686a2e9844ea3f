//! What an operator means, on a real Docker engine: the containers that
//! depend on a healed one are restarted after it (Compose's `depends_on`,
//! a shared network namespace), a container whose dependency fails is
//! blocked rather than healed; labels set how long a container may be
//! unhealthy, opt it out or ask for a stop, and a bad value is reported
//! and ignored; a container Docker restarts itself is left to Docker.
//!
//! Each test's agent opts containers in with its own label
//! (`docker.autoheal_label`), so that the tests, run side by side, leave
//! each other's containers alone.
//!
//! Needs the engine and image that `scripts/test.sh` sets up.

use std::time::Duration;

mod common;

use aegis_testkit::docker::{docker, health, Containers, Web};
use common::{wait_until, Agent};

/// One healing record, as `/api/v1/actions` gives it.
#[derive(Debug, Clone)]
struct Rec {
    at_ms: i64,
    incident: i64,
    action: String,
    outcome: String,
    reason: String,
}

impl Rec {
    fn is(&self, action: &str, outcome: &str) -> bool {
        self.action == action && self.outcome == outcome
    }
}

fn start_agent(home: &std::path::Path, label: &str, more: &str) -> Agent {
    let config = home.join("aegis.toml");
    std::fs::write(
        &config,
        format!(
            "[docker]\ninterval = \"1s\"\nautoheal_label = \"{label}\"\n\
             [heal]\ncooldown = \"1s\"\nverify_window = \"15s\"\nrate_max = 30\n\
             [detect]\nenabled = false\n{more}"
        ),
    )
    .expect("config");
    let agent = Agent::start_in(home, &["--config", config.to_str().expect("utf8 path")]);
    assert!(
        wait_until(Duration::from_secs(20), || docker_ok(&agent)),
        "the docker source did not come up:\n{}",
        agent.recent_logs(30)
    );
    agent
}

fn docker_ok(agent: &Agent) -> bool {
    agent.json("/api/v1/status")["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "docker"))
        .is_some_and(|s| s["state"] == "ok")
}

/// The records about `target`, oldest first.
fn records(agent: &Agent, target: &str) -> Vec<Rec> {
    let mut out: Vec<Rec> = agent
        .json(&format!("/api/v1/actions?target={target}&limit=1000"))
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| Rec {
                    at_ms: r["at_ms"].as_i64().unwrap_or(0),
                    incident: r["incident"].as_i64().unwrap_or(0),
                    action: r["action"].as_str().unwrap_or("").to_string(),
                    outcome: r["outcome"].as_str().unwrap_or("").to_string(),
                    reason: r["reason"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    out.reverse();
    out
}

/// Waits for the first record about `target` that `pred` accepts, after
/// the first `skip` records; fails with `what`, the records and the log.
fn wait_record(
    agent: &Agent,
    target: &str,
    skip: usize,
    within: Duration,
    what: &str,
    pred: impl Fn(&Rec) -> bool,
) -> Rec {
    let mut found = None;
    wait_until(within, || {
        found = records(agent, target).into_iter().skip(skip).find(&pred);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!(
            "{what}: {target}: {:#?}\nthe agent's log:\n{}",
            records(agent, target),
            agent.recent_logs(60)
        )
    })
}

fn exec(name: &str, script: &str) {
    let (ok, out) = docker(&["exec", name, "sh", "-c", script]);
    assert!(ok, "docker exec {name} {script}: {out}");
}

fn wait_health(name: &str, want: &str, within: Duration) {
    assert!(
        wait_until(within, || health(name) == want),
        "{name}: {} (waited for {want})",
        health(name)
    );
}

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name]).1
}

fn restarts(agent: &Agent, name: &str) -> usize {
    records(agent, name)
        .iter()
        .filter(|r| r.action.starts_with("container_") && r.outcome == "succeeded")
        .count()
}

#[test]
fn dependents_are_restarted_after_what_they_depend_on_and_blocked_while_it_fails() {
    if !aegis_testkit::need::need_docker() {
        return;
    }
    let tag = std::process::id();
    let label = format!("dep{tag}.autoheal");
    let opt_in = format!("{label}=true");
    let project = format!("com.docker.compose.project=aegis{tag}");
    let (db, web, vpn, client) = (
        format!("aegis-db-{tag}"),
        format!("aegis-web-{tag}"),
        format!("aegis-vpn-{tag}"),
        format!("aegis-client-{tag}"),
    );
    let _cleanup = Containers(vec![client.clone(), web.clone(), db.clone(), vpn.clone()]);
    Web::new(&db)
        .labels(&[&opt_in, &project, "com.docker.compose.service=db"])
        .run();
    Web::new(&web)
        .labels(&[
            &opt_in,
            &project,
            "com.docker.compose.service=web",
            "com.docker.compose.depends_on=db:service_healthy:true",
        ])
        .run();
    Web::new(&vpn).labels(&[&opt_in]).run();
    // What `network_mode: service:vpn` becomes; not opted in itself.
    Web::new(&client)
        .network(&format!("container:{vpn}"))
        .port(8081)
        .run();
    for c in [&db, &web, &vpn, &client] {
        wait_health(c, "running/healthy", Duration::from_secs(30));
    }
    let home = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(home.path(), &label, "");

    // db turns unhealthy: db is restarted, then web once db is healthy.
    exec(&db, "rm /www/health");
    let db_healed = wait_record(
        &agent,
        &db,
        0,
        Duration::from_secs(60),
        "db was not healed",
        |r| r.is("container_restart", "healed"),
    );
    let web_restart = wait_record(
        &agent,
        &web,
        0,
        Duration::from_secs(60),
        "web was not restarted after db",
        |r| r.is("container_restart", "succeeded"),
    );
    assert!(
        web_restart.at_ms >= db_healed.at_ms,
        "web restarted before db was healthy: {web_restart:?} {db_healed:?}"
    );
    let web_decided = records(&agent, &web)
        .into_iter()
        .find(|r| r.outcome == "decided")
        .expect("web's decision");
    assert!(
        web_decided.reason.contains(&db) && web_decided.at_ms >= db_healed.at_ms,
        "the decision should follow db's heal and name it: {web_decided:?} {db_healed:?}"
    );
    wait_record(
        &agent,
        &web,
        0,
        Duration::from_secs(60),
        "web's restart was not verified",
        |r| r.is("container_restart", "healed"),
    );
    wait_health(&web, "running/healthy", Duration::from_secs(30));
    assert!(
        records(&agent, &vpn).is_empty() && records(&agent, &client).is_empty(),
        "nothing else is touched"
    );

    // db fails for good (it stays unhealthy across restarts), then web
    // turns unhealthy too: web is blocked, not healed.
    let web_before = records(&agent, &web).len();
    let web_restarts = restarts(&agent, &web);
    let db_before = records(&agent, &db).len();
    exec(&db, "touch /sick");
    wait_health(&db, "running/unhealthy", Duration::from_secs(30));
    wait_record(
        &agent,
        &db,
        db_before,
        Duration::from_secs(30),
        "db's second fault was not taken up",
        |r| r.outcome == "decided",
    );
    exec(&web, "rm /www/health");
    let blocked = wait_record(
        &agent,
        &web,
        web_before,
        Duration::from_secs(30),
        "web was not reported blocked",
        |r| r.outcome == "skipped" && r.reason.contains("blocked"),
    );
    assert!(blocked.reason.contains(&db), "{blocked:?}");
    // db's restart does not help; web is still left alone.
    wait_record(
        &agent,
        &db,
        db_before,
        Duration::from_secs(60),
        "db's restart was not found wanting",
        |r| r.outcome == "not_healed",
    );
    assert_eq!(
        restarts(&agent, &web),
        web_restarts,
        "web was acted on while db failed: {:#?}",
        records(&agent, &web)
    );
    assert_eq!(health(&web), "running/unhealthy");

    // db recovers: web is healed after it.
    let fixed_at = now_ms();
    exec(&db, "rm -f /sick");
    wait_health(&db, "running/healthy", Duration::from_secs(60));
    let web_healed = wait_record(
        &agent,
        &web,
        web_before,
        Duration::from_secs(60),
        "web was not healed once db was",
        |r| r.is("container_restart", "healed"),
    );
    assert!(web_healed.at_ms >= fixed_at, "{web_healed:?}");
    wait_health(&web, "running/healthy", Duration::from_secs(30));

    // vpn turns unhealthy: vpn is restarted, then the container that
    // shares its network.
    let vpn_healed = {
        exec(&vpn, "rm /www/health");
        wait_record(
            &agent,
            &vpn,
            0,
            Duration::from_secs(60),
            "vpn was not healed",
            |r| r.is("container_restart", "healed"),
        )
    };
    let client_restart = wait_record(
        &agent,
        &client,
        0,
        Duration::from_secs(60),
        "the container in vpn's network was not restarted",
        |r| r.is("container_restart", "succeeded"),
    );
    assert!(client_restart.at_ms >= vpn_healed.at_ms);
    let client_decided = records(&agent, &client)
        .into_iter()
        .find(|r| r.outcome == "decided")
        .expect("the decision");
    assert!(client_decided.reason.contains(&vpn), "{client_decided:?}");
    wait_record(
        &agent,
        &client,
        0,
        Duration::from_secs(60),
        "the restart of the container in vpn's network was not verified",
        |r| r.is("container_restart", "healed"),
    );
    assert_eq!(
        inspect(&client, "{{.State.Status}}"),
        "running",
        "{}",
        agent.recent_logs(40)
    );
}

#[test]
fn labels_set_the_wait_the_opt_out_and_the_action_and_bad_ones_are_ignored() {
    if !aegis_testkit::need::need_docker() {
        return;
    }
    let tag = std::process::id();
    let label = format!("lbl{tag}.autoheal");
    let name = |what: &str| format!("aegis-lbl-{tag}-{what}");
    let (slow, out, stopper, bad) = (name("slow"), name("out"), name("stop"), name("bad"));
    let _cleanup = Containers(vec![
        slow.clone(),
        out.clone(),
        stopper.clone(),
        bad.clone(),
    ]);
    Web::new(&slow)
        .labels(&[&format!("{label}.unhealthy_for=8s")])
        .run();
    Web::new(&out).labels(&[&format!("{label}=false")]).run();
    Web::new(&stopper)
        .labels(&[&format!("{label}.action=stop")])
        .run();
    Web::new(&bad)
        .labels(&[&format!("{label}.unhealthy_for=soon")])
        .run();
    for c in [&slow, &out, &stopper, &bad] {
        wait_health(c, "running/healthy", Duration::from_secs(30));
    }
    // One rule for every container of this test: labels tune it, and
    // opt one out of it.
    let rule = format!(
        "[[heal.rules]]\nname = \"this test's containers\"\non = \"container_unhealthy\"\n\
         container = \"aegis-lbl-{tag}-*\"\nactions = [{{ kind = \"container\", op = \"restart\" }}]\n"
    );
    let home = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(home.path(), &label, &rule);

    // The bad value is reported, in the status and the log.
    let mut status = serde_json::Value::Null;
    let reported = wait_until(Duration::from_secs(20), || {
        status = agent.json("/api/v1/status");
        status.to_string().contains("soon")
    });
    assert!(reported, "the bad label is not in the status: {status}");
    let problems = status.to_string();
    assert!(
        problems.contains(&bad) && problems.contains(&format!("{label}.unhealthy_for")),
        "{problems}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || agent
            .recent_logs(200)
            .contains("a container label cannot be used")),
        "{}",
        agent.recent_logs(60)
    );

    // A blip shorter than unhealthy_for is not healed.
    exec(&slow, "rm /www/health");
    wait_health(&slow, "running/unhealthy", Duration::from_secs(30));
    wait_record(
        &agent,
        &slow,
        0,
        Duration::from_secs(20),
        "the unhealthy container was not taken up",
        |r| r.outcome == "decided",
    );
    exec(&slow, "echo ok > /www/health");
    let let_go = wait_record(
        &agent,
        &slow,
        0,
        Duration::from_secs(30),
        "the blip was not recorded as over",
        |r| r.outcome == "skipped" && r.reason.contains("healthy again"),
    );
    assert_eq!(
        restarts(&agent, &slow),
        0,
        "a blip was healed: {:#?}",
        records(&agent, &slow)
    );

    // A longer one is, after unhealthy_for; the others turn unhealthy at
    // the same time.
    let before = records(&agent, &slow).len();
    for c in [&slow, &out, &stopper, &bad] {
        exec(c, "rm /www/health");
    }
    let decided = wait_record(
        &agent,
        &slow,
        before,
        Duration::from_secs(30),
        "the second fault was not taken up",
        |r| r.outcome == "decided",
    );
    assert_ne!(decided.incident, let_go.incident);
    let healed = wait_record(
        &agent,
        &slow,
        before,
        Duration::from_secs(60),
        "a long fault was not healed",
        |r| r.is("container_restart", "healed"),
    );
    let acted = records(&agent, &slow)
        .into_iter()
        .skip(before)
        .find(|r| r.is("container_restart", "succeeded"))
        .expect("the restart's record");
    assert!(
        acted.at_ms - decided.at_ms >= 7_500,
        "acted {} ms after the fault, before unhealthy_for: {acted:?}",
        acted.at_ms - decided.at_ms
    );
    assert!(healed.at_ms >= acted.at_ms);

    // action = stop: stopped, and that is the heal.
    wait_record(
        &agent,
        &stopper,
        0,
        Duration::from_secs(30),
        "the container was not stopped as its label asks",
        |r| r.is("container_stop", "healed"),
    );
    assert!(
        inspect(&stopper, "{{.State.Status}}") == "exited",
        "{}",
        health(&stopper)
    );
    assert!(records(&agent, &stopper)
        .iter()
        .all(|r| r.action != "container_restart"));

    // The bad label is ignored, not guessed: healed at once.
    let bad_healed = wait_record(
        &agent,
        &bad,
        0,
        Duration::from_secs(30),
        "the container with a bad label was not healed",
        |r| r.is("container_restart", "healed"),
    );
    let bad_decided = records(&agent, &bad)
        .into_iter()
        .find(|r| r.outcome == "decided")
        .expect("decided");
    assert!(
        bad_healed.at_ms - bad_decided.at_ms < 7_500,
        "{bad_decided:?} {bad_healed:?}"
    );

    // Opted out: never touched although the rule matches it.
    assert_eq!(health(&out), "running/unhealthy");
    assert!(
        records(&agent, &out).is_empty(),
        "{:#?}",
        records(&agent, &out)
    );
}

#[test]
fn a_container_docker_restarts_itself_is_left_to_docker() {
    if !aegis_testkit::need::need_docker() {
        return;
    }
    let tag = std::process::id();
    let label = format!("rp{tag}.autoheal");
    let opt_in = format!("{label}=true");
    let (always, once) = (format!("aegis-always-{tag}"), format!("aegis-once-{tag}"));
    let _cleanup = Containers(vec![always.clone(), once.clone()]);
    Web::new(&always).labels(&[&opt_in]).restart("always").run();
    Web::new(&once)
        .labels(&[&opt_in])
        .restart("on-failure:1")
        .run();
    for c in [&always, &once] {
        wait_health(c, "running/healthy", Duration::from_secs(30));
    }
    let home = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(home.path(), &label, "");

    // `always`: it dies, Docker restarts it once, the agent records why
    // it did nothing.
    exec(&always, "touch /die");
    let left = wait_record(
        &agent,
        &always,
        0,
        Duration::from_secs(30),
        "the death was not recorded",
        |r| r.outcome == "skipped",
    );
    assert!(
        left.reason.contains("left to the container engine") && left.reason.contains("always"),
        "{left:?}"
    );
    wait_health(&always, "running/healthy", Duration::from_secs(30));
    assert_eq!(inspect(&always, "{{.RestartCount}}"), "1");
    assert_eq!(
        restarts(&agent, &always),
        0,
        "{:#?}",
        records(&agent, &always)
    );

    // `on-failure:1`: the first death is Docker's to handle; once its
    // retry is used up, the agent restarts it.
    exec(&once, "touch /die");
    let first = wait_record(
        &agent,
        &once,
        0,
        Duration::from_secs(30),
        "the first death was not recorded",
        |r| r.outcome == "skipped",
    );
    assert!(first.reason.contains("on-failure:1"), "{first:?}");
    wait_health(&once, "running/healthy", Duration::from_secs(30));
    assert_eq!(inspect(&once, "{{.RestartCount}}"), "1");
    exec(&once, "touch /die");
    wait_record(
        &agent,
        &once,
        0,
        Duration::from_secs(40),
        "a death Docker no longer handles was not healed",
        |r| r.is("container_restart", "healed"),
    );
    wait_health(&once, "running/healthy", Duration::from_secs(30));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
