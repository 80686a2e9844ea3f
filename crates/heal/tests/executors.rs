//! Executors against the real thing: redis-server and memcached started on
//! free loopback ports, real child processes, real signals. Skipped, saying
//! why, where redis-server or memcached is not installed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aegis_core::config::HostPort;
use aegis_heal::exec::memcached::{self, MemcachedFlush};
use aegis_heal::exec::process::{launched, run_command, RunCommand};
use aegis_heal::exec::redis::{self, RedisFlush};
use aegis_heal::exec::service::{self, ServiceRestart};
use aegis_heal::exec::signal::{self, read_stat, SignalName, SignalProcess};
use aegis_heal::exec::{ExecError, Secret};
use aegis_heal::guard::{Guard, GuardConfig, Outcome, Skip};
use aegis_testkit::{free_port, ChildGuard};

const T: Duration = Duration::from_secs(5);

fn address(port: u16) -> HostPort {
    format!("127.0.0.1:{port}").parse().expect("an address")
}

/// A redis-server (with a password, when given) and its port; `None` when
/// it is not installed (the test is skipped).
fn redis(password: Option<&str>) -> Option<(aegis_testkit::Server, u16)> {
    let extra: Vec<&str> = password
        .map(|p| vec!["--requirepass", p])
        .unwrap_or_default();
    let server = aegis_testkit::redis(&extra)?;
    let port = server.addr.port();
    Some((server, port))
}

/// A blocking RESP client for checking what the executor did.
fn redis_cmd(port: u16, cmds: &[&[&str]]) -> Vec<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    cmds.iter()
        .map(|c| {
            s.write_all(&aegis_heal::exec::redis::encode(c))
                .expect("write");
            let mut line = String::new();
            r.read_line(&mut line).expect("read");
            if line.starts_with('$') && line.trim() != "$-1" {
                let mut value = String::new();
                r.read_line(&mut value).expect("read bulk");
                return value.trim().to_string();
            }
            line.trim().to_string()
        })
        .collect()
}

#[tokio::test]
async fn redis_flushdb_with_password_empties_only_the_chosen_db() {
    let Some((_server, port)) = redis(Some("s3cret")) else {
        return;
    };
    let setup = redis_cmd(
        port,
        &[
            &["AUTH", "s3cret"],
            &["SET", "a", "1"],
            &["SELECT", "1"],
            &["SET", "b", "2"],
        ],
    );
    assert!(setup.iter().all(|r| r == "+OK"), "{setup:?}");
    let flush = RedisFlush {
        address: address(port),
        db: 0,
        all: false,
        username: None,
        password: Some(Secret("s3cret".into())),
    };
    assert_eq!(
        redis::run(&flush, T).await,
        Ok(format!("FLUSHDB of db 0 on 127.0.0.1:{port}"))
    );
    let after = redis_cmd(
        port,
        &[
            &["AUTH", "s3cret"],
            &["DBSIZE"],
            &["SELECT", "1"],
            &["DBSIZE"],
        ],
    );
    assert_eq!(after, vec!["+OK", ":0", "+OK", ":1"]);

    let all = RedisFlush { all: true, ..flush };
    assert!(redis::run(&all, T).await.is_ok());
    assert_eq!(
        redis_cmd(port, &[&["AUTH", "s3cret"], &["SELECT", "1"], &["DBSIZE"]])[2],
        ":0"
    );
}

#[tokio::test]
async fn redis_acl_user_can_flush() {
    let Some((_server, port)) = redis(None) else {
        return;
    };
    let acl = redis_cmd(
        port,
        &[
            &[
                "ACL",
                "SETUSER",
                "healer",
                "on",
                ">pw-healer",
                "~*",
                "+@all",
            ],
            &["SET", "k", "v"],
        ],
    );
    assert_eq!(acl, vec!["+OK", "+OK"]);
    let flush = RedisFlush {
        address: address(port),
        db: 0,
        all: false,
        username: Some("healer".into()),
        password: Some(Secret("pw-healer".into())),
    };
    assert!(redis::run(&flush, T).await.is_ok());
    assert_eq!(redis_cmd(port, &[&["DBSIZE"]]), vec![":0"]);
}

#[tokio::test]
async fn redis_wrong_password_and_closed_port_fail_clearly_and_feed_the_breaker() {
    let Some((_server, port)) = redis(Some("right")) else {
        return;
    };
    let wrong = RedisFlush {
        address: address(port),
        db: 0,
        all: false,
        username: None,
        password: Some(Secret("wrong".into())),
    };
    let err = redis::run(&wrong, T).await.expect_err("wrong password");
    assert!(
        matches!(&err, ExecError::Failed(m) if m.contains("AUTH refused") && m.contains("WRONGPASS")),
        "{err}"
    );
    assert!(err.is_target_failure());
    // The secret never shows in debug output.
    assert!(!format!("{wrong:?}").contains("wrong\""));

    let closed = RedisFlush {
        address: address(free_port()),
        password: None,
        ..wrong
    };
    let err = redis::run(&closed, T).await.expect_err("closed port");
    assert!(
        matches!(&err, ExecError::Failed(m) if m.contains("connecting to redis")),
        "{err}"
    );

    // Three real failures open the target's breaker.
    let mut guard = Guard::new(GuardConfig {
        cooldown: Duration::ZERO,
        ..GuardConfig::default()
    });
    let mut now = Duration::ZERO;
    for _ in 0..3 {
        let ticket = guard.check("redis", now, 0).expect("allowed");
        let outcome = match redis::run(&closed, T).await {
            Ok(_) => Outcome::Succeeded,
            Err(e) if e.is_target_failure() => Outcome::Failed,
            Err(_) => Outcome::NotAttempted,
        };
        guard.finish(ticket, outcome, now);
        now += Duration::from_secs(1);
    }
    assert!(matches!(
        guard.check("redis", now, 0),
        Err(Skip::BreakerOpen { .. })
    ));
}

