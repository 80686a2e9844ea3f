//! The agent when its own surroundings fail, under load and under hostile
//! input, each test named after the defect it pins: a closed stderr and
//! stdout, a second agent on the same state, a full disk, a hung mount, a
//! flood of idle connections, an oversized body declared up front, and
//! start-up errors that say what is wrong.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use aegis_testkit::docker::{docker, health, run_web, Containers};
use aegis_testkit::{free_port, ChildGuard};
use common::{aegis, http_get, http_post, wait_until, Agent};

fn write_config(home: &Path, text: &str) -> String {
    let path = home.join("aegis.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf8").to_string()
}

/// Regression (hardening, defect 4): two agents on one state directory
/// both ran, executed the same action twice and numbered their incidents
/// alike. The second now refuses to start and names the first.
#[test]
fn a_second_agent_on_the_same_state_directory_refuses_to_start_and_names_the_first() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = write_config(home.path(), "[docker]\nenabled = false\n");
    let first = Agent::start_in(home.path(), &["--config", &config]);
    let out = aegis(home.path())
        .args(["run", "--config", &config, "--listen", "127.0.0.1:0"])
        .output()
        .expect("second agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second agent ran: {stderr}");
    assert!(
        stderr.contains(&format!("PID {}", first.child.id())),
        "the holder is not named: {stderr}"
    );
    assert_eq!(
        first.get("/healthz").0,
        200,
        "the first agent was disturbed"
    );
}

/// Regression (hardening, defect 12): a read-only state directory gave
/// "unable to open database file ... Error code 14" three times, and one
/// that is a file gave "File exists (os error 17)".
#[test]
fn an_unusable_state_directory_is_named_for_what_is_wrong_with_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("state");
    std::fs::write(&file, "").expect("file");
    let out = aegis(home.path())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            file.to_str().expect("utf8"),
        ])
        .output()
        .expect("aegis");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not a directory"), "{stderr}");

    let ro = home.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let mounted = aegis_testkit::need::need_root("mount a read-only file system")
        && Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m,ro",
                "tmpfs",
                ro.to_str().expect("utf8"),
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        return;
    }
    let out = aegis(home.path())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            ro.to_str().expect("utf8"),
        ])
        .output()
        .expect("aegis");
    let _ = Command::new("umount").arg(&ro).status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(!stderr.contains("Error code 14"), "{stderr}");
}

