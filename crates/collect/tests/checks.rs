//! Every kind of check against the real thing on loopback, passing and
//! failing with the right error class: HTTP servers, a real redis-server
//! and a closed port, a TLS server with certificates made here, real child
//! processes, a real program, a real small file system (as root), a series
//! from a fake procfs, a container on the real engine; then the owner of
//! every check: thresholds, start period and dependencies.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aegis_collect::check::{CheckContext, Checks, Probe, Run};
use aegis_collect::sink;
use aegis_core::check::{CheckOutcome, CheckState, FailureClass, TransitionRecord};
use aegis_core::config::{CheckConfig, CheckKind, Interval, ProbeSettings};
use aegis_core::status::Latest;
use aegis_core::{Clock, SystemClock};

use aegis_testkit::{free_port, ChildGuard, HttpStub, Reply};
use tokio::sync::{mpsc, watch};

fn check(name: &str, kind: CheckKind) -> CheckConfig {
    CheckConfig::new(name.parse().expect("name"), kind)
}

fn ctx() -> CheckContext {
    CheckContext {
        clock: Arc::new(SystemClock::new()),
        proc_root: "/proc".into(),
        latest: None,
        containers: None,
    }
}

async fn run_once(c: &CheckConfig, ctx: &CheckContext, timeout: Duration) -> Run {
    let mut probe =
        Probe::of(c, ctx).unwrap_or_else(|e| panic!("probe of {}: {e}", c.name.as_str()));
    probe.run(ctx, timeout).await
}

fn class(run: &Run) -> Option<FailureClass> {
    run.outcome.class()
}

const T: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_pass_and_fail_with_their_class() {
    let stub = HttpStub::start();
    stub.on("/ok", Reply::ok("READY"));
    stub.on("/down", Reply::status(503, "no"));
    stub.on("/slow", Reply::ok("late").after(Duration::from_secs(3)));
    stub.on(
        "/json",
        Reply::json(&serde_json::json!({"checks": {"db": true}})),
    );
    let ctx = ctx();
    let http = |path: &str| {
        let mut c = check("web", CheckKind::Http);
        c.url = Some(stub.url(path).parse().expect("url"));
        c
    };
    let ok = run_once(&http("/ok"), &ctx, T).await;
    assert_eq!(ok.outcome, CheckOutcome::Passed);
    assert!(ok.latency.is_some());
    assert!(ok
        .observations
        .iter()
        .any(|o| o.series.to_string() == "endpoint_up/web"));
    assert_eq!(
        class(&run_once(&http("/down"), &ctx, T).await),
        Some(FailureClass::BadStatus)
    );
    let mut body = http("/ok");
    body.body_contains = Some("STEADY".into());
    assert_eq!(
        class(&run_once(&body, &ctx, T).await),
        Some(FailureClass::BodyMismatch)
    );
    let mut json = http("/json");
    json.json_pointer = Some("/checks/db".parse().expect("pointer"));
    json.json_equals = Some("false".into());
    assert_eq!(
        class(&run_once(&json, &ctx, T).await),
        Some(FailureClass::BodyMismatch)
    );
    json.json_equals = Some("true".into());
    assert_eq!(run_once(&json, &ctx, T).await.outcome, CheckOutcome::Passed);
    let slow = run_once(&http("/slow"), &ctx, Duration::from_millis(300)).await;
    assert_eq!(
        class(&slow),
        Some(FailureClass::Timeout),
        "{:?}",
        slow.outcome
    );
    let mut refused = check("gone", CheckKind::Http);
    refused.url = Some(
        format!("http://127.0.0.1:{}/", free_port())
            .parse()
            .expect("url"),
    );
    assert_eq!(
        class(&run_once(&refused, &ctx, T).await),
        Some(FailureClass::Refused)
    );
}

