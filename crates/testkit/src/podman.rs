//! A private Podman for tests: its own storage under a directory the test
//! owns, the test image imported from busybox, and its Docker-compatible
//! API service on a socket in that directory; containers and the service
//! are removed when it is dropped.
//!
//! The settings are those Debian's podman needs on these machines: the
//! `runc` runtime, `vfs` storage, cgroupfs, events in a file, explicit
//! ulimits for each container, no network. There is no systemd, so Podman
//! does not run health checks by itself (its timers cannot be made).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;

/// The test image's name in the private Podman.
pub const IMAGE: &str = "localhost/aegis-test/busybox:latest";

/// Options every container needs here (the runtime refuses Podman's
/// default rlimits).
pub const RUN_OPTIONS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

/// A private Podman and its API service.
#[derive(Debug)]
pub struct Podman {
    dir: PathBuf,
    global: Vec<String>,
    service: Option<ChildGuard>,
}

impl Podman {
    /// Sets it up in `dir` and starts the service; panics with what went
    /// wrong when it cannot.
    pub fn start(dir: &Path) -> Podman {
        let global: Vec<String> = [
            "--root",
            &dir.join("root").display().to_string(),
            "--runroot",
            &dir.join("run").display().to_string(),
            "--tmpdir",
            &dir.join("tmp").display().to_string(),
            "--storage-driver",
            "vfs",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let mut podman = Podman {
            dir: dir.to_path_buf(),
            global,
            service: None,
        };
        podman.import_image();
        let log = std::fs::File::create(dir.join("service.log")).expect("service log");
        let mut cmd = podman.command();
        cmd.args(["system", "service", "--time", "0", &podman.address()])
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        podman.service = Some(ChildGuard::spawn(&mut cmd).expect("start podman system service"));
        let up = crate::wait::within(Duration::from_secs(30), || {
            podman.socket().exists()
                && Command::new("podman")
                    .args(["--url", &podman.address(), "version"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        assert!(
            up,
            "the Podman service did not answer; its log:\n{}",
            std::fs::read_to_string(dir.join("service.log")).unwrap_or_default()
        );
        podman
    }

    /// `podman` with this instance's global options.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(&self.global);
        cmd
    }

    /// Runs `podman ARGS`: whether it worked, and what it printed.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        crate::docker::output(self.command().args(args))
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// The API's address, `unix:///...`.
    pub fn address(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `State.Status/State.Health.Status` of a container.
    pub fn health(&self, name: &str) -> String {
        self.run(&[
            "inspect",
            "-f",
            "{{.State.Status}}/{{.State.Health.Status}}",
            name,
        ])
        .1
    }

    fn import_image(&self) {
        let rootfs = self.dir.join("rootfs");
        for d in ["bin", "www", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("rootfs");
        }
        let busybox = crate::need::which("busybox").expect("busybox");
        std::fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in [
            "sh", "httpd", "wget", "rm", "echo", "sleep", "cat", "true", "false", "kill", "touch",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .expect("applet link");
        }
        let tar = self.dir.join("rootfs.tar");
        let ok = Command::new("tar")
            .args(["-C", &rootfs.display().to_string(), "-cf"])
            .arg(&tar)
            .arg(".")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tar of the rootfs");
        let (ok, out) = self.run(&["import", &tar.display().to_string(), IMAGE]);
        assert!(ok, "podman import: {out}");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        if let Some(mut service) = self.service.take() {
            service.kill();
        }
    }
}
