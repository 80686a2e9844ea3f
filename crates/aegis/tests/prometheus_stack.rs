//! The agent with the monitoring stack people already run, all real, all on
//! loopback: Alertmanager (Debian's prometheus-alertmanager) receives the
//! agent's firing and resolved alerts for an induced anomaly and passes them
//! to its own webhook receiver; Prometheus (Debian's prometheus) scrapes the
//! agent and answers queries for a host metric and an anomaly score.

use std::time::Duration;

use aegis_testkit::{need, HttpStub};

mod common;

use common::{calm_before_the_jump, http_get, start_fake_host, wait_until, LoadWriter};

fn http(addr: &str, path: &str) -> String {
    addr.parse()
        .map(|a| http_get(a, path).1)
        .unwrap_or_default()
}

#[test]
fn alertmanager_gets_firing_and_resolved_and_prometheus_scrapes_the_agent() {
    if !need(&["prometheus", "prometheus-alertmanager"]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();

    // Alertmanager, routing everything to our receiver at once.
    let receiver = HttpStub::start();
    let hook = receiver.url("/alerts");
    let notifications = || -> Vec<serde_json::Value> {
        receiver
            .requests_to("/alerts")
            .iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect()
    };
    let (_am, am) = common::alertmanager(
        dir,
        &format!(
            "route:\n  receiver: test\n  group_by: ['alertname', 'series']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: '{hook}'\n        send_resolved: true\n"
        ),
    );
    assert!(
        wait_until(Duration::from_secs(20), || http(&am, "/-/ready")
            .contains("OK")),
        "alertmanager not ready"
    );

    // The agent on a fake host whose load we move, announcing to Alertmanager.
    let (agent, proc_dir) = start_fake_host(
        dir,
        &format!(
            "close_after = 5\n[docker]\nenabled = false\n[notify]\nmin_severity = \"info\"\ngroup_wait = \"200ms\"\nwebhooks = [{{ url = \"http://{am}/api/v2/alerts\" }}]\n"
        ),
    );
    let api = agent.api;

    // Prometheus scraping the agent every second.
    let (_prom, prom) = common::prometheus(
        dir,
        &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: aegis\n    static_configs:\n      - targets: ['{api}']\n"),
    );

    // Normal first, then a jump, then back.
    let load = LoadWriter::start(&proc_dir, 0.5, 15.0);
    calm_before_the_jump(&agent);
    load.set_high(true);
    let has = |status: &str| {
        notifications().iter().any(|n| {
            n["status"] == status
                && n["alerts"].as_array().is_some_and(|a| {
                    a.iter().any(|a| {
                        a["labels"]["alertname"] == "AegisAnomaly"
                            && a["labels"]["series"] == "host_load1"
                    })
                })
        })
    };
    // As soon as Alertmanager has announced the firing alert, the load goes
    // back to normal. The longer the jump lasts, the longer the detectors
    // take to call the series quiet again afterwards (about 25 s for 3 s of
    // jump at this test's 100 ms interval), so the wait for the resolution
    // below is generous: a loaded machine delays every step before it.
    let delivered = || -> u64 {
        let status: serde_json::Value =
            serde_json::from_str(&http(&api.to_string(), "/api/v1/status")).unwrap_or_default();
        status["notify"]["delivered"].as_u64().unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || delivered() >= 1),
        "the agent delivered nothing"
    );
    assert!(
        wait_until(Duration::from_secs(30), || has("firing")),
        "Alertmanager sent no firing alert"
    );
    load.set_high(false);
    // Back to normal: the anomaly closes, the alert resolves.
    assert!(
        wait_until(Duration::from_secs(150), || has("resolved")),
        "Alertmanager sent no resolved alert; anomalies: {}",
        http(&api.to_string(), "/api/v1/anomalies")
    );
    drop(load);
    let firing = notifications()
        .into_iter()
        .find(|n| n["status"] == "firing")
        .expect("firing");
    let alert = &firing["alerts"][0];
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap_or("")
            .contains("sd above"),
        "{alert}"
    );
    // A host busier than usual is told as info (hence `min_severity` above).
    assert_eq!(alert["labels"]["severity"], "info", "{alert}");

    // The agent counted its deliveries. Its figures are published a few
    // times a second, and Alertmanager can pass the resolution on within
    // milliseconds of receiving it: wait for the count.
    let counted = || -> f64 {
        http(&api.to_string(), "/metrics")
            .lines()
            .find_map(|l| l.strip_prefix("aegis_notify_posts_total{result=\"delivered\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(10), || counted() >= 2.0),
        "deliveries counted: {}",
        counted()
    );

    // Prometheus has scraped the agent: a host metric and an anomaly score.
    let query = |q: &str| -> serde_json::Value {
        serde_json::from_str(&http(&prom, &format!("/api/v1/query?query={q}"))).unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || query("aegis_host_load1")
            ["data"]["result"][0]["value"][1]
            .is_string()),
        "Prometheus has no aegis_host_load1: {}",
        query("aegis_host_load1")
    );
    let score = query("aegis_anomaly_score%7Bseries%3D%22host_load1%22%7D");
    let v: f64 = score["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a score");
    assert!((0.0..=1.0).contains(&v), "{score}");
    let up = query("up%7Bjob%3D%22aegis%22%7D");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}
