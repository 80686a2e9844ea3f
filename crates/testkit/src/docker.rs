//! The Docker CLI for tests on the engine `scripts/test.sh` starts (or a
//! developer's own): running commands, containers removed when the test
//! ends, the locally built test image.

use std::process::Command;

/// The image `scripts/test.sh` builds: static busybox with sh, httpd, wget.
pub const IMAGE: &str = "aegis-test/busybox:latest";

/// Runs `docker ARGS`: whether it worked, and what it printed.
pub fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        ),
        Err(e) => (false, format!("docker: {e}")),
    }
}

/// Containers removed when the test ends, pass or fail.
#[derive(Debug, Default)]
pub struct Containers(pub Vec<String>);

impl Containers {
    /// Adds one to remove.
    pub fn add(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

/// `State.Status/Health.Status` of a container (`running/healthy`...).
pub fn health(name: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    ])
    .1
}

/// Runs a web container of [`IMAGE`] with `labels`: busybox httpd on
/// 127.0.0.1:8080 inside, healthy while `/www/health` exists (checked every
/// second, unhealthy after two failures). `docker exec NAME rm
/// /www/health` makes it unhealthy; a restart makes it healthy again.
pub fn run_web(name: &str, labels: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none", "--init"];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.extend([
        "--health-cmd",
        "wget -q -O /dev/null http://127.0.0.1:8080/health",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        IMAGE,
        "sh",
        "-c",
        "echo ok > /www/health && exec httpd -f -p 127.0.0.1:8080 -h /www",
    ]);
    let (ok, out) = docker(&args);
    assert!(ok, "docker run {name}: {out}");
}