/// Regression (hardening, defect 1): with its stderr closed the agent's log
/// writer hit EPIPE, its fallback panicked, and the agent stopped healing
/// and could no longer be stopped; `aegis status | true` panicked.
#[test]
fn with_stderr_and_stdout_closed_the_agent_keeps_working_and_stops_on_sigterm() {
    let home = tempfile::tempdir().expect("tempdir");
    let token = "a-long-enough-test-token";
    // With an engine, an opted-in container to heal once the logs are gone.
    let with_docker = aegis_testkit::need::need_docker();
    let mut cleanup = Containers::default();
    let web = format!("aegis-quiet-{}", std::process::id());
    let docker_section = if with_docker {
        cleanup.add(&web);
        run_web(&web, &["aegis.autoheal=true"]);
        "[docker]\ninterval = \"1s\"\n[heal]\ncooldown = \"1s\"\nverify_window = \"30s\"\n"
    } else {
        "[docker]\nenabled = false\n"
    };
    let config = write_config(
        home.path(),
        &format!("[api]\ntoken = \"{token}\"\n{docker_section}[collect]\ninterval = \"100ms\"\n"),
    );
    let port = free_port();
    // Killed when the test ends, pass or fail.
    let mut guard = ChildGuard::spawn(
        aegis(home.path())
            .args([
                "run",
                "--config",
                &config,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "text",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("aegis");
    let child = &mut guard.child;
    // Read one line, then close both ends: every later write fails.
    let mut stderr = child.stderr.take().expect("stderr");
    let mut first = [0u8; 1];
    let _ = stderr.read(&mut first);
    drop(stderr);
    drop(child.stdout.take());
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_until(Duration::from_secs(20), || http_get(
        api, "/healthz"
    )
    .0 == 200));
    // It logs a lot (every action, every change), and still works.
    for _ in 0..5 {
        let (code, body) = http_post(
            api,
            "/api/v1/actions",
            Some(token),
            r#"{"target": "t", "action": {"kind": "command", "argv": ["true"]}}"#,
        );
        assert_eq!(code, 202, "{body}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (_, body) = http_get(api, "/api/v1/actions?target=t");
            body.matches("\"healed\"").count() >= 1
        }),
        "no healing with stderr closed: {}",
        http_get(api, "/api/v1/actions?target=t").1
    );
    if with_docker {
        assert!(
            wait_until(Duration::from_secs(30), || health(&web)
                == "running/healthy"),
            "{web}: {}",
            health(&web)
        );
        assert!(docker(&["exec", &web, "rm", "/www/health"]).0);
        assert!(
            wait_until(Duration::from_secs(60), || {
                let (_, body) = http_get(api, &format!("/api/v1/actions?target={web}"));
                body.contains("\"healed\"")
            }),
            "{web} not healed with stderr closed: {} ({})",
            http_get(api, &format!("/api/v1/actions?target={web}")).1,
            health(&web)
        );
    }
    let status = || -> serde_json::Value {
        serde_json::from_str(&http_get(api, "/api/v1/status").1).unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || status()["log_lines_dropped"]
            .as_u64()
            .unwrap_or(0)
            > 0),
        "{}",
        status()
    );
    assert_eq!(status()["panics"], 0);
    // The client side: a closed stdout ends quietly.
    for args in [
        vec!["status"],
        vec!["actions"],
        vec!["incidents"],
        vec!["init"],
        vec!["checks"],
    ] {
        let mut cmd = aegis(home.path());
        cmd.args(&args);
        if args[0] != "init" {
            cmd.args(["--url", &format!("http://{api}")]);
        }
        let mut c = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client");
        drop(c.stdout.take());
        let out = c.wait_with_output().expect("client");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
    // SIGTERM: stopped within the deadline, exit 0.
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let mut exited = None;
    assert!(wait_until(Duration::from_secs(10), || {
        exited = child.try_wait().expect("try_wait");
        exited.is_some()
    }));
    assert!(
        sent.elapsed() < Duration::from_secs(6),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(exited.and_then(|s| s.code()), Some(0));
}

/// Regression (hardening, defect 5): 10,000 idle connections were never
/// closed (RSS grew to 224 MB and stayed), and at 20,000 the host source
/// failed with "Too many open files". Connections are now capped, idle ones
/// closed after the header timeout, and the host keeps its descriptors.
#[test]
fn a_flood_of_idle_connections_is_capped_closed_and_costs_the_sources_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        home.path(),
        "[docker]\nenabled = false\n[collect]\ninterval = \"200ms\"\n[api]\nmax_connections = 64\n",
    );
    let agent = Agent::start_in(home.path(), &["--config", &config]);
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    };
    let before = rss(agent.child.id());
    raise_open_files(20_000);
    let mut idle = Vec::new();
    for _ in 0..3_000 {
        match TcpStream::connect_timeout(&agent.api, Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(idle.len() >= 1_000, "only {} connections", idle.len());
    // Within the cap the agent still answers; beyond it connections are
    // closed at once.
    let metrics = || agent.get("/metrics").1;
    assert!(
        wait_until(Duration::from_secs(20), || metrics()
            .contains("aegis_api_connections_total{result=\"refused\"}")
            && !metrics()
                .contains("aegis_api_connections_total{result=\"refused\"} 0")),
        "{}",
        metrics()
    );
    let open_now = |m: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix("aegis_api_connections_open "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::MAX)
    };
    assert!(open_now(&metrics()) <= 64.0, "{}", metrics());
    // Idle connections are closed after the header timeout (10 s).
    let closed = wait_until(Duration::from_secs(30), || {
        idle.iter_mut().all(|s| {
            let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
            let mut b = [0u8; 1];
            matches!(s.read(&mut b), Ok(0) | Err(_)) && s.read(&mut b).is_ok_and(|n| n == 0)
                || s.write(b"x").is_err()
        })
    });
    assert!(closed, "idle connections were left open");
    drop(idle);
    // The sources never ran out of descriptors.
    let status = agent.json("/api/v1/status");
    let host = status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "host"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(host["state"], "ok", "{host}");
    assert!(
        !status.to_string().contains("Too many open files"),
        "{status}"
    );
    let after = rss(agent.child.id());
    assert!(
        after < before + 40 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

/// Regression (hardening, item 11): a `Content-Length` of 999999999999 with
/// a valid token waited for the body instead of answering 413 at once.
#[test]
fn an_oversized_body_is_refused_from_its_declared_length_before_it_is_sent() {
    let home = tempfile::tempdir().expect("tempdir");
    let token = "a-long-enough-test-token";
    let config = write_config(
        home.path(),
        &format!("[api]\ntoken = \"{token}\"\n[docker]\nenabled = false\n"),
    );
    let agent = Agent::start_in(home.path(), &["--config", &config]);
    let mut s = TcpStream::connect(agent.api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{{"
    )
    .expect("write");
    let started = Instant::now();
    let mut answer = vec![0u8; 512];
    let n = s.read(&mut answer).expect("an answer before the body");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // And the other details of that list.
    let (code, body) = aegis_testkit::http_request(agent.api, "DELETE", "/api/v1/status", &[], "");
    assert_eq!(code, 405);
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(http_get(agent.api, "/api/v1/heal/pause").0, 405);
    let (code, _) = aegis_testkit::http_request(
        agent.api,
        "POST",
        "/api/v1/heal/pause",
        &[("Authorization", &format!("bearer {token}"))],
        "",
    );
    assert_eq!(code, 200, "a lower-case scheme is a scheme");
    assert_eq!(http_get(agent.api, "/api/v1/anomalies?since=-1").0, 400);
    let (code, body) =
        aegis_testkit::http_request(agent.api, "GET", "/api/v1/series/%FF%FE", &[], "");
    assert!(code == 400 || code == 404, "{code}");
    assert!(body.contains("\"error\""), "{body}");
}

fn raise_open_files(n: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = n.min(lim.rlim_max);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Regression (hardening, defect 3): healing records written while the
/// disk was full were lost for good (1,203 of 1,205), and once space came
/// back the write-ahead log filled the disk again. On a real 2 MB tmpfs:
/// nothing is lost, the store recovers by itself, says `disk_full` (status,
/// metrics, a message) meanwhile, and does not refill the disk.
#[test]
fn healing_records_survive_a_full_disk_and_the_log_does_not_refill_it() {
    if !aegis_testkit::need::need_root("mount a small tmpfs for the state") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let state = home.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=2m",
            "tmpfs",
            state.to_str().expect("utf8"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(state.clone());
    let receiver = aegis_testkit::HttpStub::start();
    let token = "a-long-enough-test-token";
    let config = write_config(
        home.path(),
        &format!(
            "[api]\ntoken = \"{token}\"\n[docker]\nenabled = false\n[detect]\nenabled = false\n\
             [store]\nflush_interval = \"200ms\"\n\
             [notify]\ngroup_wait = \"100ms\"\nmin_severity = \"critical\"\nwebhooks = [{{ url = \"{}\" }}]\n",
            receiver.url("/api/v2/alerts")
        ),
    );
    let agent = Agent::start_in(
        home.path(),
        &[
            "--config",
            &config,
            "--state-dir",
            state.to_str().expect("utf8"),
        ],
    );
    let used = || -> f64 {
        let s = nix::sys::statvfs::statvfs(&state).expect("statvfs");
        1.0 - s.blocks_available() as f64 / s.blocks() as f64
    };
    // Fill the disk to the brim.
    let filler = state.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    assert!(used() > 0.97, "used {}", used());
    let posted = 1_200;
    for i in 0..posted {
        let (code, body) = http_post(
            agent.api,
            "/api/v1/actions",
            Some(token),
            &format!(r#"{{"target": "t{i}", "action": {{"kind": "command", "argv": ["true"]}}}}"#),
        );
        assert_eq!(code, 202, "{body}");
    }
    let status = || agent.json("/api/v1/status");
    assert!(
        wait_until(Duration::from_secs(20), || status()["store"]["disk_full"]
            == true),
        "{}",
        status()
    );
    assert!(agent.get("/metrics").1.contains("aegis_store_disk_full 1"));
    assert!(
        wait_until(Duration::from_secs(20), || receiver
            .requests()
            .iter()
            .any(|r| r.body.contains("AegisStoreDiskFull"))),
        "no message about the full disk"
    );
    // Space comes back: everything is written, in order, by itself.
    std::fs::remove_file(&filler).expect("rm filler");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let s = status();
            s["store"]["disk_full"] == false && s["store"]["events"]["len"] == 0
        }),
        "{}",
        status()
    );
    assert_eq!(status()["store"]["lost_records"], 0);
    let db = rusqlite::Connection::open(state.join("aegis.db")).expect("db");
    let decided: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM actions WHERE outcome = 'decided'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(decided, posted, "healing records were lost");
    // The log does not fill the freed disk again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut worst: f64 = 0.0;
    while Instant::now() < deadline {
        worst = worst.max(used());
        std::thread::sleep(Duration::from_millis(200)); // sampling, not waiting
    }
    assert!(
        worst < 0.8,
        "the disk filled again: {:.0}% used",
        worst * 100.0
    );
}

/// A FUSE mount (bindfs) whose server is stopped: every `statvfs` on it
/// waits until the server runs again, as on an NFS mount whose server is
/// gone. Stopping the server, and letting it go again on drop (first, so
/// that the unmount does not wait forever).
struct HungMount {
    server: ChildGuard,
    mountpoint: std::path::PathBuf,
}

impl HungMount {
    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.server.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal bindfs");
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
    }
}

/// Regression: `statvfs` ran on the agent's one thread, so a hung network
/// or FUSE mount stopped every check, heal and API answer until the mount
/// came back (the watchdog then restarted the agent, which hung again).
/// Now the mount costs one timeout: it is reported hung and skipped, the
/// rest of the host and every other check go on, and it is read again once
/// its server answers.
#[test]
fn a_hung_mount_is_reported_and_skipped_and_nothing_else_waits_for_it() {
    if !aegis_testkit::need::need_root("mount a FUSE file system")
        || !aegis_testkit::need::need(&["bindfs"])
    {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let source = home.path().join("source");
    let mnt = home.path().join("mnt");
    std::fs::create_dir(&source).expect("mkdir");
    std::fs::create_dir(&mnt).expect("mkdir");
    let server = ChildGuard::spawn(
        Command::new("bindfs")
            .arg("-f")
            .arg(&source)
            .arg(&mnt)
            .stdout(Stdio::null()),
    )
    .expect("start bindfs");
    let mount = HungMount {
        server,
        mountpoint: mnt.clone(),
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string("/proc/mounts")
                .is_ok_and(|m| m.contains(mnt.to_str().expect("utf8")))
        }),
        "bindfs did not mount"
    );
    let web = aegis_testkit::HttpStub::start();
    let config = write_config(
        home.path(),
        &format!(
            "[collect]\ninterval = \"1s\"\n[docker]\nenabled = false\n[detect]\nenabled = false\n\
             [[checks]]\nname = \"data\"\nkind = \"filesystem\"\nmount = \"{}\"\nmax_used_ratio = 0.999\n\
             interval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 2\n\
             [[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            mnt.display(),
            web.url("/health")
        ),
    );
    let agent = Agent::start_in(home.path(), &["--config", &config]);
    let check = |name: &str| -> serde_json::Value {
        agent
            .json("/api/v1/checks")
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_default()
    };
    let host = || -> serde_json::Value {
        agent.json("/api/v1/status")["sources"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "host").cloned())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(20), || check("data")["state"]
            == "passing"
            && check("web")["state"] == "passing"
            && host()["state"] == "ok"),
        "{} {} {}",
        check("data"),
        check("web"),
        host()
    );

    mount.signal(nix::sys::signal::Signal::SIGSTOP);
    let hung = format!("statvfs {}", mnt.display());
    assert!(
        wait_until(Duration::from_secs(20), || check("data")["state"]
            == "failing"),
        "the check of the hung mount did not fail: {}",
        check("data")
    );
    let data = check("data");
    assert_eq!(data["last"]["class"], "timeout", "{data}");
    assert!(data.to_string().contains(&hung), "{data}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let h = host();
            h["state"] == "degraded" && h["last_error"].as_str().is_some_and(|e| e.contains(&hung))
        }),
        "the host source did not name the hung mount: {}",
        host()
    );
    // While the mount hangs, the other checks run, the host is read and
    // the API answers at once.
    let (web_runs, host_runs) = (
        check("web")["runs"].as_u64(),
        host()["collections"].as_u64(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || check("web")["runs"].as_u64()
            >= web_runs.map(|n| n + 5)
            && host()["collections"].as_u64() >= host_runs.map(|n| n + 5)),
        "checks or host collections stalled: {} {}",
        check("web"),
        host()
    );
    assert_eq!(check("web")["state"], "passing");
    for _ in 0..5 {
        let asked = Instant::now();
        let (code, _) = agent.get("/api/v1/status");
        assert_eq!(code, 200);
        assert!(
            asked.elapsed() < Duration::from_millis(900),
            "the API took {:?}",
            asked.elapsed()
        );
    }
    let observed = host()["last_observations"].as_u64().unwrap_or(0);
    assert!(
        observed > 10,
        "the rest of the host went unread: {}",
        host()
    );

    // The server answers again: the mount is read again, the check passes.
    mount.signal(nix::sys::signal::Signal::SIGCONT);
    assert!(
        wait_until(Duration::from_secs(20), || check("data")["state"]
            == "passing"
            && host()["state"] == "ok"),
        "{} {}",
        check("data"),
        host()
    );
    drop(mount);
}
