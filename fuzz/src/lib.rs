//! What each fuzz target does with its input: every parser of input from
//! outside the agent (the configuration, its values, the CSV of
//! `aegis detect`, procfs, the container engine's events, what a checked
//! service answers, what Redis and Memcached reply). Each function must
//! never panic, whatever the bytes; where a parser promises more (a value
//! that prints the way it parses, a rate that is never negative), it is
//! asserted here too.
//!
//! The targets in `fuzz_targets/` call these; `tests/replay.rs` runs every
//! committed seed and regression input through them on stable Rust, so a
//! fixed crash stays fixed in the ordinary test run.

use std::str::FromStr;
use std::time::Duration;

use aegis_collect::host::{HostSource, ProcTexts};
use aegis_core::config::{
    ByteSize, Config, Glob, HostPort, HttpMethod, HttpUrl, Interval, JsonPointer, LogFilter, Name,
    StatusRange, TimeOfDay,
};
use aegis_core::Reading;
use arbitrary::{Arbitrary, Unstructured};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("values", values),
    ("detect_csv", detect_csv),
    ("proc_stat", proc_stat),
    ("proc_meminfo", proc_meminfo),
    ("proc_loadavg", proc_loadavg),
    ("proc_mounts", proc_mounts),
    ("proc_diskstats", proc_diskstats),
    ("proc_net_dev", proc_net_dev),
    ("proc_pid_stat", proc_pid_stat),
    ("docker_event", docker_event),
    ("check_http", check_http),
    ("http_answer", http_answer),
    ("check_tcp", check_tcp),
    ("redis_reply", redis_reply),
    ("memcached_reply", memcached_reply),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A configuration file: parsed and validated. A problem must name a line
/// within the file (or none).
pub fn config(data: &[u8]) {
    let source = text(data);
    let lines = source.lines().count() + 1;
    match Config::from_toml(&source) {
        Ok(c) => {
            // Valid means valid: nothing left for the semantic checks.
            assert!(c.validate().is_empty());
            let _ = c.effective_checks();
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty());
            assert!(!e.problems.is_empty(), "an error with no problem");
            for p in &e.problems {
                if let Some(line) = p.line {
                    assert!(line <= lines, "line {line} of a {lines}-line file: {shown}");
                }
            }
        }
    }
}

/// Every value type of the configuration, from the same text. Durations
/// and sizes print the way they parse.
pub fn values(data: &[u8]) {
    let s = text(data);
    if let Ok(v) = Interval::from_str(&s) {
        let again = Interval::from_str(&v.to_string());
        assert_eq!(again.ok(), Some(v), "{s:?} printed as {v}");
    }
    if let Ok(v) = ByteSize::from_str(&s) {
        let again = ByteSize::from_str(&v.to_string());
        assert_eq!(again.ok(), Some(v), "{s:?} printed as {v}");
    }
    if let Ok(v) = StatusRange::from_str(&s) {
        assert!(v.lo <= v.hi, "{s:?} parsed to {}-{}", v.lo, v.hi);
        let again = StatusRange::from_str(&v.to_string());
        assert_eq!(again.ok(), Some(v), "{s:?} printed as {v}");
    }
    let _ = TimeOfDay::from_str(&s);
    let _ = HttpMethod::from_str(&s);
    if let Ok(g) = Glob::from_str(&s) {
        let _ = g.matches(&s);
        let _ = g.matches("");
    }
    let _ = HttpUrl::from_str(&s);
    if let Ok(h) = HostPort::from_str(&s) {
        let _ = (h.host(), h.port());
    }
    let _ = JsonPointer::from_str(&s);
    let _ = LogFilter::from_str(&s);
    let _ = Name::from_str(&s);
}

/// The CSV input of `aegis detect`, strict and lenient.
pub fn detect_csv(data: &[u8]) {
    for skip_bad_rows in [false, true] {
        let options = aegis::offline::DetectOptions {
            input: "fuzz.csv".into(),
            output: None,
            column: None,
            skip_bad_rows,
        };
        let mut out = Vec::new();
        if let Ok(summary) = aegis::offline::score("fuzz.csv", data, &mut out, &options, None) {
            assert!(summary.examples.len() <= 5);
            assert!(!out.is_empty(), "no header written");
        }
    }
}

/// Two cycles of the host source over one procfs file's text: the input
/// split at its first NUL (the same text twice when it has none), so that
/// counters see a previous value. Every value must be finite, and no rate
/// negative: a counter that went down is a reset marker.
fn host(data: &[u8], put: fn(&mut ProcTexts, String)) {
    let (first, second) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let mut source = HostSource::new("/nonexistent-aegis-fuzz-root");
    for (i, part) in [first, second].into_iter().enumerate() {
        let mut texts = ProcTexts::none();
        put(&mut texts, text(part).into_owned());
        let at = Duration::from_secs(10 + i as u64);
        let collection = source.observe(texts, at, 1_700_000_000_000 + i as i64 * 1000);
        for o in &collection.observations {
            if let Reading::Value(v) = o.reading {
                let family = o.series.family().name;
                assert!(v.is_finite(), "{family}: {v}");
                if family.ends_with("_per_second") || family.ends_with("_ratio") {
                    assert!(v >= 0.0, "{family}: {v}");
                }
            }
        }
    }
}

/// `/proc/stat`.
pub fn proc_stat(data: &[u8]) {
    host(data, |t, s| t.stat = Ok(s));
}

/// `/proc/meminfo`.
pub fn proc_meminfo(data: &[u8]) {
    host(data, |t, s| t.meminfo = Ok(s));
}

