//! The Docker CLI for tests on the engine `scripts/test.sh` starts (or a
//! developer's own): running commands, containers removed when the test
//! ends, the locally built test image.

use std::process::Command;

/// The image `scripts/test.sh` builds: static busybox with sh, httpd, wget.
pub const IMAGE: &str = "aegis-test/busybox:latest";

/// Runs `docker ARGS`: whether it worked, and what it printed.
pub fn docker(args: &[&str]) -> (bool, String) {
    output(Command::new("docker").args(args))
}

/// Runs `cmd`: whether it worked, and what it printed (stdout, then
/// stderr, trimmed), or why it could not start.
pub fn output(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
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
        Err(e) => (
            false,
            format!("{}: {e}", cmd.get_program().to_string_lossy()),
        ),
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
    Web::new(name).labels(labels).run();
}

/// A web container of [`IMAGE`] to run, as [`run_web`] describes, with
/// more choices: its network (`container:NAME` shares another's), its
/// port, a restart policy. Besides `/www/health`, a file `/sick` keeps it
/// unhealthy across restarts (`docker exec NAME touch /sick`), and a file
/// `/die` makes its process exit with status 3 (removed first, so that
/// the next run lives on).
#[derive(Debug, Clone)]
pub struct Web {
    name: String,
    labels: Vec<String>,
    network: String,
    port: u16,
    restart: Option<String>,
    image: String,
}

impl Web {
    /// A container called `name`, no labels, no network, port 8080.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            labels: Vec::new(),
            network: "none".into(),
            port: 8080,
            restart: None,
            image: IMAGE.to_string(),
        }
    }

    /// Adds `key=value` labels.
    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.labels.extend(labels.iter().map(|l| l.to_string()));
        self
    }

    /// `--network` (`none` unless set).
    pub fn network(mut self, network: &str) -> Self {
        self.network = network.to_string();
        self
    }

    /// The port httpd listens on (two containers sharing a network need
    /// two ports).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// `--restart` (`always`, `on-failure:1`...).
    pub fn restart(mut self, policy: &str) -> Self {
        self.restart = Some(policy.to_string());
        self
    }

    /// The image (the Docker test image unless set).
    pub fn image(mut self, image: &str) -> Self {
        self.image = image.to_string();
        self
    }

    /// The arguments of `run` for it, with `extra` options before the
    /// image (an engine's own: Podman's ulimits).
    pub fn run_args(&self, extra: &[&str]) -> Vec<String> {
        let health = format!(
            "test ! -e /sick && wget -q -O /dev/null http://127.0.0.1:{}/health",
            self.port
        );
        let script = format!(
            "echo ok > /www/health && httpd -p 127.0.0.1:{} -h /www && \
             while [ ! -e /die ]; do sleep 0.2; done; rm -f /die; exit 3",
            self.port
        );
        let mut args: Vec<String> = ["run", "-d", "--name", &self.name, "--init"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(["--network".to_string(), self.network.clone()]);
        if let Some(policy) = &self.restart {
            args.extend(["--restart".to_string(), policy.clone()]);
        }
        for l in &self.labels {
            args.extend(["--label".to_string(), l.clone()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(
            [
                "--health-cmd",
                &health,
                "--health-interval",
                "1s",
                "--health-retries",
                "2",
                &self.image,
                "sh",
                "-c",
                &script,
            ]
            .iter()
            .map(|a| a.to_string()),
        );
        args
    }

    /// Runs it (with `docker run -d`); panics with the engine's answer when
    /// it cannot.
    pub fn run(&self) {
        let args = self.run_args(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = docker(&args);
        assert!(ok, "docker run {}: {out}", self.name);
    }
}
