//! The container engine: finding it, connecting to it, and reading what a
//! container is. Both the Docker source (`collect`) and healing (`heal`)
//! talk to the engine; this is the one place that knows how to reach it and
//! how its answers map onto [`ContainerInfo`], so neither depends on the
//! other.

use std::collections::HashMap;

use aegis_core::container::{ContainerHealth, ContainerInfo, RestartPolicy};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
pub use bollard::Docker;

/// Why the engine could not be used: it is not there (no socket, not
/// answering). Kept apart from an engine that answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Connects to the engine named by `DOCKER_HOST`, or the local socket, and
/// agrees on an API version.
pub async fn connect() -> Result<Docker, Unavailable> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| Unavailable(format!("no Docker client: {e} ({})", engine_address())))?;
    let docker = docker.negotiate_version().await.map_err(|e| {
        Unavailable(format!(
            "Docker engine unreachable: {e} ({})",
            engine_address()
        ))
    })?;
    docker.ping().await.map_err(|e| {
        Unavailable(format!(
            "Docker engine unreachable: {e} ({})",
            engine_address()
        ))
    })?;
    Ok(docker)
}

/// Where the engine is expected, for messages.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// What the engine's inspection says of a container.
pub fn info_of(id: &str, c: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.as_ref();
    ContainerInfo {
        id: c.id.clone().unwrap_or_else(|| id.to_string()),
        name: c
            .name
            .as_deref()
            .unwrap_or(id)
            .trim_start_matches('/')
            .to_string(),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .and_then(|h| ContainerHealth::parse(h.as_ref())),
        restart_count: c.restart_count.unwrap_or(0),
        exit_code: state.and_then(|s| s.exit_code),
        image: c
            .config
            .as_ref()
            .and_then(|cfg| cfg.image.clone())
            .unwrap_or_default(),
        restart_policy: c
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| {
                let name = p.name.map(|n| n.to_string()).unwrap_or_default();
                (!name.is_empty() && name != "no").then(|| RestartPolicy {
                    name,
                    max_retries: p.maximum_retry_count.unwrap_or(0),
                })
            }),
        network_mode: c.host_config.as_ref().and_then(|h| h.network_mode.clone()),
        started_at_ms: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .filter(|ms| *ms > 0),
        labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
    }
}

/// Inspects one container; `Ok(None)` when it does not exist.
pub async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<Option<ContainerInfo>, bollard::errors::Error> {
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(Some(info_of(id, c))),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every container (running or not), at most `max`, inspected.
pub async fn list(docker: &Docker, max: usize) -> Result<Vec<ContainerInfo>, String> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let ids: Vec<String> = list.into_iter().filter_map(|s| s.id).take(max).collect();
    // Inspections are cheap; run a few at once so a host with many
    // containers is read in a few round trips, not one per container.
    use futures_util::StreamExt;
    let found: Vec<Option<ContainerInfo>> = futures_util::stream::iter(ids)
        .map(|id| async move {
            // A container removed between the list and the inspect is simply gone.
            inspect(docker, &id).await.ok().flatten()
        })
        .buffered(8)
        .collect()
        .await;
    Ok(found.into_iter().flatten().collect())
}

/// The labels of an event's actor, without the attributes the engine adds
/// beside them (`name`, `image`, `exitCode`, `signal`).
pub fn labels_of_event(attributes: &HashMap<String, String>) -> HashMap<String, String> {
    let mut labels = attributes.clone();
    for k in ["name", "image", "exitCode", "signal"] {
        labels.remove(k);
    }
    labels
}
