//! Restarting (or stopping and starting) a Docker container through the
//! engine's API.

use std::time::Duration;

use bollard::query_parameters::{
    RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;

pub use aegis_core::action::{ContainerAction, ContainerOp};

use super::ExecError;

fn classify(e: bollard::errors::Error, what: &str, container: &str) -> ExecError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => ExecError::Refused(format!("no container {container:?}: {message}")),
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => ExecError::Failed(format!(
            "{what} {container}: Docker answered {status_code}: {message}"
        )),
        other => ExecError::Unavailable(format!(
            "Docker engine unreachable while trying to {what} {container}: {other}"
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
    let work = async {
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
                docker
                    .stop_container(
                        container,
                        Some(StopContainerOptions {
                            t: Some(t),
                            signal: None,
                        }),
                    )
                    .await
                    .map_err(|e| classify(e, "stop", container))?;
                docker
                    .start_container(container, None::<StartContainerOptions>)
                    .await
                    .map_err(|e| classify(e, "start", container))?;
                Ok(format!("stopped and started container {container}"))
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ExecError::Timeout(timeout)),
    }
}