#[tokio::test]
async fn tcp_checks_speak_to_a_real_redis_and_find_a_closed_port() {
    let Some(redis) = aegis_testkit::redis(&[]) else {
        return;
    };
    let ctx = ctx();
    let mut c = check("cache", CheckKind::Tcp);
    c.address = Some(redis.addr.to_string().parse().expect("address"));
    c.send = Some("PING\r\n".into());
    c.expect = Some("+PONG".into());
    assert_eq!(run_once(&c, &ctx, T).await.outcome, CheckOutcome::Passed);
    c.expect = Some("+HELLO".into());
    assert_eq!(
        class(&run_once(&c, &ctx, T).await),
        Some(FailureClass::BadReply)
    );
    let mut closed = check("nothing", CheckKind::Tcp);
    closed.address = Some(
        format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address"),
    );
    assert_eq!(
        class(&run_once(&closed, &ctx, T).await),
        Some(FailureClass::Refused)
    );
}

/// A TLS server on loopback presenting `chain` (leaf first) for `key`.
async fn tls_server(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> u16 {
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn tls_checks_verify_the_chain_and_the_days_left() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let named = |names: Vec<String>, cn: &str| {
        let mut p = CertificateParams::new(names).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = named(Vec::new(), "aegis test authority");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca file");
    let leaf = |days: i64| {
        let key = KeyPair::generate().expect("key");
        let mut p = named(vec!["127.0.0.1".to_string()], "127.0.0.1");
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let cert = p.signed_by(&key, &ca).expect("leaf");
        (cert, key)
    };
    let ctx = ctx();
    let tls = |port: u16, min_days: u32| {
        let mut c = check("cert", CheckKind::Tls);
        c.address = Some(format!("127.0.0.1:{port}").parse().expect("address"));
        c.ca_file = Some(ca_file.clone());
        c.min_days = Some(min_days);
        c
    };
    // Valid for 90 days.
    let (cert, key) = leaf(90);
    let port = tls_server(vec![cert.der().clone(), ca.der().clone()], &key).await;
    let run = run_once(&tls(port, 7), &ctx, T).await;
    assert_eq!(run.outcome, CheckOutcome::Passed);
    let days = run.value.expect("days left");
    assert!((89.0..=90.0).contains(&days), "{days}");
    // Expiring in 2 days, with 7 required.
    let (cert, key) = leaf(2);
    let port = tls_server(vec![cert.der().clone(), ca.der().clone()], &key).await;
    let run = run_once(&tls(port, 7), &ctx, T).await;
    assert_eq!(
        class(&run),
        Some(FailureClass::Expiring),
        "{:?}",
        run.outcome
    );
    // Self-signed, trusted by nobody.
    let key = KeyPair::generate().expect("key");
    let own = named(vec!["127.0.0.1".to_string()], "127.0.0.1")
        .self_signed(&key)
        .expect("self-signed");
    let port = tls_server(vec![own.der().clone()], &key).await;
    let run = run_once(&tls(port, 7), &ctx, T).await;
    assert_eq!(class(&run), Some(FailureClass::Tls), "{:?}", run.outcome);
    assert!(
        run.outcome.message().contains("UnknownIssuer"),
        "{:?}",
        run.outcome
    );
}

/// A server on loopback answering each request with the bytes `answer`
/// gives for its request line (then closing), over TLS when given an
/// acceptor; records the request heads it read.
async fn canned(
    tls: Option<tokio_rustls::TlsAcceptor>,
    answer: fn(&str) -> Vec<u8>,
) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut s: S,
        answer: fn(&str) -> Vec<u8>,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let line = head.lines().next().unwrap_or("").to_string();
        seen.lock().expect("lock").push(head);
        let _ = s.write_all(&answer(&line)).await;
        let _ = s.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let heads = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, seen) = (tls.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(tcp).await {
                            serve(s, answer, seen).await;
                        }
                    }
                    None => serve(tcp, answer, seen).await,
                }
            });
        }
    });
    (port, heads)
}