/// `/proc/loadavg`.
pub fn proc_loadavg(data: &[u8]) {
    host(data, |t, s| t.loadavg = Ok(s));
}

/// `/proc/mounts` (each mount point is then asked for its `statvfs`).
pub fn proc_mounts(data: &[u8]) {
    host(data, |t, s| t.mounts = Ok(s));
}

/// `/proc/diskstats`.
pub fn proc_diskstats(data: &[u8]) {
    host(data, |t, s| t.diskstats = Ok(s));
}

/// `/proc/net/dev`.
pub fn proc_net_dev(data: &[u8]) {
    host(data, |t, s| t.net_dev = Ok(s));
}

/// `/proc/PID/stat`: the command name is what is between the first `(`
/// and the last `)`.
pub fn proc_pid_stat(data: &[u8]) {
    let s = text(data);
    if let Some(p) = aegis_core::procfs::parse_pid_stat(&s) {
        assert!(s.contains(&format!("({})", p.comm)));
    }
}

/// One message of the engine's event stream (Docker's, or Podman's
/// Docker-compatible one), as JSON.
pub fn docker_event(data: &[u8]) {
    if let Ok(msg) = serde_json::from_slice::<bollard::models::EventMessage>(data) {
        if let Some(event) = aegis_collect::docker::parse_event(&msg) {
            assert!(event.from_stream);
        }
    }
}

/// What an HTTP check expects, from the fuzzer's bytes.
#[derive(Debug, Arbitrary)]
struct HttpCase {
    status: u16,
    lo: u16,
    hi: u16,
    body_contains: Option<String>,
    pointer: Option<String>,
    equals: String,
    body: String,
}

/// Judging an HTTP answer: its status against a range, its body against a
/// text and a JSON pointer.
pub fn check_http(data: &[u8]) {
    let Ok(case) = HttpCase::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(range) = StatusRange::from_str(&format!("{}-{}", case.lo, case.hi)) else {
        return;
    };
    let json = case
        .pointer
        .and_then(|p| JsonPointer::from_str(&p).ok())
        .map(|p| (p, case.equals));
    let spec = aegis_collect::check::http::HttpSpec {
        url: "http://127.0.0.1/".into(),
        method: HttpMethod::Get,
        headers: Vec::new(),
        expect_status: range,
        body_contains: case.body_contains,
        json,
    };
    let outcome = aegis_collect::check::http::judge(&spec, case.status, &case.body);
    if !range.contains(case.status) {
        assert_ne!(outcome.ok(), Some(true));
    }
}

/// What a checked HTTP server answers, read by the checks' own HTTP/1.1
/// exchange: the first byte picks the method and the most body kept, the
/// rest is the answer. Never a panic; never more body than asked for; a
/// chunked body decodes the same whatever pieces it arrives in.
pub fn http_answer(data: &[u8]) {
    use aegis_collect::check::fetch;
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let method = if pick & 1 == 0 { "GET" } else { "HEAD" };
    let max_body = usize::from(pick >> 1);
    let stream = tokio::io::join(answer, tokio::io::sink());
    if let Ok((a, _)) = block_on(fetch::exchange(
        stream,
        b"GET / HTTP/1.1\r\n\r\n",
        method,
        max_body,
    )) {
        assert!(a.body.len() <= max_body);
        if method == "HEAD" {
            assert!(a.body.is_empty());
        }
    }
    // The chunk decoder alone, whole and in two pieces.
    let whole = {
        let mut out = Vec::new();
        fetch::Chunks::default()
            .feed(answer, &mut out, 4096)
            .map(|(used, done)| (used, done, out))
    };
    let split = answer.len() / 2;
    let pieces = {
        let mut d = fetch::Chunks::default();
        let mut out = Vec::new();
        d.feed(&answer[..split], &mut out, 4096)
            .and_then(|(used, done)| {
                if done {
                    return Ok((used, done, out));
                }
                let (more, done) = d.feed(&answer[used..], &mut out, 4096)?;
                Ok((used + more, done, out))
            })
    };
    if let (Ok((_, true, a)), Ok((_, true, b))) = (&whole, &pieces) {
        assert_eq!(a, b, "a chunked body decoded differently in pieces");
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// Judging a TCP check's reply: the first line of the input is what it
/// expects, the rest what the service answers.
pub fn check_tcp(data: &[u8]) {
    let Some(i) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(expect) = std::str::from_utf8(&data[..i]) else {
        return;
    };
    let mut reply = &data[i + 1..];
    let outcome = block_on(aegis_collect::check::tcp::judge_reply(
        &mut reply,
        expect,
        "127.0.0.1:6379",
    ));
    let passed = outcome.ok() == Some(true);
    let original = &data[i + 1..];
    if passed {
        assert!(original.starts_with(expect.as_bytes()));
    }
}

/// A Redis server's reply to a command.
pub fn redis_reply(data: &[u8]) {
    let mut input = data;
    if let Ok(status) = block_on(aegis_heal::exec::redis::read_reply(&mut input, "FLUSHDB")) {
        assert!(data.first() == Some(&b'+'), "{status:?}");
    }
}

/// A Memcached server's reply to `flush_all`.
pub fn memcached_reply(data: &[u8]) {
    let mut input = data;
    if block_on(aegis_heal::exec::memcached::read_reply(
        &mut input,
        "127.0.0.1:11211",
    ))
    .is_ok()
    {
        assert!(data.starts_with(b"OK"));
    }
}
