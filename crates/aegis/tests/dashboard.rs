//! The dashboard in a real headless browser (Debian's chromium, installed by
//! scripts/test.sh): the page loads with no console error, charts draw, and
//! an induced anomaly appears on the page.
//!
//! `AEGIS_SCREENSHOT=docs/dashboard.png cargo test -p aegis --test dashboard`
//! also saves a screenshot there.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{calm_before_the_jump, start_fake_host, LoadWriter};

/// Runs headless chromium on `url` with `extra` flags; returns (stdout, stderr).
fn browse(chromium: &Path, url: &str, profile: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_dashboard_loads_draws_and_shows_an_induced_anomaly() {
    let Some(chromium) = aegis_testkit::chromium() else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    let endpoint = aegis_testkit::HttpStub::start();
    let (agent, proc_dir) = start_fake_host(
        home.path(),
        &format!(
            "[docker]\nenabled = false\n[[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\n\
             [[checks]]\nname = \"gone\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\ninterval = \"200ms\"\nfailure_threshold = 1\n",
            endpoint.url("/health"),
            aegis_testkit::free_port()
        ),
    );
    let api = agent.api;

    // Load wobbles around 0.5, then jumps and stays high while the page is
    // read: the anomaly the jump opened stays open. (On a loaded machine a
    // late collection can open a gap anomaly on the same series; the one
    // waited for is the jump's.)
    let load = LoadWriter::start(&proc_dir, 0.5, 12.0);
    calm_before_the_jump(&agent);
    load.set_high(true);
    let open_jump = || {
        agent
            .json("/api/v1/anomalies?status=open")
            .as_array()
            .is_some_and(|a| {
                a.iter().any(|a| {
                    a["series"] == "host_load1"
                        && a["explanation"]
                            .as_str()
                            .is_some_and(|e| e.contains("above the expected"))
                })
            })
    };
    aegis_testkit::wait_until(
        Duration::from_secs(30),
        "an anomaly induced by the jump",
        open_jump,
    );

    let profile = tempfile::tempdir().expect("profile");
    let url = format!("http://{api}/");
    let (dom, log) = browse(&chromium, &url, profile.path(), &["--dump-dom"]);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(dom.contains("Aegis Sentinel"), "{dom}");
    // Charts drew: a line for the load, with the anomaly marked on it.
    let load_chart = dom
        .split("data-series=\"host_load1\"")
        .nth(1)
        .expect("a load chart");
    let load_chart = load_chart
        .split("class=\"chart\"")
        .next()
        .unwrap_or(load_chart);
    assert!(load_chart.contains("class=\"line\" d=\"M"), "no line drawn");
    // Both axes, with ticks: values with the series' unit, clock times.
    let x_axis = load_chart
        .split("class=\"axis axis-x\"")
        .nth(1)
        .expect("a time axis");
    let first_tick = x_axis
        .split("class=\"tick\"")
        .nth(1)
        .and_then(|t| t.split('>').nth(1))
        .and_then(|t| t.split('<').next())
        .unwrap_or("");
    let clock = |t: &str| {
        let parts: Vec<&str> = t.split(':').collect();
        (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(
        clock(first_tick),
        "the time axis has no HH:MM[:SS] tick: {first_tick:?}"
    );
    assert!(
        load_chart.contains("class=\"axis axis-y\""),
        "no value axis"
    );
    let cpu_chart = dom
        .split("data-series=\"host_memory_used_ratio\"")
        .nth(1)
        .and_then(|c| c.split("class=\"chart\"").next())
        .expect("a memory chart");
    assert!(
        cpu_chart.contains("%</text>"),
        "the memory axis has no unit: {cpu_chart}"
    );
    assert!(
        load_chart.contains("anomaly-mark"),
        "the anomaly is not marked on the chart"
    );
    // The open anomaly is listed with its explanation.
    assert!(
        dom.contains("anomaly-row") && dom.contains("above the expected"),
        "no open anomaly on the page; the agent's: {}",
        agent.get("/api/v1/anomalies?status=all").1
    );
    // The checks panel: each check with its state and last result.
    let row = |name: &str| {
        dom.split(&format!("data-check=\"{name}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for check {name}"))
            .to_string()
    };
    assert!(row("web").contains(">passing<"), "{}", row("web"));
    assert!(
        row("gone").contains(">failing<") && row("gone").contains("refused"),
        "{}",
        row("gone")
    );
    // The header shows the agent's figures (not "unreachable").
    assert!(
        dom.contains("id=\"agent\" class=\"dim\">up "),
        "the page could not reach the agent"
    );

    if let Ok(path) = std::env::var("AEGIS_SCREENSHOT") {
        let shot = format!("--screenshot={path}");
        let (_, log) = browse(
            &chromium,
            &url,
            profile.path(),
            &[&shot, "--window-size=1280,900", "--hide-scrollbars"],
        );
        assert!(Path::new(&path).exists(), "no screenshot: {log}");
    }
    // A narrow screen still renders everything.
    let (narrow, _) = browse(
        &chromium,
        &url,
        profile.path(),
        &["--dump-dom", "--window-size=390,844"],
    );
    assert!(narrow.contains("anomaly-row"));
    drop(load);
    drop(agent);
}