/// The answers of the server the HTTP exchange test talks to.
fn http_answers(line: &str) -> Vec<u8> {
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let text = match path {
        // Chunked, with an extension and a trailer, as hyper and nginx send.
        "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nREADY\r\n6\r\n, set.\r\n0\r\nX-T: 1\r\n\r\n".to_string(),
        // No length: the body runs to the close (HTTP/1.0 servers).
        "/close" => "HTTP/1.0 200 OK\r\n\r\nREADY to the close".to_string(),
        "/interim" => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nREADY".to_string(),
        "/moved" => "HTTP/1.1 301 Moved\r\nLocation: /chunked\r\nContent-Length: 0\r\n\r\n".to_string(),
        "/loop" => "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_string(),
        "/short" => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nREADY".to_string(),
        "/garbage" => "SSH-2.0-OpenSSH_9.2\r\n\r\n".to_string(),
        "/big" => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}", 3 << 20, "x".repeat(3 << 20)),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
    };
    text.into_bytes()
}

/// Regression guard for the checks' own HTTP/1.1 exchange (it replaced a
/// general client that cost two thirds of the checks' CPU): chunks, a body
/// to the close, interim answers, redirects (and a loop of them), a short
/// body, an answer that is not HTTP, a body larger than is read, what the
/// request says, and https with and without verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_speak_http_1_1_chunks_redirects_and_tls() {
    let ctx = ctx();
    let (port, heads) = canned(None, http_answers).await;
    let http = |path: &str| {
        let mut c = check("web", CheckKind::Http);
        c.url = Some(
            format!("http://127.0.0.1:{port}{path}")
                .parse()
                .expect("url"),
        );
        c.body_contains = Some("READY".into());
        c
    };
    for path in ["/chunked", "/close", "/interim", "/moved"] {
        let run = run_once(&http(path), &ctx, T).await;
        assert_eq!(run.outcome, CheckOutcome::Passed, "{path}");
    }
    let mut chunked = http("/chunked");
    chunked.body_contains = Some("READY, set.".into());
    assert_eq!(
        run_once(&chunked, &ctx, T).await.outcome,
        CheckOutcome::Passed
    );
    for path in ["/loop", "/short", "/garbage"] {
        let run = run_once(&http(path), &ctx, T).await;
        assert_eq!(
            class(&run),
            Some(FailureClass::Other),
            "{path}: {:?}",
            run.outcome
        );
    }
    assert!(run_once(&http("/loop"), &ctx, T)
        .await
        .outcome
        .message()
        .contains("redirects"));
    // A body larger than is read: judged on its first MiB, in time.
    let mut big = http("/big");
    big.body_contains = Some("xxxx".into());
    assert_eq!(run_once(&big, &ctx, T).await.outcome, CheckOutcome::Passed);
    assert_eq!(
        class(&run_once(&http("/nothing"), &ctx, T).await),
        Some(FailureClass::BadStatus)
    );
    // What was asked: the check's headers beside the agent's own.
    let mut asked = http("/close?deep=1");
    asked.method = Some(aegis_core::config::HttpMethod::Head);
    asked.body_contains = None;
    asked.headers = Some([("X-Probe".to_string(), "1".to_string())].into());
    assert_eq!(
        run_once(&asked, &ctx, T).await.outcome,
        CheckOutcome::Passed
    );
    let head = heads
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        head.starts_with("HEAD /close?deep=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("X-Probe: 1\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");

    // https: a self-signed certificate fails verification, and passes
    // with `tls_verify = false`.
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    let (port, _) = canned(
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        http_answers,
    )
    .await;
    let mut https = check("secure", CheckKind::Http);
    https.url = Some(
        format!("https://127.0.0.1:{port}/chunked")
            .parse()
            .expect("url"),
    );
    let run = run_once(&https, &ctx, T).await;
    assert_eq!(class(&run), Some(FailureClass::Tls), "{:?}", run.outcome);
    https.tls_verify = Some(false);
    let run = run_once(&https, &ctx, T).await;
    assert_eq!(run.outcome, CheckOutcome::Passed, "{:?}", run.outcome);
}

