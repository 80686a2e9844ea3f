//! What a test needs from the machine, and skipping honestly without it.
//!
//! A plain `cargo test --workspace` on a laptop without Redis, Docker or
//! Chromium passes: each test that needs one prints
//! `SKIPPED <test>: <reason>` on the terminal (written past the test
//! harness's capture, so it shows) and returns. `scripts/test.sh` sets
//! `AEGIS_REQUIRE_ALL=1` after installing everything: there a missing
//! dependency fails the test instead, so nothing is skipped in CI by
//! accident.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether every dependency is required (missing ones fail, not skip).
pub fn require_all() -> bool {
    std::env::var("AEGIS_REQUIRE_ALL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Reports that the current test is skipped, and why. Panics instead when
/// every dependency is required.
#[track_caller]
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if require_all() {
        panic!("{test} needs {why} (AEGIS_REQUIRE_ALL is set, so it may not be skipped)");
    }
    let line = format!("SKIPPED {test}: {why}\n");
    // Straight to the file descriptor: the harness captures print macros
    // only, so this shows in a plain `cargo test` run.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The full path of `program` on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// Whether the programs are installed; when one is not, the test is
/// skipped (see [`skip`]) and this returns false.
#[track_caller]
pub fn need(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!(
        "{} (not installed; scripts/test.sh installs it)",
        missing.join(", ")
    ));
    false
}

/// Whether a Docker engine answers (at `DOCKER_HOST` or the default
/// socket); skips the test when none does.
#[track_caller]
pub fn need_docker() -> bool {
    if !need(&["docker"]) {
        return false;
    }
    let ok = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip("a Docker engine (none answers; scripts/test.sh starts a private one)");
    }
    ok
}

/// Whether this process runs as root (mounts, namespaces); skips otherwise.
#[track_caller]
pub fn need_root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip(&format!("root, to {why}"));
    }
    root
}

/// The Chromium binary, if installed; skips the test otherwise.
#[track_caller]
pub fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].into_iter().find_map(which);
    if found.is_none() {
        skip("chromium (not installed; scripts/test.sh installs Debian's)");
    }
    found
}
