//! Watched processes: real child processes found by command line and by
//! pidfile; missing ones and restarts seen.

use std::process::{Child, Command};
use std::time::Duration;

use aegis_collect::process::ProcessSource;
use aegis_core::config::ProcessConfig;
use aegis_core::{Observation, Reading};

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn value(obs: &[Observation], series: &str) -> Option<f64> {
    obs.iter()
        .find(|o| o.series.matches(series))
        .and_then(|o| match o.reading {
            Reading::Value(v) => Some(v),
            Reading::CounterReset => None,
        })
}

#[test]
fn processes_found_by_cmdline_and_pidfile_with_restarts_and_absence() {
    // A marker no other process has.
    let marker = format!("{}.{}", 7_000_000 + std::process::id(), 5);
    // Returns once the child runs `sleep`: until its exec, /proc shows the
    // test's own command line, and a collection then would not count it.
    let spawn = || {
        let child = Command::new("sleep")
            .arg(&marker)
            .spawn()
            .expect("spawn sleep");
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep\0")) {
            assert!(std::time::Instant::now() < deadline, "sleep never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    };
    let mut children = Kill(vec![spawn(), spawn()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("worker.pid");
    std::fs::write(&pidfile, children.0[0].id().to_string()).expect("pidfile");
    let watched = vec![
        ProcessConfig {
            name: "sleepers".parse().expect("name"),
            comm: None,
            cmdline: Some(format!("sleep {marker}").parse().expect("glob")),
            pidfile: None,
        },
        ProcessConfig {
            name: "worker".parse().expect("name"),
            comm: None,
            cmdline: None,
            pidfile: Some(pidfile.clone()),
        },
        ProcessConfig {
            name: "ghost".parse().expect("name"),
            comm: Some("no-such-process-name".into()),
            cmdline: None,
            pidfile: None,
        },
    ];
    let mut source = ProcessSource::new("/proc", watched);
    let c = source.collect_at(Duration::from_secs(1), 1_000);
    let obs = &c.observations;
    assert_eq!(value(obs, "process_up/sleepers"), Some(1.0));
    assert_eq!(value(obs, "process_count/sleepers"), Some(2.0));
    assert_eq!(value(obs, "process_up/worker"), Some(1.0));
    assert_eq!(value(obs, "process_up/ghost"), Some(0.0));
    assert!(value(obs, "process_rss_bytes/sleepers").is_some_and(|v| v > 0.0));
    assert_eq!(value(obs, "process_threads/sleepers"), Some(2.0));
    assert!(value(obs, "process_open_fds/sleepers").is_some_and(|v| v >= 2.0));

    // One sleeper is replaced by a new one: a restart; the pidfile's
    // process is gone: the worker is down.
    let _ = children.0[0].kill();
    let _ = children.0[0].wait();
    children.0.push(spawn());
    let c = source.collect_at(Duration::from_secs(2), 2_000);
    let obs = &c.observations;
    assert_eq!(value(obs, "process_count/sleepers"), Some(2.0));
    assert_eq!(value(obs, "process_restarts/sleepers"), Some(1.0));
    assert_eq!(value(obs, "process_up/worker"), Some(0.0));
    assert!(value(obs, "process_cpu_cores/sleepers").is_some_and(|v| (0.0..1.0).contains(&v)));

    // All gone.
    for c in &mut children.0 {
        let _ = c.kill();
        let _ = c.wait();
    }
    let obs = source
        .collect_at(Duration::from_secs(3), 3_000)
        .observations;
    assert_eq!(value(&obs, "process_up/sleepers"), Some(0.0));
    // A pidfile that cannot be read is reported, not fatal.
    std::fs::remove_file(&pidfile).expect("rm");
    let c = source.collect_at(Duration::from_secs(4), 4_000);
    assert!(
        c.errors.iter().any(|e| e.contains("worker: pidfile")),
        "{:?}",
        c.errors
    );
}