#[tokio::test]
async fn process_checks_count_find_missing_and_catch_a_crash_loop() {
    let marker = format!(
        "{}.{}",
        3000 + std::process::id() % 1000,
        std::process::id()
    );
    let ctx = ctx();
    let mut c = check("workers", CheckKind::Process);
    c.cmdline = Some(format!("sleep {marker}").parse().expect("glob"));
    c.min_count = Some(1);
    c.max_count = Some(2);
    c.max_restarts = Some(1);
    c.restart_window = Some(Interval::secs(60));
    let mut probe = Probe::of(&c, &ctx).expect("probe");
    // Returns once the child has become `sleep MARKER`: before its exec it
    // is still a copy of this test, and a probe would not find it.
    let spawn = || {
        let child = ChildGuard::spawn(Command::new("sleep").arg(&marker)).expect("sleep");
        let cmdline = format!("/proc/{}/cmdline", child.pid());
        assert!(
            aegis_testkit::wait::within(Duration::from_secs(10), || {
                std::fs::read(&cmdline)
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker.as_str()))
            }),
            "the child never became sleep {marker}"
        );
        child
    };
    // None runs.
    assert_eq!(
        class(&probe.run(&ctx, T).await),
        Some(FailureClass::Missing)
    );
    let _a = spawn();
    let run = probe.run(&ctx, T).await;
    assert_eq!(run.outcome, CheckOutcome::Passed);
    assert_eq!(run.value, Some(1.0));
    // Too many.
    let _b = spawn();
    let mut c_ = spawn();
    assert_eq!(
        class(&probe.run(&ctx, T).await),
        Some(FailureClass::TooMany)
    );
    c_.kill();
    drop(_b);
    // Restarting: each run sees one process replaced by another.
    let mut current = Some(_a);
    for _ in 0..2 {
        drop(current.take());
        current = Some(spawn());
        probe.run(&ctx, T).await;
    }
    let run = probe.run(&ctx, T).await;
    assert_eq!(
        class(&run),
        Some(FailureClass::Restarting),
        "{:?}",
        run.outcome
    );
}

#[tokio::test]
async fn program_checks_judge_the_exit_status_and_kill_the_whole_group_on_timeout() {
    let ctx = ctx();
    let program = |argv: &[&str]| {
        let mut c = check("script", CheckKind::Program);
        c.argv = Some(argv.iter().map(|s| s.to_string()).collect());
        c
    };
    assert_eq!(
        run_once(&program(&["true"]), &ctx, T).await.outcome,
        CheckOutcome::Passed
    );
    assert_eq!(
        class(&run_once(&program(&["false"]), &ctx, T).await),
        Some(FailureClass::ExitStatus)
    );
    let mut out = program(&["echo", "all good"]);
    out.expect_output = Some("good".into());
    assert_eq!(run_once(&out, &ctx, T).await.outcome, CheckOutcome::Passed);
    out.expect_output = Some("bad".into());
    assert_eq!(
        class(&run_once(&out, &ctx, T).await),
        Some(FailureClass::OutputMismatch)
    );
    if !aegis_testkit::need(&["python3"]) {
        return;
    }
    // A program that starts a child of its own and hangs: on timeout both go.
    let marker = format!(
        "{}.{}",
        4000 + std::process::id() % 1000,
        std::process::id()
    );
    let script = format!(
        "import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(600)\n"
    );
    let run = run_once(
        &program(&["python3", "-c", &script]),
        &ctx,
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(
        class(&run),
        Some(FailureClass::Timeout),
        "{:?}",
        run.outcome
    );
    let child_left = || {
        aegis_collect::process::list(Path::new("/proc"), true)
            .iter()
            .any(|p| p.cmdline == format!("sleep {marker}"))
    };
    aegis_testkit::wait_until(
        Duration::from_secs(5),
        "the program's own child to be killed too",
        || !child_left(),
    );
}

#[tokio::test]
async fn filesystem_checks_see_a_full_and_a_read_only_file_system() {
    if !aegis_testkit::need_root("mount a small tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mount = |args: &[&str]| {
        let ok = Command::new("mount")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount {args:?}");
    };
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "tmpfs",
        mnt.to_str().expect("utf8"),
    ]);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let ctx = ctx();
    let mut c = check("data", CheckKind::Filesystem);
    c.mount = Some(mnt.clone());
    c.max_used_ratio = Some(0.5);
    c.writable = Some(true);
    let run = run_once(&c, &ctx, T).await;
    assert_eq!(run.outcome, CheckOutcome::Passed);
    // 700 KiB of 1 MiB: over the half.
    std::fs::write(mnt.join("fill"), vec![0u8; 700 << 10]).expect("fill");
    let run = run_once(&c, &ctx, T).await;
    assert_eq!(
        class(&run),
        Some(FailureClass::Threshold),
        "{:?}",
        run.outcome
    );
    assert!(run.value.expect("ratio") > 0.5);
    std::fs::remove_file(mnt.join("fill")).expect("rm");
    mount(&["-o", "remount,ro", mnt.to_str().expect("utf8")]);
    let run = run_once(&c, &ctx, T).await;
    assert_eq!(
        class(&run),
        Some(FailureClass::ReadOnly),
        "{:?}",
        run.outcome
    );
}

