//! Checks as the first trigger of healing, end to end with the real agent:
//! an endpoint already down when the agent starts and one killed after
//! running healthily are both healed within `failure_threshold x interval`
//! plus a second, each heal verified by the check passing again, and shown
//! by `aegis checks`, `/api/v1/checks` and `/metrics`; a dependency that
//! fails blocks its dependents (never healed, never announced) and a slow
//! starter is left alone in its start period.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use aegis_testkit::{free_port, HttpStub, Reply};
use common::{wait_until, Agent, BIN};

/// Plays the operator's service: when the agent's heal command touches
/// `marker`, the service (re)starts: `start` runs, the marker goes.
struct Restarter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    heals: Arc<Mutex<Vec<Instant>>>,
}

impl Restarter {
    fn watch(marker: PathBuf, start: impl Fn() + Send + 'static) -> Restarter {
        let stop = Arc::new(AtomicBool::new(false));
        let heals = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&stop), Arc::clone(&heals));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if marker.exists() {
                    h.lock().expect("lock").push(Instant::now());
                    let _ = std::fs::remove_file(&marker);
                    start();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Restarter {
            stop,
            thread: Some(thread),
            heals,
        }
    }

    fn heals(&self) -> Vec<Instant> {
        self.heals.lock().expect("lock").clone()
    }
}

impl Drop for Restarter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_agent(home: &Path, config: &str) -> Agent {
    let path = home.join("aegis.toml");
    std::fs::write(&path, config).expect("config");
    Agent::start_in(home, &["--config", path.to_str().expect("utf8")])
}