fn memcached_cmd(port: u16, cmd: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(cmd.as_bytes()).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    line.trim().to_string()
}

#[tokio::test]
async fn memcached_flush_all_empties_the_cache_and_a_closed_port_fails() {
    let Some(server) = aegis_testkit::memcached() else {
        return;
    };
    let port = server.addr.port();
    assert_eq!(memcached_cmd(port, "set k 0 0 1\r\nv\r\n"), "STORED");
    let flush = MemcachedFlush {
        address: address(port),
    };
    assert!(memcached::run(&flush, T).await.is_ok());
    assert_eq!(memcached_cmd(port, "get k\r\n"), "END");

    let closed = MemcachedFlush {
        address: address(free_port()),
    };
    let err = memcached::run(&closed, T).await.expect_err("closed");
    assert!(
        err.is_target_failure() && err.to_string().contains("connecting to memcached"),
        "{err}"
    );
}

#[tokio::test]
async fn commands_run_as_argv_never_through_a_shell_and_time_out() {
    let ok = RunCommand {
        argv: vec!["true".into()],
    };
    assert!(run_command(&ok, T).await.is_ok());
    let fails = RunCommand {
        argv: vec!["ls".into(), "/no/such/dir".into()],
    };
    let err = run_command(&fails, T).await.expect_err("ls fails");
    assert!(
        matches!(&err, ExecError::Failed(m) if m.contains("exited with status 2")),
        "{err}"
    );
    // The argument is one argument, not shell syntax: nothing expands.
    let literal = RunCommand {
        argv: vec!["echo".into(), "$HOME; rm -rf /".into()],
    };
    assert_eq!(
        run_command(&literal, T).await,
        Ok("echo exited with status 0: $HOME; rm -rf /".to_string())
    );
    for shell in ["sh", "/bin/bash", "busybox"] {
        let refused = RunCommand {
            argv: vec![shell.into(), "-c".into(), "true".into()],
        };
        assert!(
            matches!(run_command(&refused, T).await, Err(ExecError::Refused(_))),
            "{shell} was not refused"
        );
    }
    let slow = RunCommand {
        argv: vec!["sleep".into(), "30".into()],
    };
    let started = Instant::now();
    assert_eq!(
        run_command(&slow, Duration::from_millis(200)).await,
        Err(ExecError::Timeout(Duration::from_millis(200)))
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Every process this test started, exactly as configured, none a shell.
    let ran: Vec<Vec<String>> = launched()
        .into_iter()
        .filter(|a| ["true", "ls", "echo", "sleep"].contains(&a[0].as_str()))
        .collect();
    assert_eq!(
        ran,
        vec![
            vec!["true".to_string()],
            vec!["ls".into(), "/no/such/dir".into()],
            vec!["echo".into(), "$HOME; rm -rf /".into()],
            vec!["sleep".into(), "30".into()],
        ]
    );
    assert!(launched().iter().all(
        |a| !["sh", "bash", "dash", "busybox"].contains(&a[0].rsplit('/').next().unwrap_or(""))
    ));
}

#[tokio::test]
async fn service_restart_says_systemd_unavailable_without_systemd() {
    let restart = ServiceRestart {
        unit: "nginx.service".into(),
    };
    assert_eq!(
        service::argv(&restart),
        vec!["systemctl", "restart", "--", "nginx.service"]
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let err = service::run(&restart, dir.path(), T)
        .await
        .expect_err("no systemd here");
    assert!(
        matches!(&err, ExecError::Unavailable(m) if m.starts_with("systemd unavailable")),
        "{err}"
    );
    assert!(!err.is_target_failure());
    let bad = ServiceRestart {
        unit: "--force; reboot".into(),
    };
    assert!(matches!(
        service::run(&bad, Path::new("/"), T).await,
        Err(ExecError::Refused(_))
    ));
}

#[test]
fn signals_go_by_pid_and_start_time_and_a_recycled_pid_is_refused() {
    let proc_root = Path::new("/proc");
    let mut guard = ChildGuard::spawn(Command::new("sleep").arg("30")).expect("spawn sleep");
    let child = &mut guard.child;
    let pid = child.id() as i32;
    let stat = read_stat(proc_root, pid).expect("stat of the child");
    assert_eq!(stat.comm, "sleep");

    // Same PID, different start time: a recycled PID. Refused.
    let recycled = SignalProcess {
        pid,
        start_time: stat.start_time + 1,
        signal: SignalName::Term,
    };
    let err = signal::run(&recycled, proc_root, &[]).expect_err("recycled pid");
    assert!(
        matches!(&err, ExecError::Refused(m) if m.contains("was recycled")),
        "{err}"
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the process was hit"
    );

    // Deny-listed names, PID 1 and the agent itself are never targets.
    let exact = SignalProcess {
        pid,
        start_time: stat.start_time,
        signal: SignalName::Term,
    };
    assert!(matches!(
        signal::run(&exact, proc_root, &["sleep".to_string()]),
        Err(ExecError::Refused(_))
    ));
    for pid in [1, std::process::id() as i32] {
        let me = SignalProcess {
            pid,
            start_time: 0,
            signal: SignalName::Kill,
        };
        assert!(matches!(
            signal::run(&me, proc_root, &[]),
            Err(ExecError::Refused(_))
        ));
    }

    // The right PID and start time: signalled.
    assert!(signal::run(&exact, proc_root, &[]).is_ok());
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));
}