#[tokio::test]
async fn series_checks_hold_a_threshold_for_its_duration_on_a_fake_procfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("loadavg"), "0.50 0.50 0.50 1/100 1\n").expect("loadavg");
    let mut host = aegis_collect::HostSource::new(dir.path());
    let (tx, rx) = watch::channel(Arc::new(Latest::default()));
    let publish = |host: &mut aegis_collect::HostSource, at: u64| {
        let c = host.collect_at(Duration::from_secs(at), at as i64 * 1000);
        let values = c
            .observations
            .into_iter()
            .filter_map(|o| match o.reading {
                aegis_core::Reading::Value(v) => Some((o.series, v)),
                _ => None,
            })
            .collect();
        tx.send_replace(Arc::new(Latest {
            values,
            ..Latest::default()
        }));
    };
    let mut c = check("load", CheckKind::Series);
    c.series = Some("host_load*".parse().expect("glob"));
    c.above = Some(4.0);
    c.for_ = Some(Interval::secs(2));
    let mut probe = aegis_collect::check::series::SeriesProbe::new(&c).expect("probe");
    let s = Duration::from_secs;
    let none = probe.run(None, s(0));
    assert!(matches!(none.outcome, CheckOutcome::NoData { .. }));
    publish(&mut host, 0);
    assert_eq!(probe.run(Some(&rx), s(0)).outcome, CheckOutcome::Passed);
    std::fs::write(dir.path().join("loadavg"), "9.00 2.00 1.00 1/100 1\n").expect("loadavg");
    publish(&mut host, 1);
    // Above, but not yet for 2 s.
    assert_eq!(probe.run(Some(&rx), s(1)).outcome, CheckOutcome::Passed);
    assert_eq!(probe.run(Some(&rx), s(2)).outcome, CheckOutcome::Passed);
    let run = probe.run(Some(&rx), s(3));
    assert_eq!(
        class(&run),
        Some(FailureClass::Threshold),
        "{:?}",
        run.outcome
    );
    assert!(
        run.outcome.message().contains("host_load1"),
        "{:?}",
        run.outcome
    );
    // A pattern nothing matches is no data, not a failure.
    let mut nothing = c.clone();
    nothing.series = Some("nothing_*".parse().expect("glob"));
    let mut probe = aegis_collect::check::series::SeriesProbe::new(&nothing).expect("probe");
    assert!(matches!(
        probe.run(Some(&rx), s(3)).outcome,
        CheckOutcome::NoData { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_checks_catch_a_crash_loop_on_the_real_engine() {
    if !aegis_testkit::need::need_docker() {
        return;
    }
    let name = format!("aegis-crashloop-{}", std::process::id());
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _rm = Remove(name.clone());
    assert!(docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--restart",
        "always",
        "aegis-test/busybox:latest",
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ]));
    let engine = aegis_docker::connect(None).await.expect("engine").client;
    let (tx, rx) = watch::channel(Arc::new(Vec::new()));
    let mut c = check("crashy", CheckKind::Container);
    c.container = Some(name.clone());
    c.max_restarts = Some(2);
    c.restart_window = Some(Interval::secs(120));
    let mut probe = aegis_collect::check::container::ContainerProbe::new(&c).expect("probe");
    let clock = SystemClock::new();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let list = aegis_docker::list(&engine, 100, &[]).await.expect("list");
        tx.send_replace(Arc::new(list));
        let run = probe.run(Some(&rx), clock.monotonic());
        if run.outcome.class() == Some(FailureClass::Restarting) {
            return;
        }
        last = Some(run.outcome);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("no crash loop was seen: {last:?}");
}

/// The owner of every check, on real HTTP stubs: thresholds in a row, the
/// start period, and a dependency that blocks and then releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_applies_thresholds_start_periods_and_dependencies() {
    let db = HttpStub::start();
    let web = HttpStub::start();
    let http = |name: &str, stub: &HttpStub| {
        let mut c = check(name, CheckKind::Http);
        c.url = Some(stub.url("/health").parse().expect("url"));
        c.interval = Some(Interval::millis(100));
        c.timeout = Some(Interval::millis(100));
        c.failure_threshold = 2;
        c
    };
    let mut w = http("web", &web);
    w.depends_on = vec!["db".parse().expect("name")];
    // A service slow to start: failing for its first half second, inside
    // a start period of two.
    let slow = HttpStub::start();
    slow.otherwise(Reply::status(503, "starting"));
    let mut s = http("slow", &slow);
    s.start_period = Interval::secs(2);
    let (sink, _rx) = sink::channel(10_000);
    let (tx, mut transitions) = mpsc::channel::<TransitionRecord>(1_000);
    let (checks, handle) = Checks::new(
        vec![http("db", &db), w, s],
        ProbeSettings::default(),
        ctx(),
        sink,
        tx,
    )
    .expect("checks");
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(checks.run(cancel.clone()));
    let state = |name: &str| {
        handle
            .statuses()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.state)
    };
    let wait = |what: &'static str, f: Box<dyn Fn() -> bool + Send>| {
        aegis_testkit::wait_until(Duration::from_secs(10), what, f);
    };
    std::thread::sleep(Duration::from_millis(500)); // the slow service's start: not a wait
    slow.otherwise(Reply::ok("up"));
    let h = handle.clone();
    wait(
        "both passing",
        Box::new(move || {
            let s = h.statuses();
            s.iter().all(|c| c.state == CheckState::Passing)
        }),
    );
    // db goes down; web with it: db fails, web is blocked, never failing.
    db.otherwise(Reply::status(503, "down"));
    web.otherwise(Reply::status(502, "no db"));
    let h = handle.clone();
    wait(
        "db failing and web blocked",
        Box::new(move || {
            let s = h.statuses();
            let st = |n: &str| s.iter().find(|c| c.name == n).map(|c| c.state);
            st("db") == Some(CheckState::Failing) && st("web") == Some(CheckState::Blocked)
        }),
    );
    // Back: both pass again, web after deciding afresh.
    db.otherwise(Reply::ok("ok"));
    web.otherwise(Reply::ok("ok"));
    let h = handle.clone();
    wait(
        "both passing again",
        Box::new(move || h.statuses().iter().all(|c| c.state == CheckState::Passing)),
    );
    let (status, recent) = handle.recent("db").await.expect("db");
    assert_eq!(status.name, "db");
    assert!(recent
        .iter()
        .any(|r| r.outcome.class() == Some(FailureClass::BadStatus)));
    let slow_status = handle.recent("slow").await.expect("slow").0;
    cancel.cancel();
    // The slow starter failed in its start period and then passed: never failing.
    assert_eq!(slow_status.state, CheckState::Passing);
    let mut seen = Vec::new();
    while let Ok(t) = transitions.try_recv() {
        seen.push(format!("{}:{}->{}", t.check, t.from, t.to));
    }
    assert!(
        !seen
            .iter()
            .any(|t| t.starts_with("web:") && t.ends_with("->failing")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"db:passing->failing".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|t| t.starts_with("web:") && t.ends_with("->blocked")),
        "{seen:?}"
    );
    assert_eq!(state("web"), Some(CheckState::Passing));
    assert!(
        !seen
            .iter()
            .any(|t| t.starts_with("slow:") && t.ends_with("->failing")),
        "{seen:?}"
    );
}