fn check_state(agent: &Agent, name: &str) -> String {
    agent
        .json("/api/v1/checks")
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

fn outcomes(agent: &Agent, target: &str) -> Vec<String> {
    agent
        .json(&format!("/api/v1/actions?target={target}&limit=1000"))
        .as_array()
        .map(|a| {
            a.iter()
                .rev()
                .map(|r| {
                    format!(
                        "{}:{}",
                        r["action"].as_str().unwrap_or(""),
                        r["outcome"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_endpoint_down_at_start_or_killed_later_is_healed_within_three_intervals_and_verified() {
    let home = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let marker = home.path().join("restart-web");
    let server: Arc<Mutex<Option<HttpStub>>> = Arc::new(Mutex::new(None));
    let serving = Arc::clone(&server);
    let restarter = Restarter::watch(marker.clone(), move || {
        *serving.lock().expect("lock") = Some(HttpStub::start_on(port));
    });
    let config = format!(
        "[docker]\nenabled = false\n[heal]\ncooldown = \"1s\"\nverify_window = \"10s\"\n\
         [[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 3\n\
         [[heal.rules]]\nname = \"restart web\"\non = \"check_failed\"\ncheck = \"web\"\nactions = [{{ kind = \"command\", argv = [\"touch\", \"{}\"] }}]\n",
        marker.display()
    );
    // Down when the agent starts: nothing listens on the port.
    let agent = start_agent(home.path(), &config);
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || !restarter.heals().is_empty()),
        "no heal; actions: {:?}",
        outcomes(&agent, "web")
    );
    let first = restarter.heals()[0].duration_since(started);
    assert!(
        first <= Duration::from_secs(4),
        "healed after {first:?}, more than 3 x 1 s + 1 s"
    );
    assert!(
        wait_until(Duration::from_secs(10), || outcomes(&agent, "web")
            .contains(&"command:healed".to_string())),
        "the heal was not verified: {:?}",
        outcomes(&agent, "web")
    );
    assert_eq!(check_state(&agent, "web"), "passing");
    let records = agent.json("/api/v1/actions?target=web&limit=100");
    let verdict = records
        .as_array()
        .and_then(|a| a.iter().find(|r| r["outcome"] == "healed"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(verdict["reason"], "the check passes again", "{verdict}");

    // Running healthily, then killed: healed the same way. (Heals of one
    // target are at least the crash-loop back-off apart, 10 s after a first
    // heal: the service runs longer than that before it dies.)
    let healthy = Instant::now();
    assert!(wait_until(Duration::from_secs(20), || {
        agent.json("/api/v1/checks")[0]["successes_in_row"]
            .as_u64()
            .unwrap_or(0)
            >= 11
    }));
    let killed = Instant::now();
    *server.lock().expect("lock") = None;
    assert!(
        wait_until(Duration::from_secs(10), || restarter.heals().len() >= 2),
        "the killed endpoint was not healed: {:?}",
        outcomes(&agent, "web")
    );
    let second = restarter.heals()[1].duration_since(killed);
    assert!(
        second <= Duration::from_secs(4),
        "healed {second:?} after the kill"
    );
    assert!(killed.duration_since(healthy) < Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(10), || {
            outcomes(&agent, "web")
                .iter()
                .filter(|o| *o == "command:healed")
                .count()
                >= 2
        }),
        "{:?}",
        outcomes(&agent, "web")
    );

    // One incident per fault: two healing incidents, no anomaly of its own.
    let incidents = agent.json("/api/v1/incidents?since=1h");
    let web: Vec<&serde_json::Value> = incidents
        .as_array()
        .map(|a| a.iter().filter(|i| i["target"] == "web").collect())
        .unwrap_or_default();
    assert_eq!(web.len(), 2, "{incidents}");
    assert!(
        web.iter()
            .all(|i| i["status"] == "healed" && i["anomaly"].is_null()),
        "{incidents}"
    );

    // What an operator sees: the check, its failures by class, the heal.
    assert!(
        wait_until(Duration::from_secs(10), || agent
            .get("/metrics")
            .1
            .contains("aegis_check_up{check=\"web\",kind=\"http\"} 1")),
        "{}",
        agent.get("/metrics").1
    );
    let metrics = agent.get("/metrics").1;
    assert!(
        metrics.contains("aegis_check_failures_total{check=\"web\",class=\"refused\"}"),
        "{metrics}"
    );
    let detail = agent.json("/api/v1/checks/web");
    let transitions: Vec<String> = detail["transitions"]
        .as_array()
        .map(|t| {
            t.iter()
                .rev()
                .map(|t| {
                    format!(
                        "{}->{}",
                        t["from"].as_str().unwrap_or(""),
                        t["to"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        transitions.starts_with(&[
            "unknown->failing".into(),
            "failing->passing".into(),
            "passing->failing".into()
        ]),
        "{transitions:?}"
    );
    assert!(detail["results"].as_array().is_some_and(|r| r.len() >= 6));
    let out = std::process::Command::new(BIN)
        .args(["checks", "--url", &format!("http://{}", agent.api)])
        .output()
        .expect("aegis checks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("web") && text.contains("http") && text.contains("passing"),
        "{text}"
    );
    drop(restarter);
}

#[test]
fn a_failing_dependency_is_healed_alone_and_a_slow_starter_is_left_in_its_start_period() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = HttpStub::start();
    let web = HttpStub::start();
    let slow = HttpStub::start();
    slow.otherwise(Reply::status(503, "starting"));
    let alerts = HttpStub::start();
    let db_marker = home.path().join("restart-db");
    let web_marker = home.path().join("restart-web");
    let slow_marker = home.path().join("restart-slow");
    // db's restart brings both back (web only failed for want of db).
    let healer = {
        let (db, web) = (db.addr(), web.addr());
        Restarter::watch(db_marker.clone(), move || {
            let _ = (db, web);
        })
    };
    let rule = |name: &str, marker: &Path| {
        format!(
            "[[heal.rules]]\nname = \"restart {name}\"\non = \"check_failed\"\ncheck = \"{name}\"\nactions = [{{ kind = \"command\", argv = [\"touch\", \"{}\"] }}]\n",
            marker.display()
        )
    };
    let http = |name: &str, stub: &HttpStub, extra: &str| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\nfailure_threshold = 2\n{extra}",
            stub.url("/health")
        )
    };
    let config = format!(
        "[docker]\nenabled = false\n[heal]\ncooldown = \"1s\"\nverify_window = \"20s\"\n\
         [notify]\ngroup_wait = \"100ms\"\nmin_severity = \"info\"\nwebhooks = [{{ url = \"{}\" }}]\n{}{}{}{}{}{}",
        alerts.url("/api/v2/alerts"),
        http("db", &db, ""),
        http("web", &web, "depends_on = [\"db\"]\n"),
        http("slow", &slow, "start_period = \"4s\"\n"),
        rule("db", &db_marker),
        rule("web", &web_marker),
        rule("slow", &slow_marker),
    );
    let agent = start_agent(home.path(), &config);
    // The slow starter comes up after two seconds, inside its start period.
    std::thread::sleep(Duration::from_secs(2)); // the service's own start: not a wait
    slow.otherwise(Reply::ok("up"));
    assert!(
        wait_until(Duration::from_secs(15), || ["db", "web", "slow"]
            .iter()
            .all(|c| check_state(&agent, c) == "passing")),
        "{}",
        agent.get("/api/v1/checks").1
    );
    assert!(
        !slow_marker.exists(),
        "the slow starter was restarted in its start period"
    );

    // db goes down, and web with it.
    db.otherwise(Reply::status(503, "down"));
    web.otherwise(Reply::status(502, "no database"));
    assert!(
        wait_until(Duration::from_secs(15), || !healer.heals().is_empty()),
        "db was not healed: {:?}",
        outcomes(&agent, "db")
    );
    assert_eq!(check_state(&agent, "web"), "blocked");
    // db's restart brings both back.
    db.otherwise(Reply::ok("ok"));
    web.otherwise(Reply::ok("ok"));
    assert!(
        wait_until(Duration::from_secs(15), || {
            check_state(&agent, "db") == "passing" && check_state(&agent, "web") == "passing"
        }),
        "{}",
        agent.get("/api/v1/checks").1
    );
    assert!(
        wait_until(Duration::from_secs(10), || outcomes(&agent, "db")
            .contains(&"command:healed".to_string())),
        "{:?}",
        outcomes(&agent, "db")
    );
    assert!(!web_marker.exists(), "web was healed while db failed");
    assert!(
        outcomes(&agent, "web").is_empty(),
        "{:?}",
        outcomes(&agent, "web")
    );
    // Announced: db failing and passing again; web never on its own.
    let sent: Vec<serde_json::Value> = alerts
        .requests_to("/api/v2/alerts")
        .iter()
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || alerts
            .requests_to("/api/v2/alerts")
            .iter()
            .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
            .any(|a| a["labels"]["check"] == "db" && a["endsAt"].is_string())),
        "{sent:?}"
    );
    let all: Vec<serde_json::Value> = alerts
        .requests_to("/api/v2/alerts")
        .iter()
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        !all.iter().any(|a| a["labels"]["check"] == "web"),
        "{all:?}"
    );
    assert!(all
        .iter()
        .any(|a| a["labels"]["alertname"] == "AegisCheckFailing" && a["labels"]["check"] == "db"));
}
