//! Acting on a container through the engine's API: restart, stop then
//! start, stop, kill. The connection is made on first use and shared with
//! verification; an engine that cannot be reached is "unavailable", never a
//! failure of the container.

use std::time::Duration;

use aegis_docker::Docker;
use bollard::query_parameters::{
    KillContainerOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use tokio::sync::Mutex;

pub use aegis_core::action::{ContainerAction, ContainerOp};

use super::ExecError;

/// The engine connection healing uses, made when first needed.
#[derive(Debug, Default)]
pub struct Containers {
    /// The configured engine address (`docker.host`); none: found as
    /// [`aegis_docker::candidates`] says.
    host: Option<String>,
    docker: Mutex<Option<Docker>>,
}

impl Containers {
    /// No connection yet; the engine is looked for where it usually is.
    pub fn new() -> Self {
        Self::default()
    }

    /// No connection yet; the engine at `host` when set.
    pub fn at(host: Option<String>) -> Self {
        Self {
            host,
            docker: Mutex::default(),
        }
    }

    /// The connection, connecting if there is none.
    pub async fn client(&self) -> Result<Docker, ExecError> {
        let mut g = self.docker.lock().await;
        if let Some(d) = g.as_ref() {
            return Ok(d.clone());
        }
        let d = aegis_docker::connect(self.host.as_deref())
            .await
            .map_err(|e| ExecError::Unavailable(e.0))?
            .client;
        *g = Some(d.clone());
        Ok(d)
    }

    /// Drops the connection (the engine went away): the next use reconnects.
    pub async fn forget(&self) {
        *self.docker.lock().await = None;
    }
}

fn classify(e: bollard::errors::Error, what: &str, container: &str) -> ExecError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => ExecError::Refused(format!("no container {container:?}: {message}")),
        // Already stopped (stop) or not running (kill): nothing to do.
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        } => ExecError::Failed(format!("{container} was not running")),
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => ExecError::Failed(format!(
            "{what} {container}: the engine answered {status_code}: {message}"
        )),
        other => ExecError::Unavailable(format!(
            "container engine unreachable while trying to {what} {container}: {other}"
        )),
    }
}

/// Runs the container action on `container`, within `timeout`.
pub async fn run(
    docker: &Docker,
    a: &ContainerAction,
    container: &str,
    timeout: Duration,
) -> Result<String, ExecError> {
    let t = i32::try_from(a.stop_timeout_s).unwrap_or(i32::MAX);
    let stop = || {
        docker.stop_container(
            container,
            Some(StopContainerOptions {
                t: Some(t),
                signal: None,
            }),
        )
    };
    super::within(timeout, async {
        match a.op {
            ContainerOp::Restart => {
                docker
                    .restart_container(
                        container,
                        Some(RestartContainerOptions {
                            t: Some(t),
                            signal: None,
                        }),
                    )
                    .await
                    .map_err(|e| classify(e, "restart", container))?;
                Ok(format!("restarted container {container}"))
            }
            ContainerOp::StopStart => {
                stop().await.map_err(|e| classify(e, "stop", container))?;
                docker
                    .start_container(container, None::<StartContainerOptions>)
                    .await
                    .map_err(|e| classify(e, "start", container))?;
                Ok(format!("stopped and started container {container}"))
            }
            ContainerOp::Stop => {
                stop().await.map_err(|e| classify(e, "stop", container))?;
                Ok(format!("stopped container {container}"))
            }
            ContainerOp::Kill => {
                docker
                    .kill_container(
                        container,
                        Some(KillContainerOptions {
                            signal: "SIGKILL".into(),
                        }),
                    )
                    .await
                    .map_err(|e| classify(e, "kill", container))?;
                Ok(format!("killed container {container}"))
            }
        }
    })
    .await
}
